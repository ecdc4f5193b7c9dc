"""``/ws/o/<org>/studio/<media_id>/``: the studio's socket for one item.

A door, not a room: it checks on connect (and at every full access check) that the member may
work on the item (the annotator-scope rule of ``annotation.selectors.media_get``), joins the item's
group, validates each message with the REST API's own input serializers, hands it to the
annotation services, and forwards what others change on the item.

Client → server (every message may carry a ``request_id``, echoed in the reply):

- ``{"type": "list"}`` → ``{"type": "annotations", "annotations": [payload, …]}``
- ``{"type": "save", "annotation": {"id": null, "label": 3, "rle": {…}, "drawn": {…}, "answers": {…},
  "z_order": 2}}`` creates; with an ``id`` and the ``version`` it was loaded at, it changes those
  fields → ``{"type": "saved", "annotation": payload}``
- ``{"type": "delete", "id": 17, "version": 3}`` → ``{"type": "deleted", "id": 17}``
- ``{"type": "accept", "id": 17, "version": 3}`` takes a pre-annotation (``proposed``) as it is →
  ``{"type": "saved", "annotation": payload}``; ``{"type": "accept", "all": true}`` takes every one on
  the item → ``{"type": "accepted", "annotations": [payload, …]}``
- ``{"type": "prompt", "model": "tiny", "label_id": 3, "object_id": null, "points": [[x, y, 1], [x, y, 0]],
  "box": [x0, y0, x1, y1] | null}`` (original-image pixels; ``object_id`` refines that object, with an
  optional ``version``; ``"all_masks": true`` adds every candidate mask) → ``{"type": "mask",
  "object_id", "version", "rle", "score", "bbox", "timings": {queue_ms, encode_ms, decode_ms,
  total_ms}}``, the mask already saved. The prompt is checked here and run where inference runs
  (``inference.dispatch``); its reply comes later, so other messages are answered meanwhile.

On a video (the protocol in full: ``inference.video``):

- ``{"type": "video_prompt", "model", "frame", "label_id" | "track" | "object_id", "version",
  "points", "box"}`` → ``{"type": "mask", …, "frame", "track"}``: the mask on that frame from the
  video's warm state, saved as that frame's object of the track (a new object starts a track).
- ``{"type": "propagate", "model", "frame", "direction": "forward" | "backward" | "both",
  "frames": [n…] (optional: re-segment these), "resume": job id (optional), "from_output": true
  (optional: start from earlier runs' masks on that frame)}`` → at once
  ``{"type": "run", "job", "state": "queued", "done": 0, "total", "last_done": null}``; then, to
  everyone on the item, each frame's objects as ``annotation`` / ``annotation_deleted`` frames
  and ``{"type": "video_frame", "job", "frame", "done", "total"}`` as SAM 2 produces them, and
  ``{"type": "run", …, "state": "succeeded" | "cancelled" | "failed", "message"}`` at the end.
- ``{"type": "stop", "job"}`` → the run stops after its current frame (``run`` … ``cancelled``).

Server → client, pushed when someone else (another socket, the REST API, a job) changes the item:
``{"type": "annotation", "annotation": payload}`` and ``{"type": "annotation_deleted", "id": 17}``.
A socket's own changes are answered once, by the reply, not echoed again.

Errors are frames ``{"type": "error", "request_id", "code", "message"}``; a stale version is
``conflict`` with ``"current"``: the annotation as it is stored now, so the studio can offer to
reload it or to apply the change again on top of it. The socket stays open.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.http import Http404
from rest_framework import serializers

from annotation.annotations import services
from annotation.annotations.payloads import annotation_payload
from annotation.annotations.selectors import annotation_get, annotation_list, label_for_item
from annotation.api.annotations import AnnotationCreateInput, AnnotationDeleteInput, AnnotationUpdateInput
from annotation.models import MediaItem
from annotation.selectors import media_get
from inference.dispatch import PromptDispatcher
from inference.prompting import prompt_request
from inference.prompts import InferenceError
from inference.video.prompting import video_prompt_request
from inference.video.runs import RUN_KIND, public_run_frame, run_request, run_start
from platform_core.models import Job
from platform_core.realtime import GroupEventsMixin, media_group
from platform_core.websockets import CLOSE_NOT_FOUND, MessageError, TenantJsonConsumer


def _parsed(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MessageError("invalid", "Send the annotation as a JSON object.")
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        errors = serializer.errors
        text = " ".join(f"{field}: {' '.join(str(m) for m in messages)}" for field, messages in errors.items())
        raise MessageError("invalid", text, errors=errors)
    return dict(serializer.validated_data)


def _conflict(exc: services.VersionConflict) -> MessageError:
    return MessageError(
        "conflict",
        f"Someone changed this annotation since you loaded it; it is now at version {exc.current.version}. "
        "Reload it, or apply your change again to the current version.",
        current=annotation_payload(exc.current),
    )


class StudioConsumer(GroupEventsMixin, TenantJsonConsumer):
    media: MediaItem | None = None
    prompts: PromptDispatcher | None = None
    _closed = False

    # --- access ------------------------------------------------------------------------------

    def check_access(self) -> int | None:
        # Runs at connect and at every full check: a task taken away from an annotator closes
        # their socket on that item like a removed membership does.
        try:
            self.media = media_get(self.tenant, self.scope["url_route"]["kwargs"]["media_id"])
        except Http404:
            return CLOSE_NOT_FOUND
        return None

    def group_names(self) -> list[str]:
        return [media_group(self.media.pk)]

    # --- messages ----------------------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        request_id = message.get("request_id")
        if kind in ("prompt", "video_prompt"):
            self._prompt(message, video=kind == "video_prompt")
            return
        if kind == "propagate":
            reply, request = await database_sync_to_async(self._propagate)(message)
            await self.send_json({**reply, "request_id": request_id})
            self._dispatcher().submit_run(request)
            return
        if kind == "list":
            reply = await database_sync_to_async(self._list)()
        elif kind == "save":
            reply = await database_sync_to_async(self._save)(message.get("annotation"))
        elif kind == "delete":
            reply = await database_sync_to_async(self._delete)(message)
        elif kind == "accept":
            reply = await database_sync_to_async(self._accept)(message)
        elif kind == "stop":
            reply = await database_sync_to_async(self._stop)(message)
        else:
            raise MessageError("unknown_type", f"Unknown message type {kind[:40]!r}.")
        await self.send_json({**reply, "request_id": request_id})

    def exception_to_error(self, exc: Exception) -> MessageError | None:
        if isinstance(exc, InferenceError):
            return MessageError(exc.code, exc.message)
        return super().exception_to_error(exc)

    # --- prompts -----------------------------------------------------------------------------

    def _dispatcher(self) -> PromptDispatcher:
        if self.prompts is None:
            self.prompts = PromptDispatcher(
                channel_layer=self.channel_layer, reply_channel=self.channel_name, send=self._send_prompt_reply
            )
        return self.prompts

    def _prompt(self, message: dict[str, Any], *, video: bool = False) -> None:
        make = video_prompt_request if video else prompt_request
        request = make(
            message,
            media=self.media,
            user_id=self.scope["user"].pk,
            org_slug=self.tenant.org.slug,
            origin=self.channel_name,
        )
        if video:
            request["kind"] = "video_prompt"
        self._dispatcher().submit(request)

    # --- video runs --------------------------------------------------------------------------

    def _propagate(self, message: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        job = run_start(
            tenant=self.tenant,
            media=self.media,
            model=message.get("model"),
            start=message.get("frame"),
            direction=message.get("direction", "forward"),
            frames=message.get("frames"),
            resume=message.get("resume"),
            from_output=message.get("from_output", False),
            actor=self.scope["user"],
        )
        # The run's saves reach every socket on the item, this one included: origin is no socket.
        return public_run_frame(job), run_request(job, org_slug=self.tenant.org.slug, origin="")

    def _stop(self, message: dict[str, Any]) -> dict[str, Any]:
        job_id = message.get("job")
        if isinstance(job_id, bool) or not isinstance(job_id, int):
            raise MessageError("invalid", "job: give the id of a run of this video.")
        job = (
            Job.objects.for_org(self.tenant.org)
            .filter(pk=job_id, kind=RUN_KIND, params__media_id=self.media.pk)
            .first()
        )
        if job is None:
            raise MessageError("not_found", "There is no such run of this video.")
        Job.objects.filter(pk=job.pk, state__in=(Job.State.QUEUED, Job.State.RUNNING)).update(state=Job.State.CANCELLED)
        job.refresh_from_db()
        return public_run_frame(job)

    async def _send_prompt_reply(self, reply: dict[str, Any]) -> None:
        if not self.access_ended and not self._closed:
            await self.send_json(reply)

    async def inference_reply(self, event: dict[str, Any]) -> None:
        if self.prompts is not None:
            await self.prompts.reply_received(event)

    async def disconnect(self, code: int) -> None:
        self._closed = True
        if self.prompts is not None:
            self.prompts.close()

    def _list(self) -> dict[str, Any]:
        annotations = annotation_list(self.tenant, self.media)
        return {"type": "annotations", "annotations": [annotation_payload(a) for a in annotations]}

    def _save(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict) and data.get("id") is not None:
            return self._update(data)
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key not in ("id", "version")}
        fields = _parsed(AnnotationCreateInput, data)
        fields["label"] = label_for_item(self.tenant, self.media, fields["label"])
        annotation = services.annotation_create(
            tenant=self.tenant, media=self.media, author=self.scope["user"], origin=self.channel_name, **fields
        )
        return {"type": "saved", "annotation": annotation_payload(annotation)}

    def _update(self, data: dict[str, Any]) -> dict[str, Any]:
        annotation_id = _annotation_id(data.get("id"))
        fields = _parsed(AnnotationUpdateInput, {key: value for key, value in data.items() if key != "id"})
        version = fields.pop("version")
        annotation = annotation_get(self.tenant, self.media, annotation_id)
        if "label" in fields:
            fields["label"] = label_for_item(self.tenant, self.media, fields["label"])
        try:
            annotation = services.annotation_update(
                tenant=self.tenant,
                annotation=annotation,
                expected_version=version,
                author=self.scope["user"],
                origin=self.channel_name,
                **fields,
            )
        except services.VersionConflict as exc:
            raise _conflict(exc) from exc
        return {"type": "saved", "annotation": annotation_payload(annotation)}

    def _delete(self, message: dict[str, Any]) -> dict[str, Any]:
        annotation_id = _annotation_id(message.get("id"))
        version = _parsed(AnnotationDeleteInput, {"version": message.get("version")})["version"]
        annotation = annotation_get(self.tenant, self.media, annotation_id)
        try:
            services.annotation_delete(
                tenant=self.tenant,
                annotation=annotation,
                expected_version=version,
                actor=self.scope["user"],
                origin=self.channel_name,
            )
        except services.VersionConflict as exc:
            raise _conflict(exc) from exc
        return {"type": "deleted", "id": annotation.pk}

    def _accept(self, message: dict[str, Any]) -> dict[str, Any]:
        """``{"type": "accept", "id", "version"}`` takes one pre-annotation as it is → ``saved``;
        ``{"type": "accept", "all": true}`` takes every one on the item → ``{"type": "accepted",
        "annotations": [payload, …]}``."""
        if message.get("all") is True:
            accepted = services.annotation_accept_all(
                tenant=self.tenant, media=self.media, actor=self.scope["user"], origin=self.channel_name
            )
            return {"type": "accepted", "annotations": [annotation_payload(a) for a in accepted]}
        annotation_id = _annotation_id(message.get("id"))
        version = _parsed(AnnotationDeleteInput, {"version": message.get("version")})["version"]
        annotation = annotation_get(self.tenant, self.media, annotation_id)
        try:
            annotation = services.annotation_accept(
                tenant=self.tenant,
                annotation=annotation,
                expected_version=version,
                actor=self.scope["user"],
                origin=self.channel_name,
            )
        except services.VersionConflict as exc:
            raise _conflict(exc) from exc
        return {"type": "saved", "annotation": annotation_payload(annotation)}

    # --- what others change ------------------------------------------------------------------

    async def annotation_saved(self, event: dict[str, Any]) -> None:
        if event.get("origin") != self.channel_name:
            await self.send_json({"type": "annotation", "annotation": event["annotation"]})

    async def annotation_deleted(self, event: dict[str, Any]) -> None:
        if event.get("origin") != self.channel_name:
            await self.send_json({"type": "annotation_deleted", "id": event["id"]})

    async def video_frame(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "video_frame"})

    async def video_run(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "run"})


def _annotation_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MessageError("invalid", "id: give the id of an annotation of this item.")
    return value
