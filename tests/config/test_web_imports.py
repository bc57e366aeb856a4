"""The web process loads only the client libraries its configuration and its work use: without
Redis (the embedded default) it never imports redis, whose client costs about 10 MB of resident
memory per process, and authlib waits for a sign-in through an identity provider (issue 17,
goal 6: bench/web_memory.py)."""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:1/0"])
def test_the_web_app_imports_redis_only_when_configured_and_authlib_only_for_sso(
    tmp_path, redis_url
):
    script = (
        "import os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "import config.asgi\n"
        "from config.asgi import serious_check_messages\n"
        "serious_check_messages()\n"
        "from config.limits import limits_take, slot_limiter\n"
        "slot_limiter()\n"
        "try:\n"
        "    limits_take([('x', 1, 60)])\n"
        "except Exception:\n"  # nothing listens on port 1
        "    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'authlib'}))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "CACHE_REDIS_URL", "DATABASE_URL")
    }
    env |= {"VAR_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)}
    if redis_url:
        env["CACHE_REDIS_URL"] = redis_url
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, timeout=120, capture_output=True
    ).stdout.decode()
    assert out.strip().splitlines()[-1] == ("['redis']" if redis_url else "[]")
