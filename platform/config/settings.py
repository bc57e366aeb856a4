"""The one settings module. Every value a deployment changes comes from the environment.

Two shapes: the embedded default (``PLATFORM_ENV=embedded``, no services: SQLite under ./var,
secrets generated and kept under ./var) and production (``PLATFORM_ENV=production``: SECRET_KEY,
DATABASE_URL and PUBLIC_URL must be given).
"""

import ipaddress
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env, envbool, envint, kept_secret, private_dir, private_file
from connectors.base import kinds_env_settings

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(env("VAR_DIR", str(BASE_DIR / "var")))

PLATFORM_ENV = env("PLATFORM_ENV", "embedded")
if PLATFORM_ENV not in ("embedded", "production"):
    raise ImproperlyConfigured(f"PLATFORM_ENV must be embedded or production, not {PLATFORM_ENV!r}")
EMBEDDED = PLATFORM_ENV == "embedded"

# --- Public origin: the issuer, every resource URL, the allowed hosts -------------------------
PUBLIC_URL = (env("PUBLIC_URL", "http://127.0.0.1:8000") or "").rstrip("/")
_public = urlsplit(PUBLIC_URL)
if _public.scheme not in ("http", "https") or not _public.hostname or _public.path:
    raise ImproperlyConfigured(
        f"PUBLIC_URL must be an origin such as https://connectors.example.com, not {PUBLIC_URL!r}"
    )
ALLOWED_HOSTS = [_public.hostname] + [
    h.strip() for h in (env("EXTRA_ALLOWED_HOSTS", "") or "").split(",") if h.strip()
]

# Browsers send Origin; the MCP endpoint refuses any origin not listed here (the 2026-07-28
# transport's MUST, against DNS rebinding). Clients that are not browsers send none.
EXTRA_ALLOWED_ORIGINS = [
    o.strip().rstrip("/") for o in (env("EXTRA_ALLOWED_ORIGINS", "") or "").split(",") if o.strip()
]
for _origin in EXTRA_ALLOWED_ORIGINS:
    _parts = urlsplit(_origin)
    if _parts.scheme not in ("http", "https") or not _parts.hostname or _parts.path:
        raise ImproperlyConfigured(
            f"EXTRA_ALLOWED_ORIGINS takes origins such as http://localhost:6274, not {_origin!r}"
        )

DEBUG = envbool("DEBUG", False)

if EMBEDDED:
    SECRET_KEY = env("SECRET_KEY") or kept_secret(VAR_DIR / "secret_key")
else:
    SECRET_KEY = env("SECRET_KEY")
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required in production")

# X-Forwarded-For and -Proto are believed only from these peers (addresses or networks,
# comma-separated): the client address is the right-most hop that is not one of them
# (config/proxy.py). docker-compose.yml sets Caddy's fixed address. Never "*": anyone could then
# choose the address the rate limits and the trace see.
_forwarded_allow = env("FORWARDED_ALLOW_IPS", "127.0.0.1,::1") or ""
FORWARDED_ALLOW_IPS = [ip.strip() for ip in _forwarded_allow.split(",") if ip.strip()]
if "*" in FORWARDED_ALLOW_IPS:
    raise ImproperlyConfigured(
        "FORWARDED_ALLOW_IPS must list the proxy's addresses or network, not *: with * any "
        "client can forge its address"
    )
# Behind a TLS-terminating proxy: honour its forwarded host. The scheme comes from
# X-Forwarded-Proto of a trusted proxy only (config/proxy.py sets it on the request).
# URLs we hand to clients are built from PUBLIC_URL either way.
if envbool("TRUST_FORWARDED_HEADERS", not EMBEDDED):
    USE_X_FORWARDED_HOST = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "config",
    "tenants",
    "events",
    "authserver",
    "gateway",
    "upstream",
    "identity",
    "dashboard",
    "doctor",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api",
]

MIDDLEWARE = [
    "config.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "authserver.middleware.OAuthEndpointCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "dashboard.errors.StaleFormMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "authserver.middleware.NoFramingMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'platform.sqlite3'}"
