"""/healthz: the state of the database, the channel layer, storage and the inference models."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from inference import registry

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connection.vendor}


async def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    channel = await layer.new_channel("healthz.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "healthz.probe", "token": token})
    message = await layer.receive(channel)
    if message.get("token") != token:
        raise RuntimeError("the channel layer returned another message")
    return {"backend": type(layer).__name__}


def _check_storage() -> dict[str, Any]:
    # A real round trip: write, read back, delete a tiny file under a reserved prefix.
    storage = storages["default"]
    name = storage.save(f"healthz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with storage.open(name, "rb") as handle:
            if handle.read() != b"ok":
                raise RuntimeError("storage returned other bytes")
    finally:
        storage.delete(name)
    return {"backend": type(storage).__name__}


async def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT_S:.0f} s"}
    except Exception as exc:  # every failure is reported, none is raised
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, **detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _public(checks: dict[str, dict[str, Any]], inference: dict[str, Any]) -> tuple[dict, dict]:
    """What an anonymous caller (a load balancer) sees: states and backends, no error texts, hosts
    or paths, which can carry credentials or layout."""
    public_checks = {name: {k: v for k, v in result.items() if k != "error"} for name, result in checks.items()}
    public_inference = {k: v for k, v in inference.items() if k not in {"checkpoint_dir", "checkpoint_dir_exists"}}
    return public_checks, public_inference


@never_cache
async def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": await _timed(sync_to_async(_check_database)),
        "channel_layer": await _timed(_check_channel_layer),
        # Not thread-sensitive: a hanging storage endpoint must not hold the thread that serves
        # every other synchronous view of this process.
        "storage": await _timed(sync_to_async(_check_storage, thread_sensitive=False)),
    }
    failing = [name for name, result in checks.items() if not result["ok"]]
    for name in failing:
        logger.warning("healthz: %s failing: %s", name, checks[name]["error"])
    # Models are reported, not required: without a checkpoint the fallback segmenter serves.
    inference = await sync_to_async(registry.status)()
    user = await request.auser()
    if not user.is_superuser:
        checks, inference = _public(checks, inference)
    body = {
        "status": "ok" if not failing else "failing",
        "failing": failing,
        "checks": checks,
        "inference": inference,
    }
    return JsonResponse(body, status=200 if not failing else 503)
