"""Settings, read from the environment.

Unset variables give the embedded default (SQLite under var/, the in-memory channel layer, local
files, inference in the web process); DATABASE_URL, REDIS_URL and S3_BUCKET switch to PostgreSQL,
Redis and S3. A value that cannot be parsed stops start-up with the variable's name.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from platform_core.env import env_bool, env_int, env_list, env_str, env_url
from platform_core.storage import s3_storage

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 - only ever used with DEBUG=1

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "platform_core.apps.PlatformAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_htmx",
    "template_partials",
    "drf_spectacular",
    "axes",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "platform_core",
    "annotation",
    "crowd",
    "inference",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as its documentation asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "platform_core.urls"
ASGI_APPLICATION = "platform_core.asgi.application"

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
                "platform_core.context_processors.memberships",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    schemes=("sqlite", "postgres", "postgresql"),
    default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
)
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh checkout has no var/ yet; SQLite creates the file but not its folder.
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Several threads of one ASGI process (and the job worker) write to the file. Transactions
    # take the write lock when they begin (IMMEDIATE) and wait up to 20 s for it: a deferred
    # transaction that reads first and writes later fails at once with "database is locked" when
    # another one writes (SQLite cannot wait there without a deadlock). WAL lets readers go on
    # while one writes and syncs less often.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer --------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py's default 5 s read timeout would end channels-redis's 5 s blocking pops: a
            # socket or worker idle for 5 s would fail. Longer than the pop, still finite.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                "prefix": env_str("CHANNEL_PREFIX", "annotation"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Cache ----------------------------------------------------------------------------------
# The API's rate limits count in the cache: with REDIS_URL every web process counts in Redis;
# otherwise each process keeps its own counts in memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_PREFIX", "annotation"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

WS_MAX_MESSAGE_BYTES = env_int("WS_MAX_MESSAGE_BYTES", 64 * 1024, minimum=1024)

# --- Storage --------------------------------------------------------------------------------
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media-files/"  # never served directly: media goes through tenant-checked views
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    DEFAULT_STORAGE = s3_storage(
        bucket=S3_BUCKET,
        endpoint_url=env_url("S3_ENDPOINT_URL", schemes=("http", "https")) or None,
        region=env_str("S3_REGION") or None,
        access_key=env_str("S3_ACCESS_KEY_ID") or None,
        secret_key=env_str("S3_SECRET_ACCESS_KEY") or None,
        prefix=env_str("S3_PREFIX"),
        url_expire_seconds=env_int("S3_URL_EXPIRE_SECONDS", 3600, minimum=60),
    )
else:
    DEFAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT, "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 50 * 1024 * 1024, minimum=1024)
# The largest COCO file a dataset import reads (it is parsed whole, then checked before anything is written).
DATASET_IMPORT_MAX_JSON_BYTES = env_int("DATASET_IMPORT_MAX_JSON_BYTES", 200 * 1024 * 1024, minimum=1024)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 100_000_000, minimum=1)
# Videos (annotation.video_files): the bytes limit is checked before anything is decoded, the frame
# count and duration from the container's headers (or by reading its packets), and each frame's
# pixels against MAX_IMAGE_PIXELS. Clips of at most VIDEO_INLINE_MAX_PIXELS (frames × width × height)
# have their frames extracted during the upload; longer ones in a background job.
VIDEO_MAX_BYTES = env_int("VIDEO_MAX_BYTES", 500 * 1024 * 1024, minimum=1024)
VIDEO_MAX_FRAMES = env_int("VIDEO_MAX_FRAMES", 3000, minimum=1)
VIDEO_MAX_SECONDS = env_int("VIDEO_MAX_SECONDS", 600, minimum=1)
VIDEO_INLINE_MAX_PIXELS = env_int("VIDEO_INLINE_MAX_PIXELS", 25_000_000, minimum=0)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Inference ------------------------------------------------------------------------------
SAM2_CHECKPOINT_DIR = Path(env_str("SAM2_CHECKPOINT_DIR", str(DATA_DIR / "checkpoints")))
INFERENCE_DEVICE = env_str("INFERENCE_DEVICE", "auto")
if INFERENCE_DEVICE not in {"auto", "cpu", "cuda"} and not INFERENCE_DEVICE.startswith("cuda:"):
    raise ImproperlyConfigured(f"INFERENCE_DEVICE={INFERENCE_DEVICE!r}: use auto, cpu, cuda or cuda:N.")
# Memory for warm image embeddings (about 6 MiB each for SAM 2.1 at 1024 px), least recently used
# evicted first.
INFERENCE_EMBEDDING_CACHE_MB = env_int("INFERENCE_EMBEDDING_CACHE_MB", 1024, minimum=1)
# Memory for warm video states (SAM 2's per-video inference state: frames and memories) per process.
INFERENCE_VIDEO_STATES_MB = env_int("INFERENCE_VIDEO_STATES_MB", 4096, minimum=1)
# Where studio prompts run (inference/dispatch.py): "inline" in this process's thread pool, or "worker" on
# `manage.py inference_worker` processes over the channel layer (needs REDIS_URL); and how long a prompt waits.
INFERENCE_MODE = env_str("INFERENCE_MODE", "inline")
if INFERENCE_MODE not in {"inline", "worker"}:
    raise ImproperlyConfigured(f"INFERENCE_MODE={INFERENCE_MODE!r}: use inline or worker.")
if INFERENCE_MODE == "worker" and not REDIS_URL:
    raise ImproperlyConfigured(
        "INFERENCE_MODE=worker needs REDIS_URL: prompts reach inference_worker processes through it."
    )
INFERENCE_TIMEOUT_SECONDS = env_int("INFERENCE_TIMEOUT_SECONDS", 30, minimum=1)

# --- Mechanical Turk -----------------------------------------------------------------------
# The requester API (crowd/mturk.py): the sandbox unless MTURK_SANDBOX=0; MTURK_ENDPOINT_URL overrides
# the official endpoint the flag picks. Keys unset: boto3's usual chain (environment, instance role).
MTURK_SANDBOX = env_bool("MTURK_SANDBOX", True)
MTURK_ENDPOINT_URL = env_url("MTURK_ENDPOINT_URL", schemes=("https", "http"))
MTURK_ACCESS_KEY_ID = env_str("MTURK_ACCESS_KEY_ID")
MTURK_SECRET_ACCESS_KEY = env_str("MTURK_SECRET_ACCESS_KEY")
if bool(MTURK_ACCESS_KEY_ID) != bool(MTURK_SECRET_ACCESS_KEY):
    raise ImproperlyConfigured("Set MTURK_ACCESS_KEY_ID and MTURK_SECRET_ACCESS_KEY together (or neither).")

# --- Crowd workers --------------------------------------------------------------------------
# SITE_URL makes the absolute entry URLs that `manage.py crowd_urls` prints (and providers open).
SITE_URL = env_url("SITE_URL", schemes=("https", "http"), default="http://127.0.0.1:8000").rstrip("/")
# How long a worker's signed assignment or qualification token stays valid.
CROWD_TOKEN_MAX_AGE_SECONDS = env_int("CROWD_TOKEN_MAX_AGE_SECONDS", 86400, minimum=60)
# A worker with at least 3 hidden-gold answers is blocked below this accuracy (percent) over the last 10.
CROWD_BLOCK_ACCURACY_PERCENT = env_int("CROWD_BLOCK_ACCURACY_PERCENT", 70, minimum=0)
# Where a study link sends a worker at the end; ?cc=<completion or screen-out code> is added.
CROWD_LINK_COMPLETION_URL = env_url(
    "CROWD_LINK_COMPLETION_URL", schemes=("https", "http"), default="https://app.prolific.com/submissions/complete"
)
# The only hosts that may frame worker pages and receive their Mechanical Turk form (turkSubmitTo).
CROWD_MTURK_HOSTS = env_list("CROWD_MTURK_HOSTS", ["https://www.mturk.com", "https://workersandbox.mturk.com"])

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Counts failed sign-ins and refuses locked-out accounts / clients before the password check.
    "platform_core.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# LOGIN_FAILURE_LIMIT wrong passwords for one account, or from one client address, lock that account
# / address out for LOGIN_LOCKOUT_MINUTES (django-axes; see platform_core/login_throttle.py).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# Counts live in the database, shared by every web process (axes' cache handler would need a shared
# cache and loses them on a restart).
AXES_HANDLER = "platform_core.login_throttle.AccountResetDatabaseHandler"
AXES_RESET_ON_SUCCESS = True
# Tries made while locked out are refused without being counted, so the lockout ends at the time
# the page announces instead of moving with every retry.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "platform_core.login_throttle.lockout_response"
# The client address is REMOTE_ADDR (django-ipware is not installed, so axes' AXES_IPWARE_* settings
# do nothing): behind a proxy, daphne runs with --proxy-headers to put the client's address there.
# The attempt records span organisations: superusers read them with manage.py axes_list_attempts.
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "annotation@localhost")
INVITATION_DAYS = env_int("INVITATION_DAYS", 7, minimum=1)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"


def api_rate(name: str, default: str) -> str:
    """A DRF rate, `<requests>/<second|minute|hour|day>`, checked here: DRF would fail only on the
    first API call."""
    value = env_str(name, default)
    count, _, period = value.partition("/")
    # DRF reads only the first letter of the period.
    if not count.isdigit() or int(count) < 1 or not period.isalpha() or period[0] not in "smhd":
        raise ImproperlyConfigured(f"{name}={value!r}: use <requests>/<second|minute|hour|day>, e.g. 60/minute.")
    return value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes anonymous API calls a 401, not a 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Requests per client address (anonymous) or per user, counted in the cache (see CACHES).
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": api_rate("API_RATE_ANON", "60/minute"),
        "user": api_rate("API_RATE_USER", "1200/minute"),
    },
    # The client address is REMOTE_ADDR (daphne --proxy-headers puts the client's there behind a
    # proxy); DRF's default would trust any X-Forwarded-For a client sends and count it apart.
    "NUM_PROXIES": 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Annotation platform API",
    "DESCRIPTION": "Projects, labels and questions, media, tasks, members and jobs of an organisation. "
    "Authenticate with `Authorization: Token <key>` (create one on your profile page).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Content-Security-Policy ----------------------------------------------------------------
# No inline scripts or styles anywhere: every script and stylesheet is a static file.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:", *([] if not S3_BUCKET else ["https:", "http:"])],
        "connect-src": ["'self'", "ws:", "wss:"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Background jobs (the Tasks API) --------------------------------------------------------
# The database backend runs on SQLite and PostgreSQL; `manage.py db_worker` runs the jobs.
TASKS = {
    "default": {
        "BACKEND": env_str("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default", "gpu"],
    }
}
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 120, minimum=10)

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging --------------------------------------------------------------------------------
# The root logger is configured here because sam2's builder logs through it (and adds its own
# handler when the root has none).
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
