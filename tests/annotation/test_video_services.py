"""Storing videos (annotation.video_services): checked before anything is stored, the original kept,
frames extracted once as <n>.jpg through the storage (during the upload for a short clip, in a job
otherwise), their times kept, a local frames folder for the SAM 2 video predictor; refusals and
failures leave nothing behind. Also on S3 (moto's server on loopback)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from moto.server import ThreadedMotoServer
from PIL import Image
from pytest_django import Settings

from annotation.media_services import media_create
from annotation.models import MediaItem, Project
from annotation.video_services import (
    KIND,
    frame_name,
    media_create_video,
    run_extract_video_frames,
    video_frame_times,
    video_frames_local_dir,
)
from platform_core.jobs import JobCancelled, JobProgress
from platform_core.jobs.core import run_job
from platform_core.models import Job
from tests.annotation.test_video_files import FPS, FRAMES, HEIGHT, WIDTH, corrupt_pictures, make_clip, truncated_mp4
from tests.conftest import World
from tests.factories import png_bytes
from tests.platform_core.test_storage_s3 import BUCKET, S3Endpoint, bucket_keys, s3_storages

IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default", "gpu"]}}
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["default", "gpu"]}}


@pytest.fixture
def project(world: World) -> Project:
    project = world.demo.project
    project.media_type = Project.MediaType.BOTH
    project.save(update_fields=["media_type"])
    return project


@pytest.fixture
def jobs_inline(settings: Settings, django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with jobs_inline():`` runs the jobs started inside it as the block ends, as a commit would."""
    settings.TASKS = IMMEDIATE
    return lambda: django_capture_on_commit_callbacks(execute=True)


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def assert_frames_stored(item: MediaItem, count: int = FRAMES) -> None:
    for index in range(count):
        with Image.open(io.BytesIO(read(frame_name(item.frames_prefix, index)))) as frame:
            assert (frame.format, frame.size) == ("JPEG", (item.width, item.height))
    assert not default_storage.exists(frame_name(item.frames_prefix, count))


# --- short clips: frames during the upload -------------------------------------------------------


def test_it_stores_a_clip_with_its_frames(world: World, project: Project) -> None:
    data = make_clip()
    item = media_create_video(project=project, name="street.mp4", data=data, uploaded_by=world.manager)
    item.refresh_from_db()
    assert (item.kind, item.state, item.state_detail) == ("video", "ready", "")
    assert (item.width, item.height, item.frame_count) == (WIDTH, HEIGHT, FRAMES)
    assert item.fps == pytest.approx(FPS)
    assert item.duration_s == pytest.approx(FRAMES / FPS, abs=0.01)
    assert (item.content_type, item.size_bytes, item.uploaded_by) == ("video/mp4", len(data), world.manager)
    # The original is kept byte for byte, under the tenant's key.
    assert read(item.file.name) == data
    assert item.file.name.startswith(f"org-{world.demo.org.pk}/project-{project.pk}/")
    assert item.frames_prefix.startswith(f"org-{world.demo.org.pk}/project-{project.pk}/frames-")
    with Image.open(io.BytesIO(read(item.thumbnail.name))) as thumbnail:
        assert thumbnail.format == "WEBP"
    assert_frames_stored(item)
    assert video_frame_times(item) == pytest.approx([n / FPS for n in range(FRAMES)], abs=0.002)
    index = json.loads(read(f"{item.frames_prefix}/frames.json"))
    assert (index["width"], index["height"]) == (WIDTH, HEIGHT)


def test_it_stores_a_webm_through_the_upload_dispatch(project: Project) -> None:
    item = media_create(project=project, name="clip.bin", data=make_clip(fmt="webm", codec="libvpx-vp9"))
    assert (item.kind, item.content_type, item.frame_count, item.state) == ("video", "video/webm", FRAMES, "ready")


def test_it_materialises_the_frames_in_a_local_folder(project: Project) -> None:
    item = media_create_video(project=project, name="clip.mp4", data=make_clip())
    folder = video_frames_local_dir(item)
    names = sorted((path.name for path in folder.glob("*.jpg")), key=lambda name: int(name.split(".")[0]))
    assert names == [f"{n}.jpg" for n in range(FRAMES)]
    for name in names:
        with Image.open(folder / name) as frame:
            assert frame.size == (WIDTH, HEIGHT)


def test_it_gives_the_sam2_video_loader_the_frames(project: Project) -> None:
    from sam2.utils.misc import load_video_frames

    item = media_create_video(project=project, name="clip.mp4", data=make_clip())
    images, height, width = load_video_frames(
        str(video_frames_local_dir(item)), image_size=64, offload_video_to_cpu=True, compute_device="cpu"
    )
    assert (tuple(images.shape), height, width) == ((FRAMES, 3, 64, 64), HEIGHT, WIDTH)


