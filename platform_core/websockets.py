"""Base consumer for tenant websockets: the door every socket goes through.

It authenticates from the session (AuthMiddlewareStack), resolves the organisation from the URL on
connect, caps message size and rate, parses JSON, and answers bad input with an error frame while
the socket stays open. Subclasses implement ``handle``; the ``Http404``, ``PermissionDenied`` and
``ValidationError`` that services raise there become ``not_found``, ``forbidden`` and ``invalid``
error frames (``exception_to_error`` is the hook for more, e.g. a version conflict).

Error frame: ``{"type": "error", "request_id": <echoed or null>, "code": "...", "message": "..."}``,
plus whatever the error carries (``errors`` per field for ``invalid``).

How access stays checked while a socket is open
-----------------------------------------------
Sign-out, deactivation, a password change, a removed membership or a changed role can all happen
while a socket is open. Two mechanisms, one fast and one that cannot be lost:

1. **Push.** Every socket joins its user's group (``platform_core.realtime.user_group``) before its
   first check. ``platform_core.signals`` publishes ``access.changed`` there after the change
   commits, from the models themselves (Membership saved or deleted, User saved with ``is_active``
   or ``password``, a Session row deleted, ``user_logged_out``), so every path is covered: the
   members page, the REST API, Django admin (single and bulk), cascades, the shell. Each socket of
   the user then reads session, user and membership again at once and closes with 4401 / 4404 when
   access ended, without the browser sending anything. An event about one ended session carries an
   HMAC fingerprint of its key: that session's sockets close without a query, others ignore it.

2. **A time bound.** A message or a group event is handled without any query while the last full
   check is younger than ``recheck_seconds`` (30 s); an older one triggers the full check first,
   which also joins the groups again (channel layers expire group membership after a day).
   So when a push is lost (the channel layer down, a full channel dropping it, a row changed by raw
   SQL or ``QuerySet.update``), a revoked socket still handles nothing, and forwards nothing, later
   than ``recheck_seconds`` after the change.

Why not a cached revision checked on every message: in the embedded default the cache is each
process's own memory, the same reach as the in-memory channel layer that carries the push; scaled
out, both are the same Redis, so they fail together. A cache read per message would also be a thread
hop (or a blocking network read on the event loop), the very cost removed here, to shorten a window
that the time bound already caps.

The per-message cost is then a clock comparison: ``bench/ws_ping.py`` measures it. ``dispatch``
also skips the thread hop Channels makes before every handler to close stale database
connections: database work in these consumers goes through ``database_sync_to_async``, which
closes them around every call.
"""

from __future__ import annotations

import json
import logging
import time
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import Http404
from django.utils.crypto import constant_time_compare

from platform_core.realtime import session_fingerprint, user_group
from platform_core.tenancy import Tenant, resolve_tenant

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class MessageError(Exception):
    """An error frame: ``code``, a readable ``text`` and any ``extra`` keys for the frame."""

    def __init__(self, code: str, text: str, **extra: Any) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.extra = extra


