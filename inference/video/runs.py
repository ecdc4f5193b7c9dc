"""Propagation runs: masks carried through a video from the frames a person prompted or drew,
persisted and announced one frame at a time, as a recorded job.

A run is a ``Job`` of kind ``propagate`` (params: media, model, start frame, direction, or a list of
frames to re-segment). It runs where inference runs (``run_execute``) with the video's tracker state
kept warm per (video, model) in ``VideoStates``, an LRU bounded by memory.

*Seeds* are what a run starts from: the video's objects (annotations with a frame and a track) that
a person made, not a run. A seed made by the same SAM 2 model from clicks is replayed as those
clicks (so a warm or a rebuilt state give the masks SAM 2 gives for them); any other seed (drawn,
imported, made by another model, or an earlier run's output chosen to start from) is given as a
mask. Each propagated frame is saved at once through the annotation services (``annotation.saved``
reaches every studio open on the item) and a ``video.frame`` event tells the timeline how far the
run is; the job's progress, last done frame and heartbeat are written with it, so a run cut short
(stopped, or its worker killed) keeps every frame it finished and resumes from the last one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.embedding_cache import EmbeddingCache
from inference.prompts import PromptError, parse_prompt
from inference.video.trackers import Tracker, get_tracker

logger = logging.getLogger(__name__)

RUN_KIND = "propagate"
FORWARD, BACKWARD, BOTH = "forward", "backward", "both"
ASYNC_LOADING_FRAMES = 120  # longer clips load their frames lazily
DIRECTIONS = (FORWARD, BACKWARD, BOTH)


# --- warm states ---------------------------------------------------------------------------------------
@dataclass
class WarmVideo:
    """A tracker's state for one video and model, and which seeds it holds ({(frame, track): mark})."""

    tracker: Tracker
    state: Any
    applied: dict[tuple[int, int], tuple] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class VideoStates:
    """Video states per (video, frames, model), least recently used dropped first when their
    memory passes the budget. A state is measured again after each run (it grows with outputs)."""

    def __init__(self, budget_bytes: int, *, tracker_for: Callable[[str], Tracker] = get_tracker) -> None:
        self.cache = EmbeddingCache(budget_bytes)
        self.tracker_for = tracker_for
        self._lock = threading.Lock()

    def warm(self, *, media_id: int, frames_key: str, model: str, frames_dir: Path, frame_count: int = 0) -> WarmVideo:
        key = (media_id, frames_key, model)
        with self._lock:
            warm = self.cache.get(key)
            if warm is None:
                tracker = self.tracker_for(model)
                # A long clip's frames load in the background (sam2's async_loading_frames): the
                # first ones are ready at once, the rest while the first frames are worked on.
                lazily = frame_count > ASYNC_LOADING_FRAMES
                warm = WarmVideo(tracker=tracker, state=tracker.start(frames_dir, async_loading=lazily))
                self.cache.put(key, warm, tracker.nbytes(warm.state))
            return warm

    def measure(self, *, media_id: int, frames_key: str, model: str, warm: WarmVideo) -> None:
        self.cache.put((media_id, frames_key, model), warm, warm.tracker.nbytes(warm.state))

    def forget(self, media_id: int) -> int:
        return self.cache.discard(lambda key: key[0] == media_id)


_states: VideoStates | None = None
_states_lock = threading.Lock()


def video_states() -> VideoStates:
    global _states
    with _states_lock:
        if _states is None:
            _states = VideoStates(settings.INFERENCE_VIDEO_STATES_MB * 1024 * 1024)
        return _states


# --- seeds ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seed:
    frame: int
    track: int
    label_id: int
    mark: tuple  # what the state must hold for it: (annotation id, version)
    rle: dict
    clicks: dict | None  # {"points": [[x, y, label]…], "box": [x0, y0, x1, y1] | None} for the model


def is_run_output(annotation: Any) -> bool:
    detail = annotation.source_detail if isinstance(annotation.source_detail, dict) else {}
    return "run" in detail


