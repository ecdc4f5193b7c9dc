"""Deployment checks (`manage.py check --deploy`): the embedded default is one process on one
machine; say so when a deployment still runs on it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register

# (the embedded default in use, the warning, the hint, the id)
EMBEDDED_PARTS = [
    (
        lambda: settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3",
        "The database is the embedded SQLite file.",
        "Set DATABASE_URL to a PostgreSQL server to run more than one web process.",
        "platform.W001",
    ),
    (
        lambda: settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer",
        "The channel layer is in memory: websockets and inference workers of different processes never meet.",
        "Set REDIS_URL.",
        "platform.W002",
    ),
    (
        lambda: settings.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage",
        "Media are stored on this machine's disk.",
        "Set S3_BUCKET (and S3_ENDPOINT_URL for an S3-compatible server) when web processes run on several machines.",
        "platform.W003",
    ),
]


@register("platform", deploy=True)
def embedded_parts_in_deployment(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [Warning(text, hint=hint, id=check_id) for in_use, text, hint, check_id in EMBEDDED_PARTS if in_use()]