def test_it_has_no_frames_folder_for_an_image(world: World) -> None:
    with pytest.raises(ValueError, match="no extracted frames"):
        video_frames_local_dir(world.demo.media)


# --- refusals ------------------------------------------------------------------------------------

# name, bytes, settings to lower, the code of the refusal
REFUSED = [
    ("photo.mp4", png_bytes, {}, "not_a_video"),
    ("noise.mp4", lambda: bytes(range(256)) * 16, {}, "not_a_video"),
    ("cut.mp4", truncated_mp4, {}, "damaged"),
    ("sound.mp4", lambda: make_clip(audio=True, video=False), {}, "no_video_stream"),
    ("long.mp4", make_clip, {"VIDEO_MAX_FRAMES": FRAMES - 1}, "too_many_frames"),
    ("slow.mp4", lambda: make_clip(frames=24), {"VIDEO_MAX_SECONDS": 1}, "too_long"),
    ("big.mp4", make_clip, {"VIDEO_MAX_BYTES": 1024}, "too_large"),
    ("broken.mp4", lambda: corrupt_pictures(make_clip(frames=12, width=160, height=120)), {}, "damaged"),
]


@pytest.mark.parametrize(("name", "make", "limits", "code"), REFUSED, ids=[row[0] for row in REFUSED])
def test_it_refuses_a_bad_video_and_stores_nothing(
    project: Project, settings: Settings, name: str, make: Callable[[], bytes], limits: dict[str, int], code: str
) -> None:
    data = make()
    for setting, value in limits.items():
        setattr(settings, setting, value)
    before_files, before_items = stored_files(), MediaItem.objects.count()
    with pytest.raises(ValidationError) as caught:
        media_create(project=project, name=name, data=data)
    assert caught.value.code == code
    assert len(caught.value.messages[0]) > 20  # a sentence for people
    assert MediaItem.objects.count() == before_items
    assert stored_files() == before_files


def test_it_refuses_a_video_in_a_project_of_images(world: World) -> None:
    before = stored_files()
    with pytest.raises(ValidationError) as caught:
        media_create(project=world.demo.project, name="clip.mp4", data=make_clip())
    assert caught.value.code == "wrong_media_type"
    assert caught.value.messages == [f"The project “{world.demo.project.name}” takes images only."]
    assert stored_files() == before


def test_it_refuses_an_image_in_a_project_of_videos(project: Project) -> None:
    project.media_type = Project.MediaType.VIDEOS
    project.save(update_fields=["media_type"])
    with pytest.raises(ValidationError) as caught:
        media_create(project=project, name="photo.png", data=png_bytes())
    assert caught.value.code == "wrong_media_type"
    assert caught.value.messages == [f"The project “{project.name}” takes videos only."]
    # And a video is welcome there.
    assert media_create(project=project, name="clip.mp4", data=make_clip()).kind == "video"


# --- long clips: frames in a job -----------------------------------------------------------------


def test_it_extracts_a_long_clip_in_a_job(
    world: World, project: Project, settings: Settings, jobs_inline: Callable[[], Any]
) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    with jobs_inline():
        item = media_create_video(project=project, name="long.mp4", data=make_clip(), uploaded_by=world.manager)
        assert (item.state, item.frames_prefix) == ("processing", "")
        assert item.frame_count == FRAMES  # from the headers, before any frame is decoded
    job = Job.objects.get(kind=KIND)
    assert (job.state, job.params, job.project, job.created_by) == (
        "succeeded",
        {"media_id": item.pk},
        project,
        world.manager,
    )
    assert (job.progress_done, job.progress_total) == (FRAMES, FRAMES)
    item.refresh_from_db()
    assert (item.state, item.frame_count) == ("ready", FRAMES)
    assert_frames_stored(item)


def test_it_fails_the_item_and_keeps_no_frame_when_decoding_fails_in_the_job(
    project: Project, settings: Settings, jobs_inline: Callable[[], Any]
) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    data = corrupt_pictures(make_clip(frames=12, width=160, height=120))
    before = stored_files()
    with jobs_inline():
        item = media_create_video(project=project, name="broken.mp4", data=data)
    stored = stored_files() - before
    job = Job.objects.get(kind=KIND)
    item.refresh_from_db()
    assert (job.state, item.state, item.frames_prefix) == ("failed", "failed", "")
    assert item.state_detail.startswith("The video is damaged: decoding stopped at frame ")
    assert job.message == item.state_detail
    # The original and its thumbnail stay, so the failure can be looked at (and the item deleted).
    assert stored == {item.file.name, item.thumbnail.name}