def seeds_of(annotations: Iterable[Any], *, model: str) -> list[Seed]:
    """The seeds among a video's annotations: on a frame, in a track, made by a person (not a run)."""
    seeds = []
    for annotation in annotations:
        if annotation.frame is None or annotation.track is None or annotation.proposed or is_run_output(annotation):
            continue
        detail = annotation.source_detail if isinstance(annotation.source_detail, dict) else {}
        prompts = detail.get("prompts")
        clicks = None
        if annotation.source == "model" and detail.get("model") == model and isinstance(prompts, list) and prompts:
            clicks = prompts[-1]  # each step holds the object's whole set of prompts
        seeds.append(
            Seed(
                frame=annotation.frame,
                track=annotation.track,
                label_id=annotation.label_id,
                mark=(annotation.pk, annotation.version),
                rle=annotation.rle,
                clicks=clicks,
            )
        )
    return sorted(seeds, key=lambda seed: (seed.frame, seed.track))


def apply_seeds(
    warm: WarmVideo, seeds: Iterable[Seed], *, width: int, height: int, keep: Iterable[tuple[int, int]] = ()
) -> int:
    """Give the state the seeds it does not hold yet (a changed object is given again); returns
    how many were given. A seed the state holds that is gone (deleted, or now a run's output) and
    not in ``keep`` means starting the state again: a tracker cannot forget one input."""
    from annotation.masks import mask_decode

    seeds = list(seeds)
    current = {(seed.frame, seed.track) for seed in seeds} | set(keep)
    if set(warm.applied) - current:
        warm.tracker.reset(warm.state)
        warm.applied.clear()
    given = 0
    for seed in seeds:
        if warm.applied.get((seed.frame, seed.track)) == seed.mark:
            continue
        if seed.clicks is not None:
            prompt = parse_prompt(
                points=seed.clicks.get("points"), box=seed.clicks.get("box"), width=width, height=height
            )
            warm.tracker.add_prompt(warm.state, frame=seed.frame, obj_id=seed.track, prompt=prompt)
        else:
            warm.tracker.add_mask(warm.state, frame=seed.frame, obj_id=seed.track, mask=mask_decode(seed.rle))
        warm.applied[(seed.frame, seed.track)] = seed.mark
        given += 1
    return given


# --- the order of frames -------------------------------------------------------------------------------
def passes(*, start: int, direction: str, num_frames: int) -> list[tuple[int, bool]]:
    """(start frame, reverse) of each pass: forward, backward, or forward then backward."""
    if direction not in DIRECTIONS:
        raise PromptError(f"direction must be one of {', '.join(DIRECTIONS)}.", code="bad_direction")
    if not 0 <= start < num_frames:
        raise PromptError(f"Frame {start} is not a frame of this video (0 … {num_frames - 1}).", code="bad_frame")
    if direction == FORWARD:
        return [(start, False)]
    if direction == BACKWARD:
        return [(start, True)]
    return [(start, False), (start, True)]


# --- one run -------------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    done: list[int]
    stopped: bool


def run_frames(
    *,
    warm: WarmVideo,
    start: int,
    direction: str,
    frames: list[int] | None,
    on_frame: Callable[[int, dict[int, np.ndarray]], None],
    should_stop: Callable[[], bool],
) -> RunOutcome:
    """Propagate from ``start`` (or, with ``frames``, only through those frames: each chosen frame
    is re-segmented from the seeds' memory, nothing else written), calling ``on_frame`` for each
    frame as the tracker gives it and asking ``should_stop`` before the next one."""
    tracker, state = warm.tracker, warm.state
    total = tracker.num_frames(state)
    done: list[int] = []
    wanted = set(frames) if frames is not None else None
    if wanted is not None and any(not 0 <= f < total for f in wanted):
        raise PromptError(f"Re-segment frames within 0 … {total - 1}.", code="bad_frame")
    with warm.lock:
        for pass_start, reverse in passes(start=start, direction=direction, num_frames=total):
            last = max(wanted) if wanted and not reverse else (min(wanted) if wanted else None)
            steps = None if last is None else abs(last - pass_start)
            generator = tracker.propagate(state, start=pass_start, reverse=reverse, max_frames=steps)
            try:
                for result in generator:
                    if reverse and result.frame == start and start in done:
                        continue  # the start frame was written by the forward pass
                    if wanted is None or result.frame in wanted:
                        on_frame(result.frame, result.masks)
                        done.append(result.frame)
                    if should_stop():
                        return RunOutcome(done=done, stopped=True)
            finally:
                generator.close()
    return RunOutcome(done=done, stopped=False)


