"""Storing an upload: the normalised file and its WebP thumbnail land under the tenant's random
names, both go when the item goes, and an item stored before thumbnails gets one on demand."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from PIL import Image

from annotation.image_files import THUMBNAIL_SIZE
from annotation.media_services import media_create_image, media_thumbnail_ensure
from annotation.models import MediaItem
from tests.conftest import World
from tests.factories import png_bytes


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def open_stored(name: str) -> Image.Image:
    with default_storage.open(name, "rb") as handle:
        image = Image.open(io.BytesIO(handle.read()))
    image.load()
    return image


def jpeg_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_it_stores_a_webp_thumbnail_beside_the_file(world: World) -> None:
    org, project = world.demo.org, world.demo.project
    item = media_create_image(project=project, name="wide.jpg", data=jpeg_bytes(1600, 900))
    assert item.thumbnail.name.startswith(f"org-{org.pk}/project-{project.pk}/")
    assert item.thumbnail.name.endswith(".webp")
    assert {item.file.name, item.thumbnail.name} <= stored_files()
    thumbnail = open_stored(item.thumbnail.name)
    assert thumbnail.format == "WEBP"
    assert thumbnail.size == (THUMBNAIL_SIZE, 180)
    assert default_storage.size(item.thumbnail.name) < default_storage.size(item.file.name) / 4


def test_it_never_enlarges_a_small_image_for_its_thumbnail(world: World) -> None:
    item = media_create_image(project=world.demo.project, name="tiny.png", data=png_bytes(40, 30))
    thumbnail = open_stored(item.thumbnail.name)
    assert (thumbnail.format, thumbnail.size) == ("WEBP", (40, 30))


def test_it_keeps_transparency_in_the_thumbnail(world: World) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (800, 400), (255, 0, 0, 0)).save(buffer, format="PNG")
    item = media_create_image(project=world.demo.project, name="clear.png", data=buffer.getvalue())
    thumbnail = open_stored(item.thumbnail.name)
    assert thumbnail.mode == "RGBA"
    assert thumbnail.getpixel((10, 10))[3] == 0


def test_it_names_the_stored_files_by_tenant_and_not_by_the_upload_name(world: World) -> None:
    org, project = world.demo.org, world.demo.project
    item = media_create_image(project=project, name="Holiday Secret Name.PNG", data=png_bytes())
    for name in (item.file.name, item.thumbnail.name):
        assert name.startswith(f"org-{org.pk}/project-{project.pk}/")
        assert "holiday" not in name.lower() and "secret" not in name.lower()
    assert item.original_name == "Holiday Secret Name.PNG"


def test_it_takes_an_uploaded_file_as_django_hands_it_over(world: World) -> None:
    data = jpeg_bytes(64, 48)
    in_memory = SimpleUploadedFile("a.jpg", data, content_type="text/html")  # the claimed type is ignored
    on_disk = TemporaryUploadedFile("b.jpg", "image/jpeg", len(data), None)
    on_disk.write(data)
    on_disk.seek(0)
    try:
        first = media_create_image(project=world.demo.project, name="a.jpg", data=in_memory)
        second = media_create_image(project=world.demo.project, name="b.jpg", data=on_disk)
    finally:
        on_disk.close()
    for item in (first, second):
        assert (item.content_type, item.width, item.height) == ("image/jpeg", 64, 48)


def test_it_leaves_no_file_behind_when_the_row_cannot_be_saved(world: World, monkeypatch: Any) -> None:
    before = stored_files()
    count = MediaItem.objects.count()

    def refuse(self: MediaItem, *args: Any, **kwargs: Any) -> None:
        raise ValidationError("refused by the model", code="invalid")

    monkeypatch.setattr(MediaItem, "full_clean", refuse)
    with pytest.raises(ValidationError):
        media_create_image(project=world.demo.project, name="a.png", data=png_bytes())
    assert stored_files() == before
    assert MediaItem.objects.count() == count


def test_it_removes_file_and_thumbnail_when_the_item_is_deleted(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    item = media_create_image(project=world.demo.project, name="a.png", data=png_bytes())
    names = {item.file.name, item.thumbnail.name}
    assert names <= stored_files()
    with django_capture_on_commit_callbacks(execute=True):
        item.delete()
    assert not names & stored_files()


def test_it_makes_a_missing_thumbnail_once_for_an_old_item(world: World) -> None:
    item = world.demo.media
    default_storage.delete(item.thumbnail.name)
    MediaItem.objects.filter(pk=item.pk).update(thumbnail="")
    item.refresh_from_db()
    before = stored_files()

    assert media_thumbnail_ensure(item=item) is True
    item.refresh_from_db()
    assert item.thumbnail.name in stored_files() - before
    assert open_stored(item.thumbnail.name).size == (item.width, item.height)  # 64×48: not enlarged
    assert media_thumbnail_ensure(item=item) is True
    assert stored_files() - before == {item.thumbnail.name}  # the second call made nothing


def test_it_drops_its_own_thumbnail_when_another_request_made_one_first(world: World) -> None:
    item = world.demo.media
    MediaItem.objects.filter(pk=item.pk).update(thumbnail="")
    stale = MediaItem.objects.get(pk=item.pk)  # read before the other request finished
    MediaItem.objects.filter(pk=item.pk).update(thumbnail=item.thumbnail.name)
    before = stored_files()
    assert media_thumbnail_ensure(item=stale) is True
    assert stale.thumbnail.name == item.thumbnail.name
    assert stored_files() == before


def test_it_reports_no_thumbnail_for_a_file_that_cannot_be_read(world: World) -> None:
    item = world.demo.media
    default_storage.delete(item.file.name)
    MediaItem.objects.filter(pk=item.pk).update(thumbnail="")
    item.refresh_from_db()
    assert media_thumbnail_ensure(item=item) is False
    item.refresh_from_db()
    assert not item.thumbnail