# No persistent connections (CONN_MAX_AGE=0): under ASGI each request runs in a thread of its
# own, so a connection kept open "for the next request" is never reused and never closed.
# PostgreSQL gets a pool per process instead (psycopg_pool): closing a connection hands it back,
# so requests, gateway threads and Celery tasks reuse connections and one process never holds
# more than DB_POOL_SIZE. Size it against max_connections (README, "Database connections").
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
DB_POOL_SIZE = envint("DB_POOL_SIZE", 8)
if DATABASES["default"]["ENGINE"].endswith("postgresql") and DB_POOL_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_SIZE,
        "timeout": envint("DB_POOL_TIMEOUT", 10),  # seconds a caller waits for a free one
    }
    # psycopg may prepare statements on these long-lived connections: the gateway's bearer
    # check asks it to (gateway.bearer); Django's own cursors bind on the client and never do.
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 5
    # The pool hands out only connections that answer (a restarted PostgreSQL closes them all),
    # and finds out without a round trip per checkout (config.postgresql).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["ENGINE"] = "config.postgresql"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The file holds every tenant's data: readable by this user only (SQLite gives its -wal
    # and -shm files the database file's mode).
    _sqlite_file = Path(DATABASES["default"]["NAME"] or ":memory:")
    if _sqlite_file.name != ":memory:":
        if _sqlite_file.parent == VAR_DIR:
            private_dir(VAR_DIR)
        private_file(_sqlite_file)
    # IMMEDIATE transactions take the write lock up front, so concurrent writers wait
    # (up to the timeout) instead of failing with "database is locked" mid-transaction.
    # A page cache of 512 KiB per connection instead of SQLite's 2 MB: a web process keeps a
    # connection per worker thread (config.db), and each one's cache filled up as the audit
    # table grew, the process's memory with it (bench/web_memory.py). What the bearer check and
    # the audit flush read again fits many times over; the rest comes from the OS's file cache.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-512;"
        ),
    }
    # Tests use a file too: an in-memory database shared between threads takes table locks
    # that fail at once instead of waiting, unlike the file the platform really runs on.
    # One file per test process, so concurrent test runs never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"platform-test-{os.getpid()}.sqlite3")
    }
else:
    # One test database per test process, so two test runs on one server never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# DOT's models, named so migrations of models pointing at them (authserver.TokenAudience) can say
# so; they are not swapped.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"

REDIS_URL = env("REDIS_URL")
# The cache (rate limits, CIMD backoff) may live in another Redis database than the broker.
CACHE_REDIS_URL = env("CACHE_REDIS_URL", REDIS_URL)
if CACHE_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, sessions, security headers --------------------------------------------------------
# Django's hashers for passwords (PBKDF2 first); client secrets use the keyed digest at the end
# (OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]), and older PBKDF2 client secrets still verify.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "authserver.hashers.ClientSecretHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed sign-ins counted in the cache per account and per client address (tenants/signin.py);
# over either limit, sign-in is refused until the window ends.
# The throttled backend, which also refuses passwords to members of tenants that sign in only
# through their identity provider (identity/backends.py).
AUTHENTICATION_BACKENDS = ["identity.backends.PasswordPolicyBackend"]
SIGNIN_ACCOUNT_LIMIT = envint("SIGNIN_ACCOUNT_LIMIT", 10)
SIGNIN_ADDRESS_LIMIT = envint("SIGNIN_ADDRESS_LIMIT", 30)
SIGNIN_FAILURE_WINDOW = envint("SIGNIN_FAILURE_WINDOW", 900)  # seconds
LOGIN_URL = "/accounts/login/"
CSRF_FAILURE_VIEW = "dashboard.errors.csrf_failure"
# An invitation link works this long after it was (re)sent (seconds; default a week).
INVITATION_TTL = envint("INVITATION_TTL", 7 * 24 * 3600)
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_SECURE = _public.scheme == "https"
CSRF_COOKIE_SECURE = _public.scheme == "https"
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Served over https: browsers must never try plain http again (a year; subdomains are not ours
# to decide).
SECURE_HSTS_SECONDS = 365 * 86400 if _public.scheme == "https" else 0

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Also serve the apps' static files directly, so a checkout without collectstatic (tests) works.
WHITENOISE_USE_FINDERS = True

# --- Management API (DRF) --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",  # loaded with the OpenAPI document only
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MCP connector platform management API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Tags and operation ids are the path after this (v1_tenants_list): given, not estimated
    # from the paths it sees, which no longer include the document's own (api.urls).
    "SCHEMA_PATH_PREFIX": "/api/",
}

