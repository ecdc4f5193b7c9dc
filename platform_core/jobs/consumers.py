"""``/ws/o/<org>/jobs/``: live progress of the organisation's jobs.

A door, not a room: it joins the organisation group and forwards ``job.progress`` events to the
browser, filtered by who may see the job (reviewers and above: every job; an annotator: the jobs
they started). The browser sends nothing but an optional ``ping``.

A socket that only listens never sends a frame: the base consumer checks access before forwarding
an event once its last check is older than ``recheck_seconds``, and a revocation pushed to the
user's group closes it (or, for a changed role, changes what ``_may_see`` lets through) at once.
"""

from __future__ import annotations

from typing import Any

from platform_core.realtime import GroupEventsMixin, org_group
from platform_core.websockets import MessageError, TenantJsonConsumer


class JobsConsumer(GroupEventsMixin, TenantJsonConsumer):
    def group_names(self) -> list[str]:
        return [org_group(self.tenant.org.pk)]

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
        if self._may_see(event):
            await self.send_json({"type": "job.progress", "job": event["job"]})