def persist_frame(
    *,
    tenant: Any,
    media: Any,
    user: Any,
    job: Any,
    model: str,
    frame: int,
    masks: dict[int, np.ndarray],
    labels: dict[int, Any],
    seeded: set[tuple[int, int]],
    origin: str = "",
) -> list[Any]:
    """Save one frame's masks: a track's run output on that frame is created, replaced, or removed
    where the object is gone; a seed on that frame (a person's input) is left as it is."""
    from annotation.annotations import services
    from annotation.masks import mask_encode
    from annotation.models import Annotation

    saved = []
    existing = {
        a.track: a
        for a in Annotation.objects.filter(media=media, frame=frame, track__in=list(masks))
        if is_run_output(a)
    }
    detail = {"model": model, "run": job.pk}
    with transaction.atomic():
        for track, mask in masks.items():
            if (frame, track) in seeded:
                continue
            current = existing.get(track)
            if not mask.any():
                if current is not None:
                    services.annotation_delete(
                        tenant=tenant, annotation=current, expected_version=current.version, actor=user, origin=origin
                    )
                continue
            rle = mask_encode(mask)
            if current is None:
                label = labels[track]
                saved.append(
                    services.annotation_create(
                        tenant=tenant,
                        media=media,
                        label=label,
                        rle=rle,
                        author=user,
                        frame=frame,
                        track=track,
                        drawn={"tool": "propagation", "model": model},
                        source=Annotation.Source.MODEL,
                        source_detail=detail,
                        origin=origin,
                    )
                )
            else:
                saved.append(
                    services.annotation_update(
                        tenant=tenant,
                        annotation=current,
                        expected_version=current.version,
                        author=user,
                        origin=origin,
                        rle=rle,
                        source_detail=detail,
                    )
                )
        job.progress_done += 1
        job.report = {**job.report, "last_done": frame, "done": sorted({*job.report.get("done", []), frame})}
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["progress_done", "report", "heartbeat_at"])
    return saved


# --- starting a run ------------------------------------------------------------------------------------
def video_model_keys() -> list[str]:
    from inference import registry
    from inference.video.trackers import FLOW_KEY

    return [*registry.MODELS, FLOW_KEY]