# --- The authorization server (django-oauth-toolkit) -----------------------------------------
# The scope every connector token carries; clients are told to ask for it. A kind's tools may
# need more (ConnectorKind.scopes): the gateway's 403 names them and the client steps up.
MCP_SCOPE = "mcp"
# Lifetimes: a client that refreshes late or badly stays connected. Access tokens are checked
# against the database on every request, so a long-ish lifetime does not delay revocation.
ACCESS_TOKEN_LIFETIME = envint("ACCESS_TOKEN_LIFETIME", 8 * 3600)
REFRESH_TOKEN_LIFETIME = envint("REFRESH_TOKEN_LIFETIME", 90 * 86400)
REFRESH_TOKEN_GRACE_SECONDS = envint("REFRESH_TOKEN_GRACE_SECONDS", 60)
# Dynamic registrations that never obtained a token are deleted after this long.
UNUSED_REGISTRATION_LIFETIME = envint("UNUSED_REGISTRATION_LIFETIME", 86400)
DCR_RATE_LIMIT = envint("DCR_RATE_LIMIT", 30)  # registrations per address per window
DCR_RATE_WINDOW = envint("DCR_RATE_WINDOW", 600)  # seconds
# Failed client authentications at /token per client and address per window; past it, /token
# refuses that pair without checking anything (cheap), until the window ends.
CLIENT_AUTH_FAILURE_LIMIT = envint("CLIENT_AUTH_FAILURE_LIMIT", 10)
CLIENT_AUTH_FAILURE_WINDOW = envint("CLIENT_AUTH_FAILURE_WINDOW", 600)  # seconds
# MCP requests per window at the gateway (gateway/ratelimit.py), per tenant, per OAuth client and
# per member of a tenant; 0 = no limit. Counted in Redis when configured (every web process
# shares the counts); past a limit the gateway answers 429 with Retry-After.
GATEWAY_RATE_LIMIT_PER_TENANT = envint("GATEWAY_RATE_LIMIT_PER_TENANT", 0)
GATEWAY_RATE_LIMIT_PER_CLIENT = envint("GATEWAY_RATE_LIMIT_PER_CLIENT", 0)
GATEWAY_RATE_LIMIT_PER_MEMBER = envint("GATEWAY_RATE_LIMIT_PER_MEMBER", 0)
GATEWAY_RATE_LIMIT_WINDOW = envint("GATEWAY_RATE_LIMIT_WINDOW", 60)  # seconds
if (
    GATEWAY_RATE_LIMIT_WINDOW < 1
    or min(
        GATEWAY_RATE_LIMIT_PER_TENANT, GATEWAY_RATE_LIMIT_PER_CLIENT, GATEWAY_RATE_LIMIT_PER_MEMBER
    )
    < 0
):
    raise ImproperlyConfigured("GATEWAY_RATE_LIMIT_* must not be negative, nor the window 0")
# Tests serve client ID metadata documents over plain http on loopback; never in production.
CIMD_ALLOW_HTTP_LOOPBACK = False

OAUTH2_PROVIDER = {
    "SCOPES": {MCP_SCOPE: "Use this connector's tools"},
    "DEFAULT_SCOPES": [MCP_SCOPE],
    # ...and the scopes kinds' tools may need (ConnectorKind.scopes), for step-up.
    "SCOPES_BACKEND_CLASS": "authserver.scopes.ConnectorScopes",
    "OIDC_ISS_ENDPOINT": PUBLIC_URL,
    "ACCESS_TOKEN_EXPIRE_SECONDS": ACCESS_TOKEN_LIFETIME,
    "REFRESH_TOKEN_EXPIRE_SECONDS": REFRESH_TOKEN_LIFETIME,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 300,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": REFRESH_TOKEN_GRACE_SECONDS,
    # Tokens are stored as their SHA-256 only. DOT's grace path reads the stored token back
    # (blank when hashed); authserver.validator answers it from a sealed copy instead.
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https", "cursor", "vscode", "vscode-insiders"],
    "ALLOW_LOCALHOST_LOOPBACK": True,
    "OAUTH2_VALIDATOR_CLASS": "authserver.validator.ConnectorOAuth2Validator",
    "CLIENT_SECRET_HASHER": "client_hmac_sha256",  # authserver.hashers.ClientSecretHasher
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": [
        "none",
        "client_secret_post",
        "client_secret_basic",
    ],
    # MCP clients register anonymously; RegisterView limits registrations per address.
    "DCR_ENABLED": True,
    "DCR_REGISTRATION_PERMISSION_CLASSES": ("oauth2_provider.dcr.AllowAllDCRPermission",),
    # RFC 7592 read/delete of a registration (no PUT: see authserver.registration) for an hour.
    "DCR_REGISTRATION_TOKEN_EXPIRE_SECONDS": 3600,
    "CIMD_ENABLED": True,
    "CIMD_METADATA_FETCHER": "authserver.registration.CIMDFetcher",
}