class RateLimiter:
    """A token bucket: ``rate`` messages a second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def validation_error_frame(exc: ValidationError) -> MessageError:
    """``invalid`` with the messages as one readable text, and per field when the error has fields."""
    if hasattr(exc, "error_dict"):
        errors = exc.message_dict
        text = " ".join(
            message if field == NON_FIELD_ERRORS else f"{field}: {message}"
            for field, messages in errors.items()
            for message in messages
        )
        return MessageError("invalid", text, errors=errors)
    return MessageError("invalid", " ".join(exc.messages), errors={NON_FIELD_ERRORS: exc.messages})


class TenantJsonConsumer(AsyncJsonWebsocketConsumer):
    rate_per_second = 20.0
    rate_burst = 40
    # The longest a revocation whose push was lost goes unnoticed (see the module docstring).
    recheck_seconds = 30.0

    tenant: Tenant | None = None
    access_ended = False
    checked_at = 0.0
    session_mark = ""  # the session's fingerprint, to recognise its own sign-out
    _groups_joined: tuple[str, ...] = ()

    # --- hooks for subclasses ----------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def group_names(self) -> list[str]:
        """Groups this socket listens to besides its user's (the tenant is resolved by then);
        joined on connect, again at every full check, left on disconnect."""
        return []

    def check_access(self) -> int | None:
        """Runs in the database thread after the tenant is resolved, on connect and at every full
        check: a close code refuses (e.g. the media item is no longer visible to this member)."""
        return None

    def exception_to_error(self, exc: Exception) -> MessageError | None:
        """The error frame for an exception raised by ``handle``; None lets it fail the socket.
        Subclasses map more and defer to this for the rest."""
        if isinstance(exc, Http404):
            return MessageError("not_found", str(exc) or "Not found.")
        if isinstance(exc, PermissionDenied):
            return MessageError("forbidden", str(exc) or "You may not do this.")
        if isinstance(exc, ValidationError):
            return validation_error_frame(exc)
        return None

    # --- connecting --------------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        session_key = self.scope["session"].session_key or ""
        self.session_mark = session_fingerprint(session_key) if session_key else ""
        # Into the user's group before the check: a revocation that commits while this socket
        # connects is either seen by the check or pushed to it afterwards.
        await self._join([user_group(user.pk)])
        refused = await database_sync_to_async(self._connect_check)(user)
        if refused:
            await self._refuse(refused)
            return
        self.limiter = RateLimiter(self.rate_per_second, self.rate_burst)
        self.checked_at = time.monotonic()
        await self._join(self.group_names())
        await self.accept()

    def _connect_check(self, user: Any) -> int | None:
        try:
            self.tenant = resolve_tenant(user, self.scope["url_route"]["kwargs"]["org_slug"])
        except Http404:
            return CLOSE_NOT_FOUND
        return self.check_access()

    async def _refuse(self, code: int) -> None:
        self.access_ended = True
        await self.close(code=code)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # Here rather than in disconnect(), which subclasses override.
        for group in self._groups_joined:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:
                logger.warning("Could not leave %s", group, exc_info=True)
        self._groups_joined = ()
        await super().websocket_disconnect(message)

    async def _join(self, groups: list[str]) -> None:
        if self.channel_layer is None:
            return
        for group in groups:
            try:
                await self.channel_layer.group_add(group, self.channel_name)
            except Exception:
                # No live events for this socket until the next full check joins again; the time
                # bound still ends access that is revoked meanwhile.
                logger.warning("Could not join %s", group, exc_info=True)
                continue
            if group not in self._groups_joined:
                self._groups_joined = (*self._groups_joined, group)

    # --- the access check --------------------------------------------------------------------

    async def ensure_access(self) -> bool:
        """Whether this socket may go on: free while the last full check is recent, else the full
        check (which closes the socket when access ended)."""
        if self.access_ended:
            return False
        if time.monotonic() - self.checked_at < self.recheck_seconds:
            return True
        return await self.recheck_access()

    async def recheck_access(self) -> bool:
        refused = await database_sync_to_async(self.recheck)()
        if refused:
            await self._refuse(refused)
            return False
        self.checked_at = time.monotonic()
        await self._join([user_group(self.scope["user"].pk), *self.group_names()])
        return True

    def recheck(self) -> int | None:
        """Session, user and membership read again in one thread hop; a close code when any is gone."""
        session_key = self.scope["session"].session_key
        if not session_key:
            return CLOSE_UNAUTHENTICATED
        # A fresh read of the session row: a missing or expired session reads as empty, and a
        # session whose stored data changed (a new password hash) is read as it is now.
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        # Django's own per-request check: refuses inactive users and sessions whose password hash
        # no longer matches (a password change signs every other session out).
        user = get_user(SimpleNamespace(session=session))
        if not user.is_authenticated or user.pk != self.scope["user"].pk:
            return CLOSE_UNAUTHENTICATED
        try:
            self.tenant = resolve_tenant(user, self.tenant.org.slug)
        except Http404:
            return CLOSE_NOT_FOUND
        self.scope["user"] = user
        return self.check_access()

    async def access_changed(self, event: dict[str, Any]) -> None:
        """Pushed to the user's group when their access may have ended (platform_core.signals)."""
        ended_session = event.get("session")
        if ended_session:
            # One session ended: its own sockets close; the user's other sessions are unaffected.
            if self.session_mark and constant_time_compare(ended_session, self.session_mark):
                await self._refuse(CLOSE_UNAUTHENTICATED)
            return
        await self.recheck_access()

    # --- messages ----------------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        message_type = message.get("type", "")
        if self.access_ended and message_type != "websocket.disconnect":
            return  # closed for lost access: nothing more is handled or forwarded
        if not message_type.startswith("websocket.") and message_type != "access.changed":
            # A group event: forwarded only while access is known to hold.
            if not await self.ensure_access():
                return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message_type}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        request_id = None
        try:
            # Every frame costs a token, whatever it holds: floods of bad frames are limited too.
            if not self.limiter.allow():
                raise MessageError("rate_limited", "Too many messages; slow down.")
            if text_data is None:
                raise MessageError("bad_message", "Send JSON text messages, not binary frames.")
            # Characters first: a string longer than the cap in characters is longer in bytes too,
            # and is not copied to be measured.
            limit = settings.WS_MAX_MESSAGE_BYTES
            if len(text_data) > limit or len(text_data.encode()) > limit:
                raise MessageError("too_large", f"Messages are limited to {settings.WS_MAX_MESSAGE_BYTES} bytes.")
            try:
                message = json.loads(text_data)
            except ValueError:
                raise MessageError("bad_json", "The message is not valid JSON.") from None
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise MessageError("bad_message", 'A message is a JSON object with a "type".')
            request_id = message.get("request_id")
            if request_id is not None and (not isinstance(request_id, str | int) or len(str(request_id)) > 64):
                request_id = None
                raise MessageError("bad_message", "request_id must be a string or number of at most 64 characters.")
            if not await self.ensure_access():
                return
            try:
                await self.handle(message)
            except Exception as exc:
                error = self.exception_to_error(exc)
                if error is None:
                    raise
                raise error from exc
        except MessageError as exc:
            await self.send_error(exc, request_id=request_id)

    async def send_error(self, error: MessageError, *, request_id: Any = None) -> None:
        await self.send_json(
            {"type": "error", "request_id": request_id, "code": error.code, "message": error.text, **error.extra}
        )


class PingConsumer(TenantJsonConsumer):
    """Answers ``ping`` with ``pong`` sent through the channel layer, proving the layer works."""

    async def handle(self, message: dict[str, Any]) -> None:
        if message["type"] != "ping":
            raise MessageError("unknown_type", f"Unknown message type {message['type'][:40]!r}.")
        await self.channel_layer.send(
            self.channel_name,
            {"type": "pong.reply", "request_id": message.get("request_id"), "sent": time.time()},
        )

    async def pong_reply(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "pong",
                "request_id": event["request_id"],
                "organization": self.tenant.org.slug,
                "layer": type(self.channel_layer).__name__,
            }
        )
