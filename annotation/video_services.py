"""Writes on video items: storing an uploaded video and extracting its frames once.

``media_create_video`` checks the file first (``annotation.video_files``; nothing is stored on a
refusal), keeps the original as the item's ``file`` with a WebP thumbnail of its first frame, and
creates the item in state *processing*. Then its frames are extracted, where depends on the
clip's size (frames × width × height against ``VIDEO_INLINE_MAX_PIXELS``):

- a short clip during the upload itself, so the answer already says *ready*; a frame that fails
  to decode then refuses the whole upload and nothing is kept;
- anything longer in a background job (kind ``extract_video_frames``, queue ``default``) that
  reports progress frame by frame; it ends with the item *ready*, or *failed* with the reason in
  ``state_detail`` and no frame left in storage. Retrying the job extracts again from the start.

Frames are JPEG files ``<index>.jpg`` (index from 0, what the SAM 2 video predictor reads) plus
``frames.json`` (the frame rate and each frame's time in seconds) under the item's
``frames_prefix``, written through the storage the item's file uses, so they land in the bucket
when media lives on S3. Each extraction writes under a new prefix: a retried or superseded run
never mixes its frames with another's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction

from annotation.models import MediaItem, Project
from annotation.video_files import (
    ExtractedFrames,
    VideoProbe,
    VideoSource,
    check_container,
    extract_frames,
    opened_video,
    probe_video,
)
from platform_core.jobs import JobCancelled, JobProgress, job_runner, job_start
from platform_core.models import Job

KIND = "extract_video_frames"
FRAMES_INDEX = "frames.json"
COMPLETE_MARK = ".complete"


def media_create_video(*, project: Project, name: str, data: VideoSource, uploaded_by: Any = None) -> MediaItem:
    """Store one uploaded video and extract its frames (now, or in a job for a long clip).

    ``data`` is the file's bytes, a path, or an open binary file such as an ``UploadedFile``. A bad
    file, or a project that takes no videos, raises ValidationError and stores nothing.
    """
    with opened_video(data) as (source, size):
        check_container(source)
        if not project.accepts("video"):
            raise ValidationError(
                f"The project “{project.name}” takes {project.get_media_type_display().lower()} only.",
                code="wrong_media_type",
            )
        probe = probe_video(source)
        return _store(project, name, source, size, probe, uploaded_by)


def _store(project: Project, name: str, source: IO[bytes], size: int, probe: VideoProbe, uploaded_by: Any) -> MediaItem:
    item = MediaItem(
        project=project,
        kind=MediaItem.Kind.VIDEO,
        original_name=name[:255],
        content_type=probe.container.content_type,
        width=probe.width,
        height=probe.height,
        size_bytes=size,
        uploaded_by=uploaded_by,
        state=MediaItem.State.PROCESSING,
        frame_count=probe.frame_count,
        fps=probe.fps,
        duration_s=probe.duration_s,
    )
    inline = probe.frame_count * probe.width * probe.height <= settings.VIDEO_INLINE_MAX_PIXELS
    storage = item.file.storage
    stored: list[str] = []
    prefix = ""
    try:
        with transaction.atomic():
            source.seek(0)
            item.file.save(f"upload{probe.container.extension}", File(source), save=False)
            stored.append(item.file.name)
            item.thumbnail.save("thumbnail.webp", ContentFile(probe.thumbnail), save=False)
            stored.append(item.thumbnail.name)
            if inline:
                prefix, frames = _extract_into_storage(item, source)
                _set_ready(item, prefix, frames)
            item.full_clean()
            item.save()
            if not inline:
                job_start(
                    organization=project.organization,
                    kind=KIND,
                    params={"media_id": item.pk},
                    created_by=uploaded_by,
                    project=project,
                )
    except BaseException:
        # The row is rolled back; do not leave its files in storage.
        for stored_name in stored:
            storage.delete(stored_name)
        video_frames_delete(storage, prefix)
        raise
    return item


def _set_ready(item: MediaItem, prefix: str, frames: ExtractedFrames) -> None:
    item.state = MediaItem.State.READY
    item.state_detail = ""
    item.frames_prefix = prefix
    item.frame_count = frames.frame_count
    item.fps = frames.fps
    item.width, item.height = frames.width, frames.height


# --- extraction ----------------------------------------------------------------------------------


def _new_prefix(item: MediaItem) -> str:
    return f"org-{item.project.organization_id}/project-{item.project_id}/frames-{uuid.uuid4().hex}"


def frame_name(prefix: str, index: int) -> str:
    """The storage name of frame ``index`` (from 0) under a frames prefix."""
    return f"{prefix}/{index}.jpg"


def _extract_into_storage(
    item: MediaItem, source: VideoSource, on_frame: Callable[[int], None] | None = None
) -> tuple[str, ExtractedFrames]:
    """Decode ``source`` and write its frames and their index under a new prefix; on any failure
    the frames written so far are deleted before the error propagates."""
    storage = item.file.storage
    prefix = _new_prefix(item)

    def write(index: int, jpeg: bytes, _seconds: float) -> None:
        wanted = frame_name(prefix, index)
        written = storage.save(wanted, ContentFile(jpeg))
        if written != wanted:
            raise RuntimeError(f"Storage renamed frame {wanted} to {written}: the frames prefix was not new.")
        if on_frame is not None:
            on_frame(index)

    try:
        frames = extract_frames(source, write)
        index = {"fps": frames.fps, "times": frames.times, "width": frames.width, "height": frames.height}
        storage.save(f"{prefix}/{FRAMES_INDEX}", ContentFile(json.dumps(index).encode()))
    except BaseException:
        video_frames_delete(storage, prefix)
        raise
    return prefix, frames


@job_runner(KIND, label="Video frames")
def run_extract_video_frames(job: Job, progress: JobProgress) -> dict[str, Any]:
    item = (
        MediaItem.objects.for_org(job.organization)
        .select_related("project")
        .filter(pk=job.params.get("media_id"), kind=MediaItem.Kind.VIDEO)
        .first()
    )
    if item is None:
        raise ValueError("The video was deleted before its frames were extracted.")
    if item.state == MediaItem.State.READY:
        return {"frames": item.frame_count}  # done by an earlier run of this job
    MediaItem.objects.filter(pk=item.pk).update(state=MediaItem.State.PROCESSING, state_detail="")
    total = item.frame_count or 0

    def on_frame(index: int) -> None:
        progress.update(done=index + 1, total=max(total, index + 1), message=f"Frame {index + 1} of {total}")

    prefix = ""
    try:
        progress.update(done=0, total=total, message=f"Extracting {total} frames")
        with _local_original(item) as source:
            prefix, frames = _extract_into_storage(item, source, on_frame)
        progress.flush()  # raises JobCancelled if the job was cancelled or taken by a newer run meanwhile
    except BaseException as exc:
        video_frames_delete(item.file.storage, prefix)  # frames of a run stopped after its last frame
        _record_failure(job, item, exc)
        if isinstance(exc, ValidationError):
            raise ValueError(" ".join(exc.messages)) from None
        raise
    _commit_ready(item, prefix, frames)
    return {"frames": frames.frame_count, "fps": frames.fps}


def _commit_ready(item: MediaItem, prefix: str, frames: ExtractedFrames) -> None:
    _set_ready(item, prefix, frames)
    fields = ["state", "state_detail", "frames_prefix", "frame_count", "fps", "width", "height"]
    updated = MediaItem.objects.filter(pk=item.pk, state=MediaItem.State.PROCESSING).update(
        **{field: getattr(item, field) for field in fields}
    )
    if not updated:
        # Deleted, or finished by another run meanwhile: these frames belong to nothing.
        video_frames_delete(item.file.storage, prefix)


def _record_failure(job: Job, item: MediaItem, exc: BaseException) -> None:
    """Say on the item why its frames are missing; a run superseded by a newer one says nothing
    (the newer run owns the item now)."""
    if isinstance(exc, JobCancelled):
        if Job.objects.filter(pk=job.pk, state=Job.State.CANCELLED).exists():
            _set_failed(item, "Frame extraction was cancelled; retry the job to extract the frames.")
    elif isinstance(exc, ValidationError):
        _set_failed(item, " ".join(exc.messages))
    else:
        _set_failed(item, f"Frame extraction stopped: {exc or type(exc).__name__}. Retry the job.")


def _set_failed(item: MediaItem, reason: str) -> None:
    MediaItem.objects.filter(pk=item.pk, state=MediaItem.State.PROCESSING).update(
        state=MediaItem.State.FAILED, state_detail=reason[:2000]
    )


@contextmanager
def _local_original(item: MediaItem) -> Iterator[VideoSource]:
    """The stored original as something PyAV can seek in: the file itself on local storage, a
    temporary copy otherwise."""
    storage = item.file.storage
    if isinstance(storage, FileSystemStorage):
        yield Path(storage.path(item.file.name))
        return
    with tempfile.TemporaryFile() as copy, storage.open(item.file.name, "rb") as remote:
        shutil.copyfileobj(remote, copy, length=1024 * 1024)
        copy.seek(0)
        yield copy


# --- reading and removing frames -----------------------------------------------------------------


def video_frames_delete(storage: Storage, prefix: str) -> None:
    """Remove every file under a frames prefix (and its folder on local storage)."""
    if not prefix:
        return
    try:
        _folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return
    for file_name in files:
        storage.delete(f"{prefix}/{file_name}")
    if isinstance(storage, FileSystemStorage):
        storage.delete(prefix)


def video_frame_times(item: MediaItem) -> list[float]:
    """Each frame's time in seconds (from the stream's timestamps), in frame order."""
    _require_frames(item)
    with item.file.storage.open(f"{item.frames_prefix}/{FRAMES_INDEX}", "rb") as handle:
        return [float(value) for value in json.load(handle)["times"]]


def video_frames_local_dir(item: MediaItem) -> Path:
    """A local folder holding the item's frames as ``0.jpg`` … (what the SAM 2 video predictor
    reads). Treat it as read-only: on local storage it is the stored frames folder itself; on
    remote storage a copy kept under ``DATA_DIR/cache/video-frames`` and reused by later calls
    (a prefix is never rewritten, so the copy cannot go stale)."""
    _require_frames(item)
    storage = item.file.storage
    if isinstance(storage, FileSystemStorage):
        return Path(storage.path(item.frames_prefix))
    root = Path(settings.DATA_DIR) / "cache" / "video-frames"
    target = root / hashlib.sha256(item.frames_prefix.encode()).hexdigest()[:40]
    if (target / COMPLETE_MARK).exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=root, prefix=".partial-"))
    try:
        for index in range(item.frame_count or 0):
            with storage.open(frame_name(item.frames_prefix, index), "rb") as remote:
                (partial / f"{index}.jpg").write_bytes(remote.read())
        (partial / COMPLETE_MARK).touch()
        try:
            partial.rename(target)
        except OSError:
            # Another process finished the same copy first (or left a broken one: replace it).
            if not (target / COMPLETE_MARK).exists():
                shutil.rmtree(target, ignore_errors=True)
                partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _require_frames(item: MediaItem) -> None:
    if item.kind != MediaItem.Kind.VIDEO or item.state != MediaItem.State.READY or not item.frames_prefix:
        raise ValueError(f"Media item {item.pk} has no extracted frames (a video in state ready has).")