# DOT refuses hashed storage with a grace period (its grace path reads the stored token);
# authserver.checks holds the same line unless our validator, which answers it, is configured.
SILENCED_SYSTEM_CHECKS = ["oauth2_provider.E001"]

# --- Email (needs-reconnect notices, invitations) ---------------------------------------------
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if EMBEDDED
    else "django.core.mail.backends.smtp.EmailBackend",
)
# No default mail server in production (a container has none on localhost): the system check
# upstream.E003 refuses to start without EMAIL_HOST while the backend is SMTP.
EMAIL_HOST = env("EMAIL_HOST", "localhost" if EMBEDDED else "") or ""
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
# Seconds one SMTP conversation may take; a send that fails is retried by the next sweep.
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"connectors@{_public.hostname}")

# --- Logging: one JSON object a line, never a token -------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "filters": {"redact_paths": {"()": "config.logging.RedactPaths"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["redact_paths"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # uvicorn's access lines through the same handler: JSON, no query strings or secrets.
        "uvicorn.access": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # oauthlib's debug lines quote refresh tokens and codes: never below WARNING.
        "oauthlib": {"level": "WARNING"},
    },
}

# --- Upstream providers ------------------------------------------------------------------------
# Fernet keys for upstream tokens at rest, newest first (comma-separated). Rotate by putting a
# new key first, running `manage.py upstream_reencrypt`, then dropping the old key.
_upstream_keys = env("UPSTREAM_ENCRYPTION_KEYS")
if _upstream_keys:
    UPSTREAM_ENCRYPTION_KEYS = [k.strip() for k in _upstream_keys.split(",") if k.strip()]
elif EMBEDDED:
    from cryptography.fernet import Fernet

    UPSTREAM_ENCRYPTION_KEYS = [
        kept_secret(VAR_DIR / "upstream_key", lambda: Fernet.generate_key().decode())
    ]
else:
    raise ImproperlyConfigured("UPSTREAM_ENCRYPTION_KEYS (or _FILE) is required in production")
# Refresh an access token this long before it expires (inline and in the background).
UPSTREAM_REFRESH_MARGIN = envint("UPSTREAM_REFRESH_MARGIN", 300)
# A refresh holds the connection's lease this long; a crashed holder's lease then expires.
UPSTREAM_LEASE_SECONDS = envint("UPSTREAM_LEASE_SECONDS", 60)

# --- Celery: broker, schedule ---------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # kombu's Redis transport, keeping one client per channel (config/broker.py).
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
else:
    # The embedded default needs no broker server: messages are files under ./var/broker.
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = private_dir(VAR_DIR) / "broker"
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING: JSON lines too
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
UPSTREAM_SWEEP_SECONDS = envint("UPSTREAM_SWEEP_SECONDS", 60)
UPSTREAM_SWEEP_BATCH = envint("UPSTREAM_SWEEP_BATCH", 500)
# Connections per refresh message: refreshed one after the other by one worker thread, so
# Celery's cost per message is paid once per batch (upstream.tasks.upstream_refresh_batch).
UPSTREAM_REFRESH_BATCH = envint("UPSTREAM_REFRESH_BATCH", 8)
if UPSTREAM_REFRESH_BATCH < 1:
    raise ImproperlyConfigured("UPSTREAM_REFRESH_BATCH must be at least 1")