def _whole(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PromptError(f"{field} must be a frame number, a whole number from 0.", code="bad_frame")
    return value


def run_start(
    *,
    tenant: Any,
    media: Any,
    model: Any,
    start: Any,
    direction: Any = FORWARD,
    frames: Any = None,
    resume: Any = None,
    from_output: bool = False,
    actor: Any,
) -> Any:
    """Record a propagation run of ``media`` (already fetched through the tenancy door) and return
    its job, checked: a ready video, a known model, a frame of the video, a direction; ``frames`` a
    list of frames to re-segment; ``resume`` the id of an earlier run of this video to go on from
    its last done frame (its model, direction and frames are taken); ``from_output`` starts from an
    earlier run's masks on the start frame (given as mask prompts), as a resume does."""
    from platform_core.models import Job

    if media.kind != "video" or media.state != "ready" or not media.frame_count:
        raise PromptError("Propagation runs on a video whose frames are ready.", code="not_a_video")
    total_frames = media.frame_count
    params: dict[str, Any] = {}
    if resume is not None:
        earlier = (
            Job.objects.for_org(tenant.org)
            .filter(pk=resume if isinstance(resume, int) and not isinstance(resume, bool) else -1, kind=RUN_KIND)
            .first()
        )
        if earlier is None or earlier.params.get("media_id") != media.pk:
            raise PromptError("There is no such run of this video to resume.", code="bad_resume")
        last = earlier.report.get("last_done")
        if last is None:
            last = earlier.params["start"]
        model, direction, frames = earlier.params["model"], earlier.params["direction"], earlier.params.get("frames")
        start = last
        params = {"resume_of": earlier.pk, "resume_last_done": earlier.report.get("last_done")}
    if not isinstance(model, str) or model not in video_model_keys():
        raise PromptError(
            f"Unknown video model {str(model)[:40]!r}: use one of {', '.join(video_model_keys())}.",
            code="unknown_model",
        )
    start = _whole(start, "frame")
    if from_output is True and resume is None:
        params = {"resume_last_done": start}
    elif from_output not in (True, False):
        raise PromptError("from_output must be true or false.", code="bad_prompt")
    plan = passes(start=start, direction=direction, num_frames=total_frames)
    if frames is not None:
        if not isinstance(frames, list) or not frames or len(frames) > total_frames:
            raise PromptError("frames must be a list of the frames to re-segment.", code="bad_frames")
        frames = sorted({_whole(frame, "frames") for frame in frames})
        if frames[-1] >= total_frames:
            raise PromptError(f"Re-segment frames within 0 … {total_frames - 1}.", code="bad_frame")
        total = len(frames)
    else:
        total = sum(total_frames - s if not reverse else s + 1 for s, reverse in plan) - (1 if len(plan) == 2 else 0)
    return Job.objects.create(
        organization=tenant.org,
        project=media.project,
        kind=RUN_KIND,
        params={
            "media_id": media.pk,
            "model": model,
            "start": start,
            "direction": direction,
            "frames": frames,
            **params,
        },
        progress_total=total,
        created_by=actor,
    )


# --- where inference runs --------------------------------------------------------------------------------
def run_request(job: Any, *, org_slug: str, origin: str) -> dict[str, Any]:
    """The plain-JSON request of a run (it may cross the channel layer to a worker)."""
    return {
        "kind": "video_run",
        "org": org_slug,
        "user_id": job.created_by_id,
        "job_id": job.pk,
        "media_id": job.params["media_id"],
        "model": job.params["model"],
        "start": job.params["start"],
        "direction": job.params["direction"],
        "frames": job.params.get("frames"),
        "origin": origin,
    }


def run_execute(request: dict[str, Any], *, states: VideoStates | None = None) -> dict[str, Any]:
    """Run one propagation job to its end (or its stop) as the member who started it; every frame
    is saved and announced as it comes. Returns the ``video.run`` frame, also sent to the item's
    group; a run that fails is recorded as failed with its reason (frames done are kept)."""
    from annotation.annotations.services import VersionConflict

    try:
        return _run_execute(request, states=states)
    except (PromptError, VersionConflict) as exc:
        reason = exc.message if isinstance(exc, PromptError) else "An object changed while the run wrote it."
    except Exception:
        logger.exception("Propagation run %s failed", request.get("job_id"))
        reason = "The model failed on this video; frames done are kept. Resume to go on."
    return run_failed(request, reason)


def run_failed(request: dict[str, Any], reason: str) -> dict[str, Any]:
    """Record the run as failed (unless it already ended) and tell the item's group."""
    from platform_core.models import Job, Organization
    from platform_core.realtime import media_group, publish

    org = Organization.objects.filter(slug=request["org"]).first()
    runs = Job.objects.for_org(org).filter(pk=request["job_id"], kind=RUN_KIND) if org else Job.objects.none()
    runs.filter(state__in=(Job.State.QUEUED, Job.State.RUNNING)).update(
        state=Job.State.FAILED, message=reason, finished_at=timezone.now()
    )
    job = runs.first()
    frame = _run_frame(job) if job is not None else {"type": "video.run", "job": request["job_id"], "state": "failed"}
    publish(media_group(request["media_id"]), frame)
    return frame


def _run_execute(request: dict[str, Any], *, states: VideoStates | None = None) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from annotation.models import Annotation, Label
    from annotation.selectors import media_get
    from annotation.video_services import video_frames_local_dir
    from platform_core.models import Job
    from platform_core.realtime import media_group, publish
    from platform_core.tenancy import resolve_tenant

    user = get_user_model().objects.get(pk=request["user_id"])
    tenant = resolve_tenant(user, request["org"])
    media = media_get(tenant, request["media_id"])
    job = Job.objects.for_org(tenant.org).get(pk=request["job_id"], kind=RUN_KIND)
    model = request["model"]
    if job.state in (Job.State.CANCELLED, Job.State.SUCCEEDED):
        return _run_frame(job)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now()
    )
    job.refresh_from_db()
    publish(media_group(media.pk), _run_frame(job))
    states = states or video_states()
    warm = states.warm(
        media_id=media.pk,
        frames_key=media.frames_prefix,
        model=model,
        frames_dir=video_frames_local_dir(media),
        frame_count=media.frame_count or 0,
    )
    annotations = list(Annotation.objects.filter(media=media, frame__isnull=False, track__isnull=False))
    seeds = seeds_of(annotations, model=model)
    seeds += _resume_seeds(job, annotations, seeds)
    if not seeds:
        raise PromptError("Prompt an object on a frame first: there is nothing to propagate.", code="nothing_to_track")
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())  # the state is ready
    # Each track's label, read once for the whole run (a new frame of a track takes it).
    by_id = Label.objects.filter(project=media.project_id).in_bulk({seed.label_id for seed in seeds})
    labels = {seed.track: by_id[seed.label_id] for seed in seeds}
    seeded = {(seed.frame, seed.track) for seed in seeds if seed.mark[0] is not None}
    with warm.lock:
        apply_seeds(warm, seeds, width=media.width, height=media.height)

    def on_frame(frame: int, masks: dict[int, np.ndarray]) -> None:
        persist_frame(
            tenant=tenant,
            media=media,
            user=user,
            job=job,
            model=model,
            frame=frame,
            masks=masks,
            labels=labels,
            seeded=seeded,
            origin=request["origin"],
        )
        publish(
            media_group(media.pk),
            {
                "type": "video.frame",
                "job": job.pk,
                "frame": frame,
                "done": job.progress_done,
                "total": job.progress_total,
            },
        )

    def should_stop() -> bool:
        return Job.objects.filter(pk=job.pk, state=Job.State.CANCELLED).exists()

    outcome = run_frames(
        warm=warm,
        start=request["start"],
        direction=request["direction"],
        frames=request["frames"],
        on_frame=on_frame,
        should_stop=should_stop,
    )
    states.measure(media_id=media.pk, frames_key=media.frames_prefix, model=model, warm=warm)
    final = Job.State.CANCELLED if outcome.stopped else Job.State.SUCCEEDED
    Job.objects.filter(pk=job.pk).exclude(state=Job.State.CANCELLED).update(state=final, finished_at=timezone.now())
    Job.objects.filter(pk=job.pk, finished_at__isnull=True).update(finished_at=timezone.now())
    job.refresh_from_db()
    publish(media_group(media.pk), _run_frame(job))
    return _run_frame(job)


