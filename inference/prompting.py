"""Studio prompts: checked in the web process, run where the model is, saved at once.

``prompt_request`` turns a studio ``prompt`` message into a request, plain JSON because in worker
mode it crosses the channel layer, after checking everything that needs neither a model nor a
query: the model key, the ids, and the points and box against the item's stored size.

``prompt_execute`` runs one request wherever inference runs (a thread of the web process, or an
``inference_worker``; see ``inference.dispatch``). It looks the organisation, item, label and object
up again through the tenancy door as the requesting member, segments, and saves the mask through
the annotation services before anyone hears of it: a new object with ``annotation_create`` (source
``model``, ``source_detail`` holding the model and the prompts that made it), a refined one with
``annotation_update`` (version bumped, prompts appended), so a closed tab loses nothing and the
others on the item see it through the item's group. It returns the reply frame: ``mask``, or
``error`` with a code.

Refining feeds the object's previous low-resolution logits back as the mask input, as SAM's own
interactive loop does. They live in this process's memory (``ObjectLogits``), keyed by object id
and valid only for the version and model that produced them: an object changed by other hands
since, or prompted on another worker, is refined from its prompts alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import prefetch_related_objects
from django.http import Http404

from inference import registry
from inference.prompts import InferenceError, PromptError, UnknownModel, parse_prompt

logger = logging.getLogger(__name__)

MAX_HISTORY = 50  # prompt steps kept in an object's source_detail, oldest dropped first
LOGITS_ENTRIES = 256  # objects whose last logits a process keeps (256 KiB each)
MAX_ID = 2**63 - 1


def model_keys() -> list[str]:
    return [*registry.MODELS, registry.FALLBACK_KEY]


def _whole_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise PromptError(f"{field} must be an id, a whole number.", code="bad_prompt")
    return value


def prompt_request(message: dict[str, Any], *, media: Any, user_id: int, org_slug: str, origin: str) -> dict[str, Any]:
    """The request for a studio ``prompt`` message on ``media``; ``PromptError`` / ``UnknownModel``
    (with their codes) for what is wrong with it."""
    model = message.get("model")
    if not isinstance(model, str) or model not in model_keys():
        shown = repr(model)[:40]
        raise UnknownModel(f"Unknown model {shown}: use one of {', '.join(model_keys())}.")
    object_id = message.get("object_id")
    if object_id is not None:
        object_id = _whole_id(object_id, "object_id")
    label_id = message.get("label_id")
    if label_id is None and object_id is None:
        raise PromptError("A new object needs its label: give label_id.", code="bad_prompt")
    if label_id is not None:
        label_id = _whole_id(label_id, "label_id")
    version = message.get("version")
    if version is not None:
        if object_id is None:
            raise PromptError("version goes with object_id: a new object has no version yet.", code="bad_prompt")
        version = _whole_id(version, "version")
    all_masks = message.get("all_masks", False)
    if not isinstance(all_masks, bool):
        raise PromptError("all_masks must be true or false.", code="bad_prompt")
    if media.kind != "image":
        raise PromptError("Prompts segment images; this item is a video.", code="not_an_image")
    points, box = message.get("points"), message.get("box")
    # Raises with point_outside_image, bad_point, bad_box, no_prompt, …
    parse_prompt(points=points, box=box, width=media.width, height=media.height)
    return {
        "request_id": message.get("request_id"),
        "org": org_slug,
        "user_id": user_id,
        "media_id": media.pk,
        "model": model,
        "label_id": label_id,
        "object_id": object_id,
        "version": version,
        "points": [[point[0], point[1], int(point[2])] for point in points] if points else None,
        "box": list(box) if box is not None else None,
        "all_masks": all_masks,
        "origin": origin,
        "submitted_at": time.time(),
    }


class ObjectLogits:
    """The last low-resolution logits of recently prompted objects, least recently used dropped."""

    def __init__(self, max_entries: int = LOGITS_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[str, int, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, object_id: int, *, model: str, version: int) -> np.ndarray | None:
        with self._lock:
            entry = self._entries.get(object_id)
            if entry is None or entry[:2] != (model, version):
                return None
            self._entries.move_to_end(object_id)
            return entry[2]

    def put(self, object_id: int, *, model: str, version: int, logits: np.ndarray) -> None:
        with self._lock:
            self._entries[object_id] = (model, version, logits)
            self._entries.move_to_end(object_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


_logits = ObjectLogits()


def object_logits() -> ObjectLogits:
    return _logits


def _history(annotation: Any, model: str, step: dict[str, Any]) -> list[dict[str, Any]]:
    detail = annotation.source_detail if isinstance(annotation.source_detail, dict) else {}
    earlier = detail.get("prompts") if annotation.source == "model" and detail.get("model") == model else None
    return [*(earlier if isinstance(earlier, list) else []), step][-MAX_HISTORY:]


def _default_answers(label: Any) -> dict[str, str]:
    """A new object's answers: its label's questions that have a default, as the studio fills them
    (read once: the service checks the answers against the same prefetched questions)."""
    prefetch_related_objects([label], "questions")
    return {str(question.pk): question.default for question in label.questions.all() if question.default}


def _rounded(value: float) -> float:
    return round(float(value), 4)


def _run(request: dict[str, Any], service: Any, logits: ObjectLogits) -> dict[str, Any]:
    from annotation.annotations import services
    from annotation.annotations.selectors import annotation_get, label_for_item
    from annotation.masks import mask_encode, rle_bbox
    from annotation.media_services import media_read_bytes
    from annotation.models import Annotation
    from annotation.selectors import media_get
    from platform_core.tenancy import resolve_tenant

    user = get_user_model().objects.filter(pk=request["user_id"]).first()
    if user is None:
        raise Http404("No such organisation.")
    tenant = resolve_tenant(user, request["org"])
    media = media_get(tenant, request["media_id"])
    model = request["model"]
    annotation = annotation_get(tenant, media, request["object_id"]) if request["object_id"] else None
    label = label_for_item(tenant, media, request["label_id"]) if request["label_id"] is not None else None
    mask_input = None
    if annotation is not None:
        mask_input = logits.get(annotation.pk, model=model, version=annotation.version)
    result = service.segment(
        model=model,
        media_key=media.pk,
        image_version=media.file.name,
        image=lambda: media_read_bytes(media),
        points=request["points"],
        box=request["box"],
        mask_input=mask_input,
        all_masks=request["all_masks"],
    )
    if not result.mask.any():
        raise InferenceError(
            "The model found no object at this prompt: add a point inside the object or draw a box.",
            code="empty_mask",
        )
    rle = mask_encode(result.mask)
    step = {"points": request["points"], "box": request["box"]}
    detail = {"model": model, "score": _rounded(result.score)}
    # The prompts that make the object as it stands: the studio resumes from them, and undoing a
    # prompt brings the previous ones back with the previous mask.
    drawn = {"tool": "smart", "model": model, "points": request["points"] or [], "box": request["box"]}
    if annotation is None:
        annotation = services.annotation_create(
            tenant=tenant,
            media=media,
            label=label,
            rle=rle,
            drawn=drawn,
            answers=_default_answers(label),
            author=user,
            source=Annotation.Source.MODEL,
            source_detail={**detail, "prompts": [step]},
            origin=request["origin"],
        )
    else:
        changes: dict[str, Any] = {
            "rle": rle,
            "drawn": drawn,
            "source": Annotation.Source.MODEL,
            "source_detail": {**detail, "prompts": _history(annotation, model, step)},
        }
        if label is not None:
            changes["label"] = label
        annotation = services.annotation_update(
            tenant=tenant,
            annotation=annotation,
            expected_version=request["version"] if request["version"] is not None else annotation.version,
            author=user,
            origin=request["origin"],
            **changes,
        )
    logits.put(annotation.pk, model=model, version=annotation.version, logits=result.low_res_logits)
    reply: dict[str, Any] = {
        "type": "mask",
        "request_id": request["request_id"],
        "object_id": annotation.pk,
        "version": annotation.version,
        "label_id": annotation.label_id,
        "model": model,
        "rle": annotation.rle,
        "score": float(result.score),
        "bbox": annotation.bbox,
        "drawn": annotation.drawn,
        "answers": annotation.answers,
        "z_order": annotation.z_order,
        "untrained": result.untrained,
        "fallback": result.fallback,
        "timings": {"encode_ms": result.timings["encode_ms"], "decode_ms": result.timings["decode_ms"]},
    }
    if request["all_masks"] and result.candidates:
        reply["candidates"] = []
        for candidate in result.candidates:
            candidate_rle = mask_encode(candidate.mask)
            reply["candidates"].append(
                {"rle": candidate_rle, "score": float(candidate.score), "bbox": rle_bbox(candidate_rle)}
            )
    return reply


def error_reply(exc: Exception, request: dict[str, Any]) -> dict[str, Any]:
    """The error frame for what ``prompt_execute`` raised, as the studio socket words its own."""
    from annotation.annotations.payloads import annotation_payload
    from annotation.annotations.services import VersionConflict
    from platform_core.websockets import validation_error_frame

    extra: dict[str, Any] = {}
    if isinstance(exc, InferenceError):
        code, text = exc.code, exc.message
    elif isinstance(exc, VersionConflict):
        code = "conflict"
        text = (
            f"Someone changed this annotation since you loaded it; it is now at version {exc.current.version}. "
            "Reload it, or prompt again on the current version."
        )
        extra["current"] = annotation_payload(exc.current)
    elif isinstance(exc, Http404):
        code, text = "not_found", str(exc) or "Not found."
    elif isinstance(exc, PermissionDenied):
        code, text = "forbidden", str(exc) or "You may not do this."
    elif isinstance(exc, ValidationError):
        error = validation_error_frame(exc)
        code, text, extra = error.code, error.text, error.extra
    else:
        logger.exception("Prompt %s on media item %s failed", request.get("request_id"), request.get("media_id"))
        code, text = "inference_failed", "The model failed on this prompt; try again."
    return {"type": "error", "request_id": request.get("request_id"), "code": code, "message": text, **extra}


def prompt_execute(
    request: dict[str, Any], *, service: Any = None, logits: ObjectLogits | None = None
) -> dict[str, Any] | None:
    """Run one request and return its reply frame; None when its deadline passed before it could
    start (the client has had its timeout error; nothing is segmented or saved)."""
    started = time.time()
    deadline = request.get("deadline")
    if deadline is not None and started > deadline:
        logger.warning("Prompt %s reached inference after its deadline; skipped", request.get("request_id"))
        return None
    if service is None:
        from inference.segmentation import get_service

        service = get_service()
    try:
        reply = _run(request, service, logits if logits is not None else object_logits())
    except Exception as exc:
        return error_reply(exc, request)
    reply["timings"]["queue_ms"] = round(max(0.0, started - request["submitted_at"]) * 1000, 3)
    return reply