# Connections used within this window are refreshed before their access token expires.
UPSTREAM_RECENT_USE_SECONDS = envint("UPSTREAM_RECENT_USE_SECONDS", 7 * 86400)
# Every connection is refreshed at least this often, used or not (keeps rolling windows alive).
UPSTREAM_MAX_REFRESH_AGE = envint("UPSTREAM_MAX_REFRESH_AGE", 86400)
EVENT_RETENTION_DAYS = envint("EVENT_RETENTION_DAYS", 30)
# The tool-call audit log (events.audit): written in batches off the request path.
AUDIT_RETENTION_DAYS = envint("AUDIT_RETENTION_DAYS", 90)
AUDIT_FLUSH_SECONDS = float(env("AUDIT_FLUSH_SECONDS", "5") or 5)
AUDIT_BATCH_SIZE = envint("AUDIT_BATCH_SIZE", 500)
AUDIT_BUFFER_MAX = envint("AUDIT_BUFFER_MAX", 100_000)  # kept while the database is away
AUDIT_WEBHOOK_URL = env("AUDIT_WEBHOOK_URL", "") or ""
AUDIT_WEBHOOK_SECRET = env("AUDIT_WEBHOOK_SECRET", "") or ""
AUDIT_WEBHOOK_TIMEOUT = float(env("AUDIT_WEBHOOK_TIMEOUT", "5") or 5)
# Stream written audit records to an OpenTelemetry collector's logs (OTLP/HTTP).
AUDIT_OTLP_LOGS = envbool("AUDIT_OTLP_LOGS", False)
if AUDIT_OTLP_LOGS and not (
    env("OTEL_EXPORTER_OTLP_ENDPOINT") or env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
):
    raise ImproperlyConfigured(
        "AUDIT_OTLP_LOGS needs OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)"
    )
if AUDIT_WEBHOOK_URL and not AUDIT_WEBHOOK_URL.startswith(("https://", "http://")):
    raise ImproperlyConfigured("AUDIT_WEBHOOK_URL must be an http(s) URL")
if AUDIT_BATCH_SIZE < 1 or AUDIT_FLUSH_SECONDS <= 0:
    raise ImproperlyConfigured("AUDIT_BATCH_SIZE and AUDIT_FLUSH_SECONDS must be positive")
# --- Metrics and tracing (config/metrics.py, config/tracing.py): off unless configured --------
# /metrics answers scrapers with this bearer token, or from these addresses/networks.
METRICS_TOKEN = env("METRICS_TOKEN", "") or ""
METRICS_ALLOW_IPS = [
    n.strip() for n in (env("METRICS_ALLOW_IPS", "") or "").split(",") if n.strip()
]
for _network in METRICS_ALLOW_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"METRICS_ALLOW_IPS takes addresses or networks such as 10.0.0.0/8, not {_network!r}"
        ) from _exc
# A Celery worker serves its own counters (the refreshes it did) on this port when set.
METRICS_WORKER_PORT = envint("METRICS_WORKER_PORT", 0)
METRICS_WORKER_ADDRESS = env("METRICS_WORKER_ADDRESS", "0.0.0.0") or "0.0.0.0"
# Retries of a failed background refresh: exponential from this base, with jitter, bounded.
UPSTREAM_RETRY_BASE_SECONDS = float(env("UPSTREAM_RETRY_BASE_SECONDS", "5") or 5)
UPSTREAM_RETRY_MAX = envint("UPSTREAM_RETRY_MAX", 6)
# Test hook: share the upstream clock offset with worker processes (embedded default only).
UPSTREAM_CLOCK_OFFSET_FILE = env("UPSTREAM_CLOCK_OFFSET_FILE", "") or ""
CELERY_BEAT_SCHEDULE = {
    "upstream-sweep": {"task": "upstream.tasks.upstream_sweep", "schedule": UPSTREAM_SWEEP_SECONDS},
    "housekeeping": {"task": "authserver.tasks.housekeeping", "schedule": 3600.0},
}

# --- Connector kinds: import paths of connectors.base.ConnectorKind objects -------------------
# Installing a kind is one line here (or in EXTRA_CONNECTOR_KINDS). Each kind declares the
# environment settings it reads; they are read and checked now, like the platform's own.
BUILTIN_CONNECTOR_KINDS = [
    "connectors.quickbooks.kind.quickbooks",
    "connectors.remote_mcp.kind.remote_mcp",
]
CONNECTOR_KINDS = BUILTIN_CONNECTOR_KINDS + [
    k.strip() for k in (env("EXTRA_CONNECTOR_KINDS", "") or "").split(",") if k.strip()
]
globals().update(kinds_env_settings(CONNECTOR_KINDS, read=env, embedded=EMBEDDED))