def test_it_retries_the_job_from_the_start(project: Project, settings: Settings) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    settings.TASKS = DUMMY
    item = media_create_video(project=project, name="clip.mp4", data=make_clip())
    job = Job.objects.get(kind=KIND)
    # A first run failed (the worker stopped): the item says so, and the job is queued again.
    MediaItem.objects.filter(pk=item.pk).update(state=MediaItem.State.FAILED, state_detail="The worker stopped.")
    settings.TASKS = IMMEDIATE
    run_job.call(job.pk)
    item.refresh_from_db()
    assert (item.state, item.state_detail, item.frame_count) == ("ready", "", FRAMES)
    assert_frames_stored(item)
    # Delivered again: nothing done twice.
    Job.objects.filter(pk=job.pk).update(state=Job.State.QUEUED)
    prefix = item.frames_prefix
    run_job.call(job.pk)
    item.refresh_from_db()
    assert item.frames_prefix == prefix
    assert Job.objects.get(pk=job.pk).report == {"frames": FRAMES}


def test_it_fails_the_item_of_a_cancelled_job(project: Project, settings: Settings) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    settings.TASKS = DUMMY
    item = media_create_video(project=project, name="clip.mp4", data=make_clip())
    job = Job.objects.get(kind=KIND)
    before = stored_files()
    Job.objects.filter(pk=job.pk).update(state=Job.State.CANCELLED)
    with pytest.raises(JobCancelled):
        run_extract_video_frames(job, JobProgress(job))
    item.refresh_from_db()
    assert (item.state, item.frames_prefix) == ("failed", "")
    assert item.state_detail == "Frame extraction was cancelled; retry the job to extract the frames."
    assert stored_files() == before


def test_it_fails_a_job_whose_video_was_deleted(project: Project, settings: Settings) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    settings.TASKS = DUMMY
    item = media_create_video(project=project, name="clip.mp4", data=make_clip())
    job = Job.objects.get(kind=KIND)
    item.delete()
    settings.TASKS = IMMEDIATE
    run_job.call(job.pk)
    job.refresh_from_db()
    assert (job.state, job.message) == ("failed", "The video was deleted before its frames were extracted.")


# --- S3 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Endpoint]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(url=f"http://{host}:{port}", host=host, port=port)
        endpoint.client().create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_media(world: World, s3_server: S3Endpoint, settings: Settings) -> S3Endpoint:
    """The default storage switched to the bucket; requests `world` first so its media stays local."""
    settings.STORAGES = s3_storages(s3_server, settings, BUCKET)
    return s3_server


def test_it_writes_the_frames_to_the_bucket(
    project: Project, s3_media: S3Endpoint, settings: Settings, tmp_path: Path
) -> None:
    settings.DATA_DIR = tmp_path
    before = bucket_keys(s3_media)
    data = make_clip()
    item = media_create_video(project=project, name="clip.mp4", data=data)
    expected = {item.file.name, item.thumbnail.name, f"{item.frames_prefix}/frames.json"}
    expected |= {frame_name(item.frames_prefix, n) for n in range(FRAMES)}
    assert bucket_keys(s3_media) - before == expected
    frame = s3_media.client().get_object(Bucket=BUCKET, Key=frame_name(item.frames_prefix, 4))
    assert frame["ContentType"] == "image/jpeg"
    assert s3_media.client().get_object(Bucket=BUCKET, Key=item.file.name)["Body"].read() == data
    # The SAM 2 folder is a local copy, made once.
    folder = video_frames_local_dir(item)
    assert folder.is_relative_to(tmp_path / "cache" / "video-frames")
    assert sorted(path.name for path in folder.glob("*.jpg")) == sorted(f"{n}.jpg" for n in range(FRAMES))
    assert video_frames_local_dir(item) == folder
    assert video_frame_times(item) == pytest.approx([n / FPS for n in range(FRAMES)], abs=0.002)


def test_it_extracts_from_the_bucket_in_a_job(
    project: Project, s3_media: S3Endpoint, settings: Settings, jobs_inline: Callable[[], Any]
) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    with jobs_inline():
        item = media_create_video(project=project, name="clip.mp4", data=make_clip())
    item.refresh_from_db()
    assert item.state == "ready"
    assert {frame_name(item.frames_prefix, n) for n in range(FRAMES)} <= bucket_keys(s3_media)


def test_it_leaves_nothing_in_the_bucket_when_refused(project: Project, s3_media: S3Endpoint) -> None:
    before = bucket_keys(s3_media)
    data = corrupt_pictures(make_clip(frames=12, width=160, height=120))
    with pytest.raises(ValidationError):
        media_create_video(project=project, name="broken.mp4", data=data)
    assert bucket_keys(s3_media) == before
