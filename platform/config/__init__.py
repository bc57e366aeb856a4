# Every process that loads the project (web, manage.py, workers) sends tasks through this app;
# without it a task sent from the web process would go to Celery's unconfigured default app.
from .celery import app as celery_app

__all__ = ["celery_app"]
