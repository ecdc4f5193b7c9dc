"""REST API: media (uploads of one or more files, the filtered list, one item, deletion) and the
annotator-scope rule (an annotator reaches only the items of their own tasks)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from annotation.models import Annotation, MediaItem, Task
from tests.annotation.test_image_files import forged_png, frames, jpeg_declaring, noise, noisy_png, sideways
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import png_bytes

MEDIA_FIELDS = {
    "id",
    "project",
    "name",
    "kind",
    "state",
    "state_detail",
    "frame_count",
    "fps",
    "duration_s",
    "frame_url",
    "width",
    "height",
    "size_bytes",
    "content_type",
    "file",
    "thumbnail",
    "task",
    "done",
    "answers",
    "created_at",
}


def media_url(world: World) -> str:
    return api_url("api_media_list", project_id=world.demo.project.pk)


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def post_files(client: Any, url: str, files: list[SimpleUploadedFile]) -> Any:
    return client.post(url, {"file": files}, format="multipart")


def stored(world: World) -> int:
    return MediaItem.objects.filter(project=world.demo.project).count()


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def stored_bytes(item_id: int, field: str = "file") -> bytes:
    with default_storage.open(getattr(MediaItem.objects.get(pk=item_id), field).name, "rb") as handle:
        return handle.read()


def truncated_png() -> bytes:
    data = noisy_png()
    return data[: len(data) // 2]


# name, bytes, the code the refusal names
BAD_FILES = [
    ("empty.png", lambda: b"", "empty"),
    ("notes.txt", lambda: b"just some text\n", "not_an_image"),
    ("half.png", truncated_png, "damaged"),
    ("bomb.png", lambda: forged_png(100_000, 100_000, rows=1, row_bytes=30), "too_many_pixels"),
    ("liar.png", lambda: forged_png(9000, 9000, rows=1, row_bytes=30), "size_mismatch"),
    ("liar.jpg", lambda: jpeg_declaring(9000, 9000), "size_mismatch"),
    ("logo.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "unsupported_format"),
    ("page.jpg", lambda: b"<!doctype html><script>alert(1)</script>", "not_an_image"),
    ("animation.gif", lambda: frames("GIF"), "multi_frame"),
]


def test_it_stores_an_uploaded_image(world: World) -> None:
    response = post_files(token_client(world.manager), media_url(world), [upload("cat.png", png_bytes(40, 30))])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["refused"] == []
    [created] = body["created"]
    assert set(created) == MEDIA_FIELDS
    assert (created["name"], created["kind"], created["width"], created["height"]) == ("cat.png", "image", 40, 30)
    assert (created["task"], created["done"], created["answers"]) == (None, False, {})
    item = MediaItem.objects.get(pk=created["id"])
    assert (item.project, item.uploaded_by) == (world.demo.project, world.manager)
    assert created["file"] == f"http://testserver/o/demo-lab/media/{item.pk}/file"
    assert created["thumbnail"] == f"http://testserver/o/demo-lab/media/{item.pk}/thumbnail"
    assert default_storage.exists(item.file.name)
    assert default_storage.exists(item.thumbnail.name)


def test_it_stores_several_files_in_one_request(world: World) -> None:
    files = [upload(f"{n}.png", png_bytes(10 + n, 10)) for n in range(3)]
    response = post_files(token_client(world.manager), media_url(world), files)
    assert response.status_code == 201
    assert [item["name"] for item in response.json()["created"]] == ["0.png", "1.png", "2.png"]
    assert stored(world) == 4


@pytest.mark.parametrize(("name", "make", "code"), BAD_FILES, ids=[name for name, _, _ in BAD_FILES])
def test_it_refuses_a_bad_file_and_stores_nothing(world: World, name: str, make: Any, code: str) -> None:
    files = stored_files()
    response = post_files(token_client(world.manager), media_url(world), [upload(name, make())])
    assert response.status_code == 400
    body = response.json()
    assert body["created"] == []
    [refused] = body["refused"]
    assert (refused["name"], refused["code"]) == (name, code)
    assert len(refused["error"]) > 15  # a sentence for people, not a code
    assert stored(world) == 1
    assert stored_files() == files


def test_it_names_each_refused_file_of_a_request(world: World) -> None:
    files = stored_files()
    uploads = [upload(name, make()) for name, make, _ in BAD_FILES]
    response = post_files(token_client(world.manager), media_url(world), uploads)
    assert response.status_code == 400
    body = response.json()
    assert body["created"] == []
    assert [(item["name"], item["code"]) for item in body["refused"]] == [(name, code) for name, _, code in BAD_FILES]
    assert len({item["error"] for item in body["refused"]}) > 5  # each says its own reason
    assert stored(world) == 1
    assert stored_files() == files


def test_it_stores_the_good_files_of_a_mixed_batch(world: World) -> None:
    files = stored_files()
    batch = [
        upload("empty.png", b""),
        upload("a.png", png_bytes()),
        upload("animation.gif", frames("GIF")),
        upload("b.png", png_bytes(8, 8)),
    ]
    response = post_files(token_client(world.manager), media_url(world), batch)
    assert response.status_code == 207
    body = response.json()
    assert [item["name"] for item in body["created"]] == ["a.png", "b.png"]
    assert [(item["name"], item["code"]) for item in body["refused"]] == [
        ("empty.png", "empty"),
        ("animation.gif", "multi_frame"),
    ]
    assert sorted(MediaItem.objects.filter(project=world.demo.project).values_list("original_name", flat=True)) == [
        "a.png",
        "b.png",
        "photo.png",
    ]
    # Only the two stored items' files (and thumbnails) are new.
    created = MediaItem.objects.filter(pk__in=[item["id"] for item in body["created"]])
    assert stored_files() - files == {name for item in created for name in (item.file.name, item.thumbnail.name)}


def test_it_stores_a_png_with_a_page_appended_as_a_clean_png(world: World) -> None:
    clean = noisy_png(40, 30)
    page = b"<html><body><script>fetch('/steal?'+document.cookie)</script></body></html>"
    response = post_files(token_client(world.manager), media_url(world), [upload("polyglot.png", clean + page)])
    assert response.status_code == 201, response.json()
    [created] = response.json()["created"]
    data = stored_bytes(created["id"])
    for trace in (b"<script", b"<html", b"steal", b"cookie"):
        assert trace not in data
    with Image.open(io.BytesIO(data)) as image, Image.open(io.BytesIO(clean)) as original:
        assert image.format == "PNG"
        assert image.tobytes() == original.tobytes()


def test_it_stores_a_tiff_as_a_png(world: World) -> None:
    source = noise(30, 20)
    buffer = io.BytesIO()
    source.save(buffer, format="TIFF")
    response = post_files(token_client(world.manager), media_url(world), [upload("scan.tif", buffer.getvalue())])
    assert response.status_code == 201, response.json()
    [created] = response.json()["created"]
    assert (created["content_type"], created["width"], created["height"]) == ("image/png", 30, 20)
    with Image.open(io.BytesIO(stored_bytes(created["id"]))) as image:
        assert image.format == "PNG"
        assert image.convert("RGB").tobytes() == source.tobytes()


def test_it_stores_a_phone_photo_upright(world: World) -> None:
    # Encoded 40×20 with EXIF orientation 6: stored 20×40, turned, without the tag.
    response = post_files(token_client(world.manager), media_url(world), [upload("phone.jpg", sideways("JPEG"))])
    assert response.status_code == 201, response.json()
    [created] = response.json()["created"]
    assert (created["width"], created["height"]) == (20, 40)
    with Image.open(io.BytesIO(stored_bytes(created["id"]))) as image:
        assert image.size == (20, 40)
        assert 0x0112 not in image.getexif()
        red, _, blue = image.getpixel((10, 5))
        assert red > 200 and blue < 60
    with Image.open(io.BytesIO(stored_bytes(created["id"], "thumbnail"))) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("WEBP", (20, 40))


def test_it_refuses_a_request_without_files(world: World) -> None:
    response = token_client(world.manager).post(media_url(world), {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "no_file"
    assert stored(world) == 1


def test_it_refuses_more_files_than_the_limit_in_one_request(world: World) -> None:
    files = [upload(f"{n}.png", png_bytes(4, 4)) for n in range(101)]
    response = post_files(token_client(world.manager), media_url(world), files)
    assert response.status_code == 400
    assert response.json() == {"detail": "At most 100 files per request.", "code": "too_many_files"}
    assert stored(world) == 1


def test_it_refuses_a_file_over_the_byte_limit_without_storing_it(world: World, settings: Any) -> None:
    settings.MAX_UPLOAD_BYTES = 2048
    response = post_files(token_client(world.manager), media_url(world), [upload("big.png", bytes(4096))])
    assert response.status_code == 400
    assert response.json()["refused"][0] == {
        "name": "big.png",
        "code": "too_large",
        "error": "The file is 4096 bytes; the limit is 2048 bytes.",
    }
    assert stored(world) == 1


def test_it_refuses_images_in_a_video_project(world: World) -> None:
    MediaItem.objects.filter(project=world.demo.project).delete()
    world.demo.project.media_type = "videos"
    world.demo.project.save(update_fields=["media_type"])
    response = post_files(token_client(world.manager), media_url(world), [upload("a.png", png_bytes())])
    assert response.status_code == 400
    assert response.json()["refused"][0]["code"] == "wrong_media_type"
    assert stored(world) == 0


def test_it_takes_uploads_only_as_multipart(world: World) -> None:
    response = token_client(world.manager).post(media_url(world), {"file": "aGVsbG8="}, format="json")
    assert response.status_code == 415
    assert stored(world) == 1


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_uploads_below_manager(world: World, role: str) -> None:
    response = post_files(token_client(getattr(world, role)), media_url(world), [upload("a.png", png_bytes())])
    assert response.status_code == 403
    assert stored(world) == 1


def test_it_answers_404_to_uploads_into_another_organisations_project(world: World) -> None:
    url = api_url("api_media_list", org_slug="other-lab", project_id=world.demo.project.pk)
    response = post_files(token_client(world.outsider), url, [upload("a.png", png_bytes())])
    assert response.status_code == 404
    assert stored(world) == 1


def make_items(world: World, count: int) -> list[MediaItem]:
    from tests.factories import make_image

    return [make_image(world.demo.project, name=f"extra{n}.png") for n in range(count)]


def test_it_filters_the_list(world: World) -> None:
    pool_item, done_item = make_items(world, 2)
    done_item.done_at = timezone.now()
    done_item.save(update_fields=["done_at"])
    Annotation.objects.create(media=pool_item, label=world.demo.label)
    client = token_client(world.manager)

    def ids(**filters: str) -> list[int]:
        response = client.get(media_url(world), filters)
        assert response.status_code == 200
        return [item["id"] for item in response.json()["results"]]

    everything = [world.demo.media.pk, pool_item.pk, done_item.pk]
    assert ids() == everything
    assert ids(done="yes") == [done_item.pk]
    assert ids(done="no") == [world.demo.media.pk, pool_item.pk]
    assert ids(label=str(world.demo.label.pk)) == [world.demo.media.pk, pool_item.pk]  # the fixture's box
    assert ids(task=str(world.demo.task.pk)) == [world.demo.media.pk]
    assert ids(task="none") == [pool_item.pk, done_item.pk]
    assert ids(assignee=str(world.annotator.pk)) == [world.demo.media.pk]
    assert ids(assignee="none") == [pool_item.pk, done_item.pk]
    assert ids(done="maybe") == everything


def test_it_shows_an_annotator_only_their_tasks_items(world: World) -> None:
    [pool_item] = make_items(world, 1)
    other_task = Task.objects.create(project=world.demo.project, name="Task 2", assignee=world.reviewer)
    [others_item] = make_items(world, 1)
    others_item.task = other_task
    others_item.save(update_fields=["task"])

    annotator = token_client(world.annotator)
    listed = [item["id"] for item in annotator.get(media_url(world)).json()["results"]]
    assert listed == [world.demo.media.pk]
    assert annotator.get(api_url("api_media_detail", media_id=world.demo.media.pk)).status_code == 200
    for item in (pool_item, others_item):
        assert annotator.get(api_url("api_media_detail", media_id=item.pk)).status_code == 404

    reviewer = token_client(world.reviewer)
    listed = [item["id"] for item in reviewer.get(media_url(world)).json()["results"]]
    assert listed == [world.demo.media.pk, pool_item.pk, others_item.pk]
    assert reviewer.get(api_url("api_media_detail", media_id=pool_item.pk)).status_code == 200


@pytest.mark.parametrize("items", [1, 5])
def test_it_lists_media_in_a_fixed_number_of_queries(world: World, django_assert_num_queries: Any, items: int) -> None:
    make_items(world, items - 1)
    client = token_client(world.manager)
    # token + membership, project, then the page's count and its rows
    with django_assert_num_queries(5):
        response = client.get(media_url(world))
    assert len(response.json()["results"]) == items


def test_it_describes_one_item(world: World) -> None:
    world.demo.media.answers = {"1": "yes"}
    world.demo.media.done_at = timezone.now()
    world.demo.media.save(update_fields=["answers", "done_at"])
    response = token_client(world.annotator).get(api_url("api_media_detail", media_id=world.demo.media.pk))
    body = response.json()
    assert set(body) == MEDIA_FIELDS
    assert (body["task"], body["done"], body["answers"]) == (world.demo.task.pk, True, {"1": "yes"})
    assert (body["width"], body["height"], body["content_type"]) == (64, 48, "image/png")


def test_it_deletes_an_item_with_its_files_and_annotations(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    files = [world.demo.media.file.name, world.demo.media.thumbnail.name]
    annotation = Annotation.objects.create(media=world.demo.media, label=world.demo.label)
    with django_capture_on_commit_callbacks(execute=True):
        response = token_client(world.manager).delete(api_url("api_media_detail", media_id=world.demo.media.pk))
    assert response.status_code == 204
    assert not MediaItem.objects.filter(pk=world.demo.media.pk).exists()
    assert not Annotation.objects.filter(pk=annotation.pk).exists()
    assert all(name and not default_storage.exists(name) for name in files)


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_deletion_below_manager(world: World, role: str) -> None:
    response = token_client(getattr(world, role)).delete(api_url("api_media_detail", media_id=world.demo.media.pk))
    assert response.status_code == 403
    assert MediaItem.objects.filter(pk=world.demo.media.pk).exists()


def test_it_answers_404_for_another_organisations_item(world: World) -> None:
    client = token_client(world.outsider)
    url = api_url("api_media_detail", org_slug="other-lab", media_id=world.demo.media.pk)
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    assert MediaItem.objects.filter(pk=world.demo.media.pk).exists()
