"""The platform's Celery app, but keeping each worker thread's database connection between
tasks (Celery's CELERY_DB_REUSE_MAX). An experiment for `refresh_throughput.py --db-reuse`,
which measures what the per-task reconnect costs; not how the platform is deployed.

By default Celery's Django fixup closes the database connection before and after every task,
so every refresh opens a new PostgreSQL connection (a backend process is forked for it).
"""

from config.celery import app

app.conf.CELERY_DB_REUSE_MAX = 1000  # close (and so reopen) once per 1000 tasks

__all__ = ["app"]
