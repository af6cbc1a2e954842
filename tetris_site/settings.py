"""Django settings, read from the environment with defaults that work on a laptop.

Every variable is listed in `.env.example` and in the README's settings table.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from tetris_site.env import (
    default_data_dir,
    env_bool,
    env_int,
    env_list,
    env_str,
    read_secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# What any process of the app writes (the SQLite file, checkpoints, logs) is this account's
# alone, however the process was started: every one of them reads these settings first.
os.umask(0o077)
# Only read here: the launchers create the folder and the key (tetris_site.env.prepare_data_dir).
DATA_DIR = default_data_dir(BASE_DIR)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY") or read_secret_key(DATA_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
PORT = env_int("PORT", 8000)
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    # ninja: its own copy of Swagger UI, so /api/docs works with no other host reachable
    "ninja",
    "trainer",
    "visualizer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "tetris_site.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tetris_site.middleware.ApiMethodNotAllowedMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tetris_site.middleware.PagesLoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttling: 5 failures for one username from one address lock it for 15 minutes.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Password spraying: an address with this many failures, over all usernames, within
# AXES_COOLOFF_TIME is refused any sign-in (a lab behind one NAT address shares it).
SIGN_IN_FAILURES_PER_ADDRESS = env_int("SIGN_IN_FAILURES_PER_ADDRESS", 30)
SIGNUPS_PER_ADDRESS_PER_HOUR = env_int("SIGNUPS_PER_ADDRESS_PER_HOUR", 5)
# Proxies in front of daphne (nginx: 1): the lockout counts the client's own address.
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
AXES_CLIENT_IP_CALLABLE = "tetris_site.client_ip.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

ROOT_URLCONF = "tetris_site.urls"
ASGI_APPLICATION = "tetris_site.asgi.application"
WSGI_APPLICATION = None

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
                "tetris_site.context_processors.site",
            ],
        },
    },
]

# Database: a SQLite file in the data folder unless DATABASE_URL names another (PostgreSQL).
_SQLITE_URL = f"sqlite:///{DATA_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", _SQLITE_URL), conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web read while a worker writes metrics; IMMEDIATE avoids the
    # "database is locked" upgrade deadlock between two writers.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so that the workers and daphne the tests start can share it; one
    # per test process, so that two suites run from one checkout never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test_db.{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _default_redis_url() -> str:
    # `make run` writes the URL of its private Redis here, so that `manage.py` commands
    # run from another terminal reach the same Redis.
    launcher_file = DATA_DIR / "redis.url"
    if launcher_file.exists():
        return launcher_file.read_text().strip()
    return "redis://127.0.0.1:6379/0"


REDIS_URL = env_str("REDIS_URL") or _default_redis_url()


# The channel layer carries the consumers' control events (a run going private); the live
# frames, metrics and statuses reach the browsers through visualizer/hub.py.
CHANNEL_LAYER = env_str("CHANNEL_LAYER", "pubsub")
_CHANNEL_LAYER_BACKENDS = {
    # Redis pub/sub: one PUBLISH per group message, fanned out by each daphne in memory.
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    # The classic layer: a Redis list per consumer channel (the Channels tutorial's).
    "core": "channels_redis.core.RedisChannelLayer",
}
if CHANNEL_LAYER not in _CHANNEL_LAYER_BACKENDS:
    raise ValueError(f"CHANNEL_LAYER={CHANNEL_LAYER!r}: use pubsub or core")


# Redis connections one web process's channel layer may open at once. redis-py's default
# of 100 fails the 101st viewer that joins a group while 100 others are joining
# ("Too many connections"), as 300 viewers opening a run at once do.
CHANNEL_LAYER_MAX_CONNECTIONS = 10_000


def channel_layers_for(redis_url: str, kind: str = CHANNEL_LAYER) -> dict:
    """Channel layer settings for one Redis."""
    host = {"address": redis_url, "max_connections": CHANNEL_LAYER_MAX_CONNECTIONS}
    return {"default": {"BACKEND": _CHANNEL_LAYER_BACKENDS[kind], "CONFIG": {"hosts": [host]}}}


CHANNEL_LAYERS = channel_layers_for(REDIS_URL)

# Celery: training runs on queue "training", one run per worker process. Early
# acknowledgement (acks_late off) means a broker never redelivers a run that a worker
# already took, even past the visibility timeout; a lost worker is found by the
# heartbeat sweep instead.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A busy worker must not reserve the next run: it would sit unstarted behind a run that
# trains for hours while another worker is idle.
CELERY_WORKER_DISABLE_PREFETCH = True
CELERY_TASK_DEFAULT_QUEUE = "training"
# Plays (a checkpoint playing for viewers) are short and light, and evaluations come in
# chunks of a few games: each has its own queue, so its workers never wait behind a run
# that trains for hours.
CELERY_TASK_ROUTES = {
    "trainer.tasks.play_game": {"queue": "play"},
    "trainer.tasks.evaluate_chunk": {"queue": "evaluate"},
    "trainer.tasks.cem_games": {"queue": "evaluate"},
    "trainer.tasks.*": {"queue": "training"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Only messages fetched but not yet acknowledged are redelivered after this; with early
# acknowledgement, a run that trains for days is never handed out again.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("BROKER_VISIBILITY_TIMEOUT", 3600),
}
# How live frames reach daphne's sockets (visualizer/socket_writer.py): framed once and
# written straight to them (`direct`), through autobahn's public `sendPreparedMessage`
# (`prepared`), or through Channels and daphne's ASGI path (`asgi`), as any server would.
SOCKET_WRITES = env_str("SOCKET_WRITES", "direct")
if SOCKET_WRITES not in ("direct", "prepared", "asgi"):
    raise ValueError(f"SOCKET_WRITES={SOCKET_WRITES!r}: use direct, prepared or asgi")
# Live sockets one user may have open at once, over all web processes (0: no limit); one
# more is closed with 4429 (visualizer/consumers.py).
MAX_SOCKETS_PER_USER = env_int("MAX_SOCKETS_PER_USER", 20)
TORCH_THREADS = env_int("TORCH_THREADS", 0)  # 0: cores / worker processes
# Per-user caps (0: none). Runs queued or running at once: past it, a new run or a
# resume is refused (HTTP 429).
MAX_ACTIVE_RUNS_PER_USER = env_int("MAX_ACTIVE_RUNS_PER_USER", 3)
# Plays one user may have played by the workers at once; another answers 4429.
MAX_LIVE_PLAYS_PER_USER = env_int("MAX_LIVE_PLAYS_PER_USER", 4)
# An experiment's configurations, and its runs (configurations x seeds), at most.
MAX_EXPERIMENT_TRIALS = env_int("MAX_EXPERIMENT_TRIALS", 64)
MAX_EXPERIMENT_RUNS = env_int("MAX_EXPERIMENT_RUNS", 256)
# Metric rows one run stores per second at most (beyond it, episodes are sampled: the
# run's counts, best and curve still count every one), and the largest checkpoint a run
# may write (larger: the run fails, saying so). 0: no limit.
MAX_METRIC_ROWS_PER_SECOND = env_int("MAX_METRIC_ROWS_PER_SECOND", 200)
MAX_CHECKPOINT_MB = env_int("MAX_CHECKPOINT_MB", 256)
# A running run whose heartbeat is older than this is failed as "worker lost".
RUN_STALE_SECONDS = env_int("RUN_STALE_SECONDS", 60)
# A training loop that makes no progress for this long stops its heartbeat (so the
# sweep fails it as lost and terminates its worker process): a hung loop, not a slow one.
RUN_HANG_SECONDS = env_int("RUN_HANG_SECONDS", 600)
# A run still `stopping` this long after the request has its worker process terminated;
# it ends `stopped` at its last checkpoint (or `failed` with "did not stop" without one).
RUN_STOP_TIMEOUT_SECONDS = env_int("RUN_STOP_TIMEOUT_SECONDS", 30)
# A queued run that has waited this long and is in no queue (Redis lost it, or a worker
# died as it took it) is sent to the workers again.
RUN_REQUEUE_AFTER_SECONDS = env_int("RUN_REQUEUE_AFTER_SECONDS", 30)
# How often each worker sweeps for lost, stuck and unqueued runs and lost evaluation chunks.
SWEEP_SECONDS = env_int("SWEEP_SECONDS", 5)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Outside DATA_DIR (0700) where a proxy running as another account serves it.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))

# Where checkpoint files are kept. `files` (the default): under MEDIA_ROOT, as any laptop
# expects. `database`: in the database itself, in 1 MiB chunks (trainer/storage.py), so
# hosts that share the database and Redis and nothing else can resume, evaluate, play and
# download each other's runs; a checkpoint is a few hundred kilobytes.
CHECKPOINT_STORAGE = env_str("CHECKPOINT_STORAGE", "files")
_CHECKPOINT_BACKENDS = {
    "files": "django.core.files.storage.FileSystemStorage",
    "database": "trainer.storage.DatabaseStorage",
}
if CHECKPOINT_STORAGE not in _CHECKPOINT_BACKENDS:
    raise ValueError(
        f"CHECKPOINT_STORAGE must be one of {', '.join(_CHECKPOINT_BACKENDS)}, "
        f"got {CHECKPOINT_STORAGE!r}"
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "checkpoints": {"BACKEND": _CHECKPOINT_BACKENDS[CHECKPOINT_STORAGE]},
}

# HTTPS=1 behind a TLS-terminating proxy: secure cookies, HSTS and redirect to https.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31_536_000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_REFERRER_POLICY = "same-origin"
# Scripts, styles, fonts and sockets from this site only; no inline script anywhere (page
# data travels in json_script blocks, which do not run). Inline style attributes stay
# allowed: the compare page colours each run with a CSS variable in one. Swagger UI's
# icons are data: images.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
