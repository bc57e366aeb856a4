"""The web process sends tasks through the platform's Celery app, to the configured broker (a
reconnect notice after an inline refresh found the grant dead), not through Celery's default
app, which knows no broker of ours."""

import subprocess
import sys

from tests.support.processes import embedded_process_env


def test_a_task_sent_by_the_web_process_reaches_the_configured_broker(tmp_path):
    script = (
        "import os\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "import config.asgi\n"
        "from upstream.tasks import upstream_notify_reauth\n"
        "upstream_notify_reauth.delay(1)\n"
    )
    env = embedded_process_env(tmp_path)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    queued = [p.name for p in (tmp_path / "broker").iterdir() if p.name.endswith(".celery.msg")]
    assert len(queued) == 1
