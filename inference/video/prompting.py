"""Prompts on a video frame: clicks or a box for one object (a track) on one frame, answered from
the video's warm tracker state and saved at once as that frame's annotation of the track.

``video_prompt_request`` checks a studio ``video_prompt`` message in the web process (model, ids,
frame, points and box against the video's size); ``video_prompt_execute`` runs it where inference
runs. The saved annotation carries the prompts (``source_detail.prompts``) that made it: it is a
*seed* of later runs (``inference.video.runs``), which replay those clicks on a state built afresh.
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import Max

from inference.prompting import _history, _whole_id, error_reply
from inference.prompts import PromptError, UnknownModel, parse_prompt
from inference.video.runs import VideoStates, apply_seeds, seeds_of, video_model_keys, video_states


def video_prompt_request(
    message: dict[str, Any], *, media: Any, user_id: int, org_slug: str, origin: str
) -> dict[str, Any]:
    model = message.get("model")
    if not isinstance(model, str) or model not in video_model_keys():
        raise UnknownModel(f"Unknown video model {repr(model)[:40]}: use one of {', '.join(video_model_keys())}.")
    if media.kind != "video" or media.state != "ready" or not media.frame_count:
        raise PromptError("Video prompts go to a video whose frames are ready.", code="not_a_video")
    frame = message.get("frame")
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < media.frame_count:
        raise PromptError(f"frame must be a frame of this video (0 … {media.frame_count - 1}).", code="bad_frame")
    ids = {}
    for field in ("object_id", "label_id", "track", "version"):
        value = message.get(field)
        ids[field] = _whole_id(value, field) if value is not None else None
    if ids["object_id"] is None and ids["label_id"] is None and ids["track"] is None:
        raise PromptError("A new object needs its label: give label_id (or the track it continues).", code="bad_prompt")
    points, box = message.get("points"), message.get("box")
    parse_prompt(points=points, box=box, width=media.width, height=media.height)
    return {
        "request_id": message.get("request_id"),
        "org": org_slug,
        "user_id": user_id,
        "media_id": media.pk,
        "model": model,
        "frame": frame,
        **ids,
        "points": [[point[0], point[1], int(point[2])] for point in points] if points else None,
        "box": list(box) if box is not None else None,
        "origin": origin,
        "submitted_at": time.time(),
    }


def _run(request: dict[str, Any], states: VideoStates) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.http import Http404

    from annotation.annotations import services
    from annotation.annotations.selectors import annotation_get, label_for_item
    from annotation.masks import mask_encode
    from annotation.models import Annotation
    from annotation.selectors import media_get
    from annotation.video_services import video_frames_local_dir
    from platform_core.tenancy import resolve_tenant

    user = get_user_model().objects.filter(pk=request["user_id"]).first()
    if user is None:
        raise Http404("No such organisation.")
    tenant = resolve_tenant(user, request["org"])
    media = media_get(tenant, request["media_id"])
    model, frame = request["model"], request["frame"]
    annotation = annotation_get(tenant, media, request["object_id"]) if request["object_id"] else None
    if annotation is not None and annotation.frame != frame:
        raise PromptError("That object is on another frame.", code="bad_prompt")
    track = annotation.track if annotation is not None else request["track"]
    label = label_for_item(tenant, media, request["label_id"]) if request["label_id"] is not None else None
    videos = Annotation.objects.filter(media=media, frame__isnull=False, track__isnull=False)
    if label is None and annotation is None:
        # A frame added to an existing track takes the track's label.
        same_track = videos.filter(track=track).order_by("frame").first()
        if same_track is None:
            raise PromptError(f"Track {track} has no object yet: give label_id.", code="bad_prompt")
        label = same_track.label
    if track is None:
        track = (videos.aggregate(top=Max("track"))["top"] or 0) + 1
    elif annotation is None and videos.filter(frame=frame, track=track).exists():
        raise PromptError(
            f"Track {track} already has an object on frame {frame}: prompt it by its id.", code="bad_prompt"
        )

    warm = states.warm(
        media_id=media.pk,
        frames_key=media.frames_prefix,
        model=model,
        frames_dir=video_frames_local_dir(media),
        frame_count=media.frame_count or 0,
    )
    started = time.perf_counter()
    with warm.lock:
        apply_seeds(
            warm,
            [s for s in seeds_of(videos, model=model) if (s.frame, s.track) != (frame, track)],
            width=media.width,
            height=media.height,
            keep=[(frame, track)],
        )
        prompt = parse_prompt(points=request["points"], box=request["box"], width=media.width, height=media.height)
        masks = warm.tracker.add_prompt(warm.state, frame=frame, obj_id=track, prompt=prompt)
    mask = masks[track]
    if not mask.any():
        raise PromptError(
            "The model found no object at this prompt: add a point inside the object or draw a box.", code="empty_mask"
        )
    step = {"points": request["points"], "box": request["box"]}
    drawn = {"tool": "smart", "model": model, "points": request["points"] or [], "box": request["box"]}
    rle = mask_encode(mask)
    if annotation is None:
        annotation = services.annotation_create(
            tenant=tenant,
            media=media,
            label=label,
            rle=rle,
            author=user,
            frame=frame,
            track=track,
            drawn=drawn,
            source=Annotation.Source.MODEL,
            source_detail={"model": model, "prompts": [step]},
            origin=request["origin"],
        )
    else:
        history = _history(annotation, model, step) if "run" not in (annotation.source_detail or {}) else [step]
        changes: dict[str, Any] = {
            "rle": rle,
            "drawn": drawn,
            "source": Annotation.Source.MODEL,
            "source_detail": {"model": model, "prompts": history},
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
    # The state holds this seed as it is now.
    warm.applied[(frame, track)] = (annotation.pk, annotation.version)
    return {
        "type": "mask",
        "request_id": request["request_id"],
        "object_id": annotation.pk,
        "version": annotation.version,
        "label_id": annotation.label_id,
        "frame": frame,
        "track": track,
        "model": model,
        "rle": annotation.rle,
        "bbox": annotation.bbox,
        "drawn": annotation.drawn,
        "z_order": annotation.z_order,
        "untrained": warm.tracker.untrained,
        "fallback": warm.tracker.fallback,
        "timings": {"decode_ms": round((time.perf_counter() - started) * 1000, 3)},
    }


def video_prompt_execute(request: dict[str, Any], *, states: VideoStates | None = None) -> dict[str, Any] | None:
    """Run one video prompt and return its reply frame (``mask`` or ``error``); None when its
    deadline passed before it could start (the client has had its timeout)."""
    deadline = request.get("deadline")
    if deadline is not None and time.time() > deadline:
        return None
    try:
        return _run(request, states or video_states())
    except Exception as exc:
        return error_reply(exc, request)
