"""Deployment checks (`manage.py check --deploy`): the embedded default is one process on one
machine; say so when a deployment still runs on it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register("platform", deploy=True)
def embedded_parts_in_deployment(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    warnings = []
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        warnings.append(
            Warning(
                "The database is the embedded SQLite file.",
                hint="Set DATABASE_URL to a PostgreSQL server to run more than one web process.",
                id="platform.W001",
            )
        )
    if settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer":
        warnings.append(
            Warning(
                "The channel layer is in memory: websockets and inference workers of different processes never meet.",
                hint="Set REDIS_URL.",
                id="platform.W002",
            )
        )
    if settings.STORAGES["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage":
        warnings.append(
            Warning(
                "Media are stored on this machine's disk.",
                hint="Set S3_BUCKET (and S3_ENDPOINT_URL for an S3-compatible server) when web processes run on "
                "several machines.",
                id="platform.W003",
            )
        )
    return warnings
