"""Base consumer for tenant websockets: the door every socket goes through.

It authenticates from the session (AuthMiddlewareStack), resolves the organisation from the URL on
connect and again on every message, caps message size and rate, parses JSON, and answers bad input
with an error message while the socket stays open. Subclasses implement ``handle``.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user
from django.http import Http404

from platform_core.tenancy import Tenant, resolve_tenant

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


class MessageError(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


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


class TenantJsonConsumer(AsyncJsonWebsocketConsumer):
    rate_per_second = 20.0
    rate_burst = 40
    tenant: Tenant

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.tenant = await database_sync_to_async(resolve_tenant)(
                user, self.scope["url_route"]["kwargs"]["org_slug"]
            )
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.limiter = RateLimiter(self.rate_per_second, self.rate_burst)
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        request_id = None
        try:
            # Every frame costs a token, whatever it holds: floods of bad frames are limited too.
            if not self.limiter.allow():
                raise MessageError("rate_limited", "Too many messages; slow down.")
            if text_data is None:
                raise MessageError("bad_message", "Send JSON text messages, not binary frames.")
            if len(text_data.encode()) > settings.WS_MAX_MESSAGE_BYTES:
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
            # Sign-out, deactivation, a password change or a revoked membership can happen while a
            # socket is open: check session, user and tenant again on every message.
            refused = await database_sync_to_async(self.recheck)()
            if refused:
                await self.close(code=refused)
                return
            await self.handle(message)
        except MessageError as exc:
            await self.send_json({"type": "error", "code": exc.code, "text": exc.text, "request_id": request_id})

    def recheck(self) -> int | None:
        """Session, user and membership, read again in one thread hop; a close code when any is gone."""
        session = self.scope["session"]
        if not session.session_key or not session.exists(session.session_key):
            return CLOSE_UNAUTHENTICATED
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
        return None

    async def handle(self, message: dict[str, Any]) -> None:
        raise NotImplementedError


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
