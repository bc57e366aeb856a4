# One image for every process of the platform: web (uvicorn), worker and beat (Celery) and the
# one-shot migrate; docker-compose.yml runs them. Build: docker compose build (or docker build .).

ARG PYTHON_VERSION=3.12
# The platform's version, the image's tag (compose passes PLATFORM_VERSION from .env).
ARG PLATFORM_VERSION=local

# --- build: dependencies and the project into /app/.venv, static files into /app/var/static ----
FROM python:${PYTHON_VERSION}-slim AS build

# uv from PyPI, pinned (a new uv release cannot change how the image builds); Python is this
# image's own, never a downloaded build.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3

WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY manage.py ./
COPY platform ./platform
COPY connectors ./connectors
COPY templates ./templates
COPY deploy ./deploy
# The project itself, editable: its modules stay under /app, where settings find the templates.
RUN uv sync --frozen --no-dev \
    && .venv/bin/python -m compileall -q platform connectors deploy

# Static files are part of the image (WhiteNoise serves them). Production settings refuse to
# load without secrets: this one command gets throwaway values, which no container ever sees.
# Database and broker URLs too (nothing connects), so that no SQLite file, broker folder or
# private (0700) /app/var is left in the image.
RUN PLATFORM_ENV=production VAR_DIR=/app/var \
    SECRET_KEY=collectstatic-only UPSTREAM_ENCRYPTION_KEYS=collectstatic-only \
    DATABASE_URL=postgres://collectstatic-only/none REDIS_URL=redis://collectstatic-only \
    .venv/bin/python manage.py collectstatic --noinput --verbosity 0

# --- runtime -------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
ARG PLATFORM_VERSION
LABEL org.opencontainers.image.title="mcp-connector-platform" \
      org.opencontainers.image.version="${PLATFORM_VERSION}"

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

WORKDIR /app
# Code, venv and static files stay owned by root: the app user can read but not change them.
COPY --from=build /app /app
# Beat's schedule lives on a volume mounted here; a new named volume takes this owner.
RUN mkdir -p /app/var/beat && chown app:app /app/var/beat

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PLATFORM_ENV=production \
    VAR_DIR=/app/var \
    WEB_CONCURRENCY=2
# glibc gives each thread that allocates a malloc arena of its own (up to 8 per core), and what
# is freed in one is not reused by another: the gateway's worker threads then hold more memory
# per web process, more with more load (bench/web_memory.py). Under the GIL two arenas suffice.
# The web process sets the same limit itself (config.asgi, for manage.py serve); this covers the
# Celery worker and beat too.
ENV MALLOC_ARENA_MAX=2

USER app
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/.venv/bin/python", "/app/deploy/healthcheck.py"]

# The web process. uvicorn reads its worker count from WEB_CONCURRENCY. Forwarded headers are
# read by the platform itself, from the proxies in FORWARDED_ALLOW_IPS only (see compose).
# On SIGTERM, requests in flight get 20 s to finish (compose's stop_grace_period is longer).
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers", "--timeout-graceful-shutdown", "20"]
