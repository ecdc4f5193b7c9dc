"""Videos through the upload paths and the delivery views: the REST upload (what the project page's
drop zone posts to), the item's JSON, its frames served one by one through the tenancy door, the
gallery and item pages, and a zip import. Another organisation's member gets 404 everywhere."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image
from pytest_django import Settings

from annotation.media_import import media_import_run
from annotation.models import MediaItem, Project
from annotation.video_services import media_create_video
from tests.annotation.test_video_files import FPS, FRAMES, HEIGHT, WIDTH, make_clip, truncated_mp4
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import png_bytes

DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["default", "gpu"]}}


@pytest.fixture
def project(world: World) -> Project:
    project = world.demo.project
    project.media_type = Project.MediaType.BOTH
    project.save(update_fields=["media_type"])
    return project


def upload(client: Any, project: Project, name: str, data: bytes, content_type: str = "video/mp4") -> Any:
    url = api_url("api_media_list", project_id=project.pk)
    return client.post(url, {"file": [SimpleUploadedFile(name, data, content_type=content_type)]}, format="multipart")


def frame_url(item: MediaItem, frame: int, org_slug: str = "demo-lab") -> str:
    return reverse("media_frame", kwargs={"org_slug": org_slug, "video_id": item.pk, "frame": frame})


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def jpeg_size(response: Any) -> tuple[int, int]:
    with Image.open(io.BytesIO(b"".join(response.streaming_content))) as image:
        assert image.format == "JPEG"
        return image.size


# --- REST upload ---------------------------------------------------------------------------------


def test_it_uploads_a_clip_and_serves_each_frame(world: World, project: Project) -> None:
    response = upload(token_client(world.manager), project, "street.mp4", make_clip())
    assert response.status_code == 201, response.json()
    [created] = response.json()["created"]
    item = MediaItem.objects.get(pk=created["id"])
    assert (created["kind"], created["state"], created["state_detail"]) == ("video", "ready", "")
    assert (created["frame_count"], created["width"], created["height"]) == (FRAMES, WIDTH, HEIGHT)
    assert created["fps"] == pytest.approx(FPS)
    assert created["duration_s"] == pytest.approx(FRAMES / FPS, abs=0.01)
    assert created["content_type"] == "video/mp4"
    assert created["frame_url"] == f"http://testserver/o/demo-lab/media/{item.pk}/frames/{{n}}.jpg"
    client = signed_in(world.reviewer)
    for n in range(created["frame_count"]):
        response = client.get(created["frame_url"].replace("{n}", str(n)))
        assert response.status_code == 200
        assert response["Content-Type"] == "image/jpeg"
        assert jpeg_size(response) == (WIDTH, HEIGHT)
    assert client.get(frame_url(item, FRAMES)).status_code == 404
    # The original and the thumbnail through the same doors as an image's.
    original = client.get(created["file"])
    assert (original.status_code, original["Content-Type"]) == (200, "video/mp4")
    with default_storage.open(item.file.name, "rb") as stored:
        assert b"".join(original.streaming_content) == stored.read()
    assert client.get(created["thumbnail"])["Content-Type"] == "image/webp"


def test_it_reports_the_video_fields_of_an_image_as_empty(world: World) -> None:
    body = token_client(world.manager).get(api_url("api_media_detail", media_id=world.demo.media.pk)).json()
    assert (body["kind"], body["state"], body["frame_count"], body["fps"]) == ("image", "ready", None, None)
    assert (body["duration_s"], body["frame_url"]) == (None, None)


def test_it_reports_a_long_clip_as_processing_until_its_job_ran(
    world: World, project: Project, settings: Settings
) -> None:
    settings.VIDEO_INLINE_MAX_PIXELS = 0
    settings.TASKS = DUMMY
    response = upload(token_client(world.manager), project, "long.mp4", make_clip())
    assert response.status_code == 201
    [created] = response.json()["created"]
    assert (created["state"], created["frame_count"], created["frame_url"]) == ("processing", FRAMES, None)
    item = MediaItem.objects.get(pk=created["id"])
    assert signed_in(world.manager).get(frame_url(item, 0)).status_code == 404
    page = signed_in(world.manager).get(
        reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": project.pk})
    )
    assert "video · 5 frames · processing" in page.content.decode()


# name, bytes, settings to lower, the code of the refusal
REFUSED = [
    ("photo.mp4", png_bytes, {}, "not_a_video"),
    ("noise.mp4", lambda: bytes(range(256)) * 16, {}, "not_a_video"),
    ("cut.mp4", truncated_mp4, {}, "damaged"),
    ("sound.mp4", lambda: make_clip(audio=True, video=False), {}, "no_video_stream"),
    ("long.mp4", make_clip, {"VIDEO_MAX_FRAMES": FRAMES - 1}, "too_many_frames"),
    ("slow.mp4", lambda: make_clip(frames=24), {"VIDEO_MAX_SECONDS": 1}, "too_long"),
    ("big.webm", lambda: make_clip(fmt="webm", codec="libvpx-vp9"), {"VIDEO_MAX_BYTES": 200}, "too_large"),
]


@pytest.mark.parametrize(("name", "make", "limits", "code"), REFUSED, ids=[row[0] for row in REFUSED])
def test_it_refuses_a_bad_video_over_rest_and_stores_nothing(
    world: World,
    project: Project,
    settings: Settings,
    name: str,
    make: Callable[[], bytes],
    limits: dict[str, int],
    code: str,
) -> None:
    data = make()
    for setting, value in limits.items():
        setattr(settings, setting, value)
    files = stored_files()
    response = upload(token_client(world.manager), project, name, data)
    assert response.status_code == 400
    body = response.json()
    assert body["created"] == []
    [refused] = body["refused"]
    assert (refused["name"], refused["code"]) == (name, code)
    assert len(refused["error"]) > 20
    assert MediaItem.objects.filter(project=project).count() == 1  # the world's image alone
    assert stored_files() == files


def test_it_stores_the_good_files_of_a_mixed_upload(world: World, project: Project) -> None:
    url = api_url("api_media_list", project_id=project.pk)
    files = [
        SimpleUploadedFile("clip.webm", make_clip(fmt="webm", codec="libvpx-vp9"), content_type="video/webm"),
        SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png"),
        SimpleUploadedFile("fake.mov", b"not a movie at all, just some words", content_type="video/quicktime"),
    ]
    response = token_client(world.manager).post(url, {"file": files}, format="multipart")
    assert response.status_code == 207
    body = response.json()
    assert [(item["name"], item["kind"]) for item in body["created"]] == [
        ("clip.webm", "video"),
        ("photo.png", "image"),
    ]
    assert [(item["name"], item["code"]) for item in body["refused"]] == [("fake.mov", "not_a_video")]


def test_it_refuses_a_video_in_a_project_of_images_and_an_image_in_one_of_videos(world: World) -> None:
    project = world.demo.project
    response = upload(token_client(world.manager), project, "clip.mp4", make_clip())
    assert response.status_code == 400
    assert response.json()["refused"][0]["code"] == "wrong_media_type"
    assert response.json()["refused"][0]["error"] == f"The project “{project.name}” takes images only."
    videos = Project.objects.create(organization=world.demo.org, name="Clips", media_type=Project.MediaType.VIDEOS)
    response = upload(token_client(world.manager), videos, "photo.png", png_bytes(), "image/png")
    assert response.status_code == 400
    assert response.json()["refused"][0]["error"] == "The project “Clips” takes videos only."
    assert upload(token_client(world.manager), videos, "clip.mp4", make_clip()).status_code == 201


# --- tenancy -------------------------------------------------------------------------------------


@pytest.fixture
def video(world: World, project: Project) -> MediaItem:
    return media_create_video(project=project, name="clip.mp4", data=make_clip(), uploaded_by=world.manager)


def test_it_answers_404_to_another_organisations_member(world: World, video: MediaItem) -> None:
    outsider = signed_in(world.outsider)
    assert signed_in(world.owner).get(frame_url(video, 0)).status_code == 200
    for url in (frame_url(video, 0), frame_url(video, 0, org_slug="other-lab")):
        assert outsider.get(url).status_code == 404
    api = token_client(world.outsider)
    assert api.get(api_url("api_media_detail", media_id=video.pk)).status_code == 404
    assert api.get(api_url("api_media_detail", org_slug="other-lab", media_id=video.pk)).status_code == 404


def test_it_answers_404_to_an_annotator_outside_the_items_task(world: World, video: MediaItem) -> None:
    annotator = signed_in(world.annotator)
    assert annotator.get(frame_url(video, 0)).status_code == 404
    video.task = world.demo.task  # the annotator's own task
    video.save(update_fields=["task"])
    assert annotator.get(frame_url(video, 0)).status_code == 200


def test_it_sends_an_anonymous_visitor_to_sign_in(video: MediaItem) -> None:
    response = Client().get(frame_url(video, 0))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_has_no_frames_for_an_image(world: World) -> None:
    assert signed_in(world.owner).get(frame_url(world.demo.media, 0)).status_code == 404


def test_it_lets_the_browser_keep_a_frame(world: World, video: MediaItem) -> None:
    client = signed_in(world.owner)
    first = client.get(frame_url(video, 2))
    assert first["Cache-Control"] == "private, max-age=86400, immutable"
    again = client.get(frame_url(video, 2), HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert client.get(frame_url(video, 3))["ETag"] != first["ETag"]


# --- pages ---------------------------------------------------------------------------------------


def test_it_shows_a_video_in_the_gallery_with_its_frame_count(world: World, video: MediaItem) -> None:
    url = reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": video.project_id})
    html = signed_in(world.manager).get(url).content.decode()
    assert "video · 5 frames</small>" in html
    assert reverse("media_thumbnail", kwargs={"org_slug": "demo-lab", "media_id": video.pk}) in html
    assert "MP4, MOV, WebM" in html and "video/mp4" in html  # the drop zone takes videos here


def test_it_shows_a_video_items_first_frame_and_facts(world: World, video: MediaItem) -> None:
    url = reverse("media_detail", kwargs={"org_slug": "demo-lab", "project_id": video.project_id, "media_id": video.pk})
    html = signed_in(world.manager).get(url).content.decode()
    assert frame_url(video, 0) in html
    assert "video · 5 frames at 12 fps · 0.4 s · 64 × 48 px" in html


def test_it_shows_why_a_video_failed(world: World, video: MediaItem) -> None:
    MediaItem.objects.filter(pk=video.pk).update(state="failed", state_detail="The video is damaged at frame 3.")
    url = reverse("media_detail", kwargs={"org_slug": "demo-lab", "project_id": video.project_id, "media_id": video.pk})
    html = signed_in(world.manager).get(url).content.decode()
    assert "The video is damaged at frame 3." in html
    assert frame_url(video, 0) not in html


# --- zip import ----------------------------------------------------------------------------------


def test_it_imports_videos_from_a_zip(world: World, project: Project, tmp_path: Path) -> None:
    archive = tmp_path / "media.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("clips/a.mp4", make_clip())
        bundle.writestr("clips/b.webm", make_clip(fmt="webm", codec="libvpx-vp9", frames=3))
        bundle.writestr("clips/c.mp4", png_bytes())
        bundle.writestr("photo.png", png_bytes())
    state = media_import_run(project=project, params={"source": "zip", "path": str(archive)}, uploaded_by=world.manager)
    assert state.imported == 3
    assert [entry["name"] for entry in state.skipped] == ["clips/c.mp4"]
    assert "not a video" in state.skipped[0]["reason"]
    items = {item.original_name: item for item in project.media.all()}
    assert (items["clips/a.mp4"].kind, items["clips/a.mp4"].frame_count, items["clips/a.mp4"].state) == (
        "video",
        FRAMES,
        "ready",
    )
    assert (items["clips/b.webm"].kind, items["clips/b.webm"].frame_count) == ("video", 3)
    assert items["photo.png"].kind == "image"
