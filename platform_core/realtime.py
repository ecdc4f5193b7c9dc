"""The realtime base: channel group names and publishing events after the transaction commits.

Groups exist per organisation, project and media item, and per user: a user's group carries
``access.changed`` (published by ``platform_core.signals`` when a sign-out, a membership change or
a deactivation may end access), which every open socket of that user answers by checking its
access again at once (``platform_core.websockets``). Services publish with
``publish_after_commit``: a rolled-back change never reaches a browser, and an event never arrives
before the rows it describes can be read. Events are channel-layer messages whose ``type`` names
the consumer handler (``"job.progress"`` → ``job_progress``).

A group is shared by every page of its scope, so it carries events for many kinds of consumer:
consumers that join groups use ``GroupEventsMixin`` and drop event types they have no handler for.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.consumer import get_handler_name
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils.crypto import salted_hmac

logger = logging.getLogger(__name__)

PUBLISH_WAIT_SECONDS = 10


def org_group(org_id: int) -> str:
    return f"org.{int(org_id)}"


def project_group(project_id: int) -> str:
    return f"project.{int(project_id)}"


def media_group(media_id: int) -> str:
    return f"media.{int(media_id)}"


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def session_fingerprint(session_key: str) -> str:
    """Names a session in events without putting its key (a credential) on the channel layer."""
    return salted_hmac("platform_core.realtime.session", session_key, algorithm="sha256").hexdigest()[:32]


def publish_access_changed(user_id: int, *, ended_session_key: str = "", using: str | None = None) -> None:
    """After commit, tell every open socket of the user to check its access again; with
    ``ended_session_key``, only that session ended: its sockets close and the others carry on."""
    event: dict[str, Any] = {"type": "access.changed"}
    if ended_session_key:
        event["session"] = session_fingerprint(ended_session_key)
    publish_after_commit(user_group(user_id), event, using=using)


def _caller_event_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of the async code this thread does sync work for (through asgiref's
    ``sync_to_async``), if any."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def publish(group: str, event: dict[str, Any]) -> None:
    """Send ``event`` to ``group`` now. Best effort: the database holds the truth and pages read it
    on load, so a channel layer that is down loses a live update, never data, and never fails the
    work that published it.

    Sync work done for async code sends through that code's event loop (the in-memory layer's
    queues belong to it), waiting at most ``PUBLISH_WAIT_SECONDS``: a loop that stops meanwhile (the
    server shutting down) never runs the send, and an endless wait would keep the process from
    exiting."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = _caller_event_loop()
        if loop is None:
            async_to_sync(layer.group_send)(group, event)
            return
        sent = asyncio.run_coroutine_threadsafe(layer.group_send(group, event), loop)
        try:
            sent.result(timeout=PUBLISH_WAIT_SECONDS)
        except TimeoutError:
            sent.cancel()
            raise
    except Exception:
        logger.warning("Could not publish %s to %s", event.get("type"), group, exc_info=True)


def publish_after_commit(group: str, event: dict[str, Any], *, using: str | None = None) -> None:
    """Send ``event`` to ``group`` once the current transaction commits (at once outside one);
    nothing is sent when it rolls back."""
    transaction.on_commit(functools.partial(publish, group, event), using=using)


class GroupEventsMixin:
    """For consumers that join shared groups: an event type without a handler here is meant for
    another kind of page and is dropped (Channels would otherwise fail the consumer)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        message_type = message.get("type", "")
        if not message_type.startswith("websocket.") and getattr(self, get_handler_name(message), None) is None:
            return
        await super().dispatch(message)  # type: ignore[misc]