def run_stalled(request: dict[str, Any], *, stall_seconds: float, resume: bool) -> dict[str, Any] | None:
    """What a web process waiting for a run on a worker makes of its silence: None while the run
    lives (a heartbeat within ``stall_seconds``, or queued for less than three times that);
    ``{"kind": "ended"}`` when it ended all the same; else the run is recorded as failed (its frames
    kept) and, with ``resume``, a run going on from its last done frame is recorded and its request
    returned (``kind`` ``video_run``), or ``{"kind": "failed"}``."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model

    from annotation.selectors import media_get
    from platform_core.models import Job
    from platform_core.tenancy import resolve_tenant

    user = get_user_model().objects.get(pk=request["user_id"])
    tenant = resolve_tenant(user, request["org"])
    job = Job.objects.for_org(tenant.org).get(pk=request["job_id"], kind=RUN_KIND)
    now = timezone.now()
    if job.state not in (Job.State.QUEUED, Job.State.RUNNING):
        return {"kind": "ended"}
    if (
        job.state == Job.State.RUNNING
        and job.heartbeat_at
        and now - job.heartbeat_at < timedelta(seconds=stall_seconds)
    ):
        return None
    if job.state == Job.State.QUEUED and now - job.created_at < timedelta(seconds=3 * stall_seconds):
        return None
    done = job.report.get("last_done")
    run_failed(
        request,
        f"The worker running this propagation stopped answering; {job.progress_done} frame"
        f"{'s' if job.progress_done != 1 else ''} done are kept"
        + (f" (the last is frame {done})" if done is not None else "")
        + (". Going on from there." if resume else ". Resume to go on."),
    )
    if not resume:
        return {"kind": "failed"}
    media = media_get(tenant, request["media_id"])
    again = run_start(tenant=tenant, media=media, model=None, start=None, resume=job.pk, actor=user)
    return run_request(again, org_slug=request["org"], origin=request["origin"])


def _resume_seeds(job: Any, annotations: list[Any], seeds: list[Seed]) -> list[Seed]:
    """A run resuming another (``params.resume_of``) starts from the other's last done frame: its
    output there, for tracks without a person's seed on that frame, is given as masks."""
    last = job.params.get("resume_last_done")
    if last is None:
        return []
    taken = {(seed.frame, seed.track) for seed in seeds}
    return [
        Seed(frame=a.frame, track=a.track, label_id=a.label_id, mark=(None, a.version), rle=a.rle, clicks=None)
        for a in annotations
        if a.frame == last and is_run_output(a) and (a.frame, a.track) not in taken
    ]


def public_run_frame(job: Any) -> dict[str, Any]:
    """The socket's ``run`` frame for a run's job."""
    return {**_run_frame(job), "type": "run"}


def _run_frame(job: Any) -> dict[str, Any]:
    return {
        "type": "video.run",
        "job": job.pk,
        "state": job.state,
        "done": job.progress_done,
        "total": job.progress_total,
        "last_done": job.report.get("last_done"),
        "message": job.message,
    }
