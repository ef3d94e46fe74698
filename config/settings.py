"""Settings, read from the environment (see .env.example for every variable).

With no environment set the platform runs embedded: SQLite under ``var/``, Celery over a
filesystem broker, synthetic market data. Production sets DATABASE_URL, CELERY_BROKER_URL /
REDIS_URL, SECRET_KEY and the Alpaca keys.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.logging import configure_logging

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=True)
VAR_DIR = Path(env.str("VAR_DIR", default="") or BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    # Embedded/dev mode: one random key kept under var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS: list[str] = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_structlog",
    "ninja",
    "corsheaders",
    "axes",
    "csp",
    "channels",
    "common.apps.CommonConfig",
    "research.apps.ResearchConfig",
    "marketdata.apps.MarketdataConfig",
    "backtests.apps.BacktestsConfig",
    "trading.apps.TradingConfig",
    "trading.venue.apps.VenueConfig",
    "risk.apps.RiskConfig",
    "monitoring.apps.MonitoringConfig",
    "config.apps.ShellConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    # NUL characters and bodies over the upload limit: refused before any view (4xx, not 500)
    "config.middleware.RequestGuardMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    # last: turns a sign-in refused for too many failures into a 429 (config/auth docs)
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
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

# --- Database ---------------------------------------------------------------------------
EMBEDDED_DATABASE_URL = f"sqlite:///{VAR_DIR / 'quant.sqlite3'}"
DATABASE_URL: str = env.str("DATABASE_URL", default=EMBEDDED_DATABASE_URL)


def _database(url: str) -> dict[str, Any]:
    config: dict[str, Any] = environ.Env.db_url_config(url)
    engine = config["ENGINE"]
    if engine in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
        # Timescale when the server has the extension, plain PostgreSQL otherwise.
        config["ENGINE"] = "common.db.backends.postgresql"
        config["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
        config["CONN_HEALTH_CHECKS"] = True
    elif engine == "django.db.backends.sqlite3":
        # Web, worker and beat share the file: WAL + IMMEDIATE transactions avoid lock errors.
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme for engine {engine!r} is not supported: use postgres:// or sqlite://"
        )
    return config


DATABASES = {"default": _database(DATABASE_URL)}
# Hot-path statements (the risk gateway's reads) are prepared once per PostgreSQL connection
# (common/db/prepared.py); turn off behind a pooler in transaction mode (PgBouncer).
DB_PREPARED_STATEMENTS: bool = env.bool("DB_PREPARED_STATEMENTS", default=True)
# Parallel test runs on one server need distinct test databases (default: test_<name>).
if TEST_DATABASE_NAME := env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": TEST_DATABASE_NAME}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on a missing root
MEDIA_ROOT = VAR_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
LOGIN_URL = "/signin"
LOGIN_REDIRECT_URL = "/"

# Threads that run HTTP requests in each web (daphne) process; each keeps its own database
# connection (config/http.py).
WEB_THREADS: int = env.int("WEB_THREADS", default=4)

# --- REST API (/v1) -----------------------------------------------------------------------
# JWT access and refresh tokens (HS256). The key defaults to one derived from SECRET_KEY.
API_JWT_SECRET: str = env.str("API_JWT_SECRET", default="")
API_ACCESS_TOKEN_SECONDS: int = env.int("API_ACCESS_TOKEN_SECONDS", default=15 * 60)
API_REFRESH_TOKEN_SECONDS: int = env.int("API_REFRESH_TOKEN_SECONDS", default=7 * 24 * 3600)
# Seconds a web process keeps a user's role and active flag (changes made through this
# process apply at once).
API_PRINCIPAL_CACHE_SECONDS: float = env.float("API_PRINCIPAL_CACHE_SECONDS", default=5.0)
# Requests per minute, counted per signed-in user and per client IP (429 + Retry-After).
API_RATE_LIMIT_USER_PER_MINUTE: int = env.int("API_RATE_LIMIT_USER_PER_MINUTE", default=600)
API_RATE_LIMIT_IP_PER_MINUTE: int = env.int("API_RATE_LIMIT_IP_PER_MINUTE", default=1200)
# Token refreshes per minute and client IP (``POST /v1/auth/refresh``). Password guessing on
# every sign-in (``/v1/auth/login``, ``/signin``, ``/admin/login/``) is throttled by django-axes
# below, per username and client together.
API_RATE_LIMIT_LOGIN_PER_MINUTE: int = env.int("API_RATE_LIMIT_LOGIN_PER_MINUTE", default=20)
# Reverse proxies in front of the web process that append the client's address to
# X-Forwarded-For (0: the TCP peer is the client; headers are ignored, never trusted blindly).
TRUSTED_PROXY_COUNT: int = env.int("TRUSTED_PROXY_COUNT", default=0)
# A separate dashboard (Next.js on localhost:3000, Vercel) calls the API from the browser: name
# its origins. No origin is trusted by default except the local Next.js dev server when DEBUG
# is on; a wildcard (CORS_ALLOWED_ORIGIN_REGEXES) only when set explicitly.
CORS_ALLOWED_ORIGINS: list[str] = env.list(
    "CORS_ALLOWED_ORIGINS",
    default=["http://localhost:3000", "http://127.0.0.1:3000"] if DEBUG else [],
)
CORS_ALLOWED_ORIGIN_REGEXES: list[str] = env.list("CORS_ALLOWED_ORIGIN_REGEXES", default=[])
CORS_URLS_REGEX = r"^/v1/.*$"
CORS_EXPOSE_HEADERS = ["Location", "Retry-After"]

# --- Sign-in throttling (django-axes) -----------------------------------------------------
# Every sign-in (/signin, /admin/login/, POST /v1/auth/login) counts failures per username AND
# client address together: LOGIN_FAILURE_LIMIT failures lock that pair out for
# LOGIN_COOLOFF_MINUTES (429), and each further failure during the lock starts the cool-off
# again (back-off). A client guessing one account locks neither the other accounts behind the
# same proxy nor the account's owner signing in from elsewhere; a success clears the count.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT: int = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_CLIENT_IP_CALLABLE = "common.auth.address_of_client"
AXES_LOCKOUT_CALLABLE = "common.auth.login_lockout_response"
AXES_ENABLE_ADMIN = True
AXES_VERBOSE = False
# The kill switch's admin code (risk.services): wrong codes are counted per user and per
# client; after KILL_SWITCH_CODE_FREE_FAILURES failures each attempt waits a back-off that
# doubles from KILL_SWITCH_CODE_BACKOFF_SECONDS up to KILL_SWITCH_CODE_BACKOFF_MAX_SECONDS
# (429), and from KILL_SWITCH_CODE_ALERT_AFTER failures on every failure raises an alert.
KILL_SWITCH_CODE_FREE_FAILURES: int = env.int("KILL_SWITCH_CODE_FREE_FAILURES", default=3)
KILL_SWITCH_CODE_BACKOFF_SECONDS: float = env.float("KILL_SWITCH_CODE_BACKOFF_SECONDS", default=5.0)
KILL_SWITCH_CODE_BACKOFF_MAX_SECONDS: float = env.float(
    "KILL_SWITCH_CODE_BACKOFF_MAX_SECONDS", default=900.0
)
KILL_SWITCH_CODE_ALERT_AFTER: int = env.int("KILL_SWITCH_CODE_ALERT_AFTER", default=5)

# --- HTTPS and browser policies (docs/production-security.md) -----------------------------
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto, set SECURE_PROXY_SSL_HEADER=true.
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT: bool = env.bool("SECURE_SSL_REDIRECT", default=False)
# The load balancer's probe may speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS: int = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS: bool = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD: bool = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The dashboard loads scripts, styles and fonts from its own origin only (static/, no CDN);
# style attributes in the templates and plotly's injected styles need inline styles. The
# backtest report files inline plotly.js and get a wider policy of their own (config/urls.py).
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Redis, Celery, Channels ------------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
CELERY_BROKER_URL: str = env.str("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://"
CELERY_BROKER_DIR = VAR_DIR / "celery" / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER: bool = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery closes every database connection after every task unless this is set; connections
# follow Django's CONN_MAX_AGE instead (``config.celery.recycle_database_connections``).
CELERY_DB_REUSE_MAX = 1000

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Market data ------------------------------------------------------------------------
ALPACA_API_KEY: str = env.str("ALPACA_API_KEY", default="")
ALPACA_SECRET_KEY: str = env.str("ALPACA_SECRET_KEY", default="")
ALPACA_PAPER: bool = env.bool("ALPACA_PAPER", default=True)
# Orders on the live (real money) account: refused unless this is true, whatever else is set.
ALPACA_LIVE_TRADING_ENABLED: bool = env.bool("ALPACA_LIVE_TRADING_ENABLED", default=False)
ALPACA_BASE_URL: str = env.str("ALPACA_BASE_URL", default="")
ALPACA_DATA_URL: str = env.str("ALPACA_DATA_URL", default="")
ALPACA_DATA_FEED: str = env.str("ALPACA_DATA_FEED", default="iex")
ALPACA_RATE_LIMIT_PER_MINUTE: int = env.int("ALPACA_RATE_LIMIT_PER_MINUTE", default=200)
# Paper orders go to the local simulated broker unless Alpaca credentials are set.
TRADING_BROKER: str = env.str("TRADING_BROKER", default="alpaca" if ALPACA_API_KEY else "simulated")
POLYGON_API_KEY: str = env.str("POLYGON_API_KEY", default="")
POLYGON_BASE_URL: str = env.str("POLYGON_BASE_URL", default="https://api.polygon.io")
POLYGON_RATE_LIMIT_PER_MINUTE: int = env.int("POLYGON_RATE_LIMIT_PER_MINUTE", default=100)
MARKETDATA_PROVIDER: str = env.str("MARKETDATA_PROVIDER", default="") or (
    "alpaca" if ALPACA_API_KEY else "synthetic"
)
MARKETDATA_FALLBACK_PROVIDER: str = env.str(
    "MARKETDATA_FALLBACK_PROVIDER", default="polygon" if POLYGON_API_KEY else ""
)
MARKETDATA_EXCHANGE: str = env.str("MARKETDATA_EXCHANGE", default="XNYS")
MARKETDATA_SYNTHETIC_SEED: int = env.int("MARKETDATA_SYNTHETIC_SEED", default=42)
MARKETDATA_CHUNK_BARS: int = env.int("MARKETDATA_CHUNK_BARS", default=20_000)

# --- Paper trading ----------------------------------------------------------------------
# The SimulatedBroker, the embedded default broker: paper orders fill on the backtest's fill
# model against stored bars. Money values are read as text and kept exact (Decimal).
PAPER_STARTING_CASH: str = env.str("PAPER_STARTING_CASH", default="100000")
PAPER_LATENCY_MS: int = env.int("PAPER_LATENCY_MS", default=0)
PAPER_SLIPPAGE_BPS: str = env.str("PAPER_SLIPPAGE_BPS", default="10")
PAPER_COMMISSION: str = env.str("PAPER_COMMISSION", default="1.00")
# Share of a bar's volume one fill may take, e.g. 0.1 (default empty: no cap).
PAPER_MAX_VOLUME_PARTICIPATION: str = env.str("PAPER_MAX_VOLUME_PARTICIPATION", default="")

# --- Health -----------------------------------------------------------------------------
HEALTH_WORKER_MAX_AGE_SECONDS: int = env.int("HEALTH_WORKER_MAX_AGE_SECONDS", default=60)
HEALTH_BEAT_MAX_AGE_SECONDS: int = env.int("HEALTH_BEAT_MAX_AGE_SECONDS", default=120)
HEALTH_BROKER_MAX_AGE_SECONDS: int = env.int("HEALTH_BROKER_MAX_AGE_SECONDS", default=300)

# --- Jobs (backtests, walk-forwards, ingestion, model training) -------------------------------
# A worker stamps each job it runs every JOB_HEARTBEAT_SECONDS; a running job whose stamp is
# older than JOB_STALE_AFTER_SECONDS has lost its worker: the reaper (beat, every
# JOB_REAP_EVERY_SECONDS) re-queues it, or fails it once it has been started JOB_MAX_ATTEMPTS
# times. A queued job not taken for JOB_QUEUED_RESEND_SECONDS is sent again (its message may
# sit with a dead worker until the broker's visibility timeout).
JOB_HEARTBEAT_SECONDS: float = env.float("JOB_HEARTBEAT_SECONDS", default=10.0)
JOB_STALE_AFTER_SECONDS: int = env.int("JOB_STALE_AFTER_SECONDS", default=60)
JOB_REAP_EVERY_SECONDS: float = env.float("JOB_REAP_EVERY_SECONDS", default=30.0)
JOB_MAX_ATTEMPTS: int = env.int("JOB_MAX_ATTEMPTS", default=3)
JOB_QUEUED_RESEND_SECONDS: int = env.int("JOB_QUEUED_RESEND_SECONDS", default=300)
# What one walk-forward request may queue (grid points x windows tasks).
WALK_FORWARD_MAX_GRID_POINTS: int = env.int("WALK_FORWARD_MAX_GRID_POINTS", default=1000)
WALK_FORWARD_MAX_WINDOWS: int = env.int("WALK_FORWARD_MAX_WINDOWS", default=250)
WALK_FORWARD_MAX_TASKS: int = env.int("WALK_FORWARD_MAX_TASKS", default=5000)

# --- Alerts -----------------------------------------------------------------------------
# Repeats of an unacknowledged alert key within this window are grouped into one row.
ALERT_GROUP_WINDOW_SECONDS: int = env.int("ALERT_GROUP_WINDOW_SECONDS", default=300)
# Channels; an empty one is skipped. CRITICAL → all, WARNING → Slack + email, INFO → Slack.
ALERT_SLACK_WEBHOOK_URL: str = env.str("ALERT_SLACK_WEBHOOK_URL", default="")
ALERT_EMAIL_TO: list[str] = env.list("ALERT_EMAIL_TO", default=[])
ALERT_SMS_GATEWAY_URL: str = env.str("ALERT_SMS_GATEWAY_URL", default="")
ALERT_SMS_TOKEN: str = env.str("ALERT_SMS_TOKEN", default="")
ALERT_SMS_TO: list[str] = env.list("ALERT_SMS_TO", default=[])
# Seconds an alert HTTP call (Slack, SMS gateway) may take before it counts as failed.
ALERT_HTTP_TIMEOUT_SECONDS: float = env.float("ALERT_HTTP_TIMEOUT_SECONDS", default=5.0)

# --- Email (alert emails) -----------------------------------------------------------------
EMAIL_HOST: str = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT: int = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER: str = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD: str = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS: bool = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL: bool = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT: float = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="quant-alerts@localhost")
SERVER_EMAIL: str = DEFAULT_FROM_EMAIL

# --- Logging ----------------------------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env.str("LOG_FORMAT", default="console" if DEBUG else "json")
LOGGING_CONFIG = None
configure_logging(level=LOG_LEVEL, json=LOG_FORMAT == "json")
DJANGO_STRUCTLOG_CELERY_ENABLED = True

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)

# Installed into django-celery-beat's tables on beat start-up; editable in the admin.
CELERY_BEAT_SCHEDULE = {
    "beat-heartbeat": {"task": "monitoring.beat_heartbeat", "schedule": 30.0},
    # Jobs whose worker died: re-queued or failed (JOB_* above).
    "jobs-reap": {"task": "jobs.reap", "schedule": JOB_REAP_EVERY_SECONDS},
    # API sign-ins whose refresh tokens have all expired.
    "auth-token-families-purge": {
        "task": "auth.token_families_purge",
        "schedule": crontab(minute=40, hour=3),
    },
    # The trading loop (spec: strategy execution), order status polling every 5 s and
    # reconciliation against the broker every minute.
    "trading-tick": {"task": "trading.tick", "schedule": 60.0},
    "trading-poll-orders": {"task": "trading.poll_orders", "schedule": 5.0},
    "trading-reconcile": {"task": "trading.reconcile", "schedule": 60.0},
    "marketdata-daily-update": {
        "task": "marketdata.daily_update",
        # 22:15 UTC is after the 16:00 New York close in summer and winter time.
        "schedule": crontab(minute=15, hour=22, day_of_week="mon-fri"),
    },
}
