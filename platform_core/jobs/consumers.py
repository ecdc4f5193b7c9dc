"""``/ws/o/<org>/jobs/``: live progress of the organisation's jobs.

A door, not a room: it joins the organisation group on connect and forwards ``job.progress``
events to the browser, filtered by who may see the job (reviewers and above: every job; an
annotator: the jobs they started). The browser sends nothing but an optional ``ping``.
"""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async

from platform_core.realtime import GroupEventsMixin, org_group
from platform_core.websockets import MessageError, TenantJsonConsumer

# A socket that only listens never sends a frame, so the per-message re-check of session and
# membership would never run: events re-check at most this often instead.
RECHECK_SECONDS = 30.0


class JobsConsumer(GroupEventsMixin, TenantJsonConsumer):
    group: str | None = None

    async def connect(self) -> None:
        await super().connect()
        if getattr(self, "tenant", None) is None:
            return  # refused and closed by the door
        self.group = org_group(self.tenant.org.pk)
        self.checked_at = time.monotonic()
        await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def handle(self, message: dict[str, Any]) -> None:
        if message["type"] != "ping":
            raise MessageError("unknown_type", f"Unknown message type {message['type'][:40]!r}.")
        await self.send_json({"type": "pong", "request_id": message.get("request_id")})

    def _may_see(self, event: dict[str, Any]) -> bool:
        from platform_core.models import Role

        if self.tenant.has_role(Role.REVIEWER):
            return True
        return event.get("created_by_id") is not None and event["created_by_id"] == self.scope["user"].pk

    async def job_progress(self, event: dict[str, Any]) -> None:
        if time.monotonic() - self.checked_at > RECHECK_SECONDS:
            # Reads only: session, user and membership (a removed member's socket closes here).
            self.checked_at = time.monotonic()
            refused = await database_sync_to_async(self.recheck)()
            if refused:
                await self.close(code=refused)
                return
        if self._may_see(event):
            await self.send_json({"type": "job.progress", "job": event["job"]})
