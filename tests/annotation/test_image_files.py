"""Uploaded images: a bad file is refused with a clear error code and nothing is stored; a good one is
stored under a tenant-scoped random name, upright, and (when already upright) byte for byte."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pytest_django import Settings

from annotation.models import MediaItem
from annotation.services import media_create_image
from tests.conftest import World
from tests.factories import png_bytes

ORIENTATION = 0x0112


def noise(width: int, height: int) -> Image.Image:
    # Pixel data that does not compress away, so cutting a file in half cuts the pixel data.
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def noisy_png(width: int = 128, height: int = 96) -> bytes:
    """Not what Pillow would write by default (fast compression, a text chunk): re-encoding changes the bytes."""
    info = PngInfo()
    info.add_text("Comment", "uploaded as is")
    buffer = io.BytesIO()
    noise(width, height).save(buffer, format="PNG", compress_level=1, pnginfo=info)
    return buffer.getvalue()


def noisy_jpeg(width: int = 128, height: int = 96) -> bytes:
    buffer = io.BytesIO()
    noise(width, height).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def gif_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buffer, format="GIF")
    return buffer.getvalue()


def sideways_jpeg() -> bytes:
    """40×20 as encoded, EXIF orientation 6 (display rotated 90° clockwise): left half red, right half blue."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def read_stored(item: MediaItem) -> bytes:
    with default_storage.open(item.file.name, "rb") as handle:
        return handle.read()


def assert_refused(world: World, data: bytes, code: str, name: str = "photo.png") -> None:
    count = MediaItem.objects.count()
    files = stored_files()
    with pytest.raises(ValidationError) as caught:
        media_create_image(project=world.demo.project, name=name, data=data)
    assert caught.value.code == code, caught.value
    assert caught.value.messages and all(caught.value.messages)
    assert MediaItem.objects.count() == count
    assert stored_files() == files


def test_it_sees_the_world_media_in_the_local_storage_it_lists(world: World) -> None:
    # Guards the helpers above: if stored_files() looked in the wrong folder, "nothing new" would be vacuous.
    assert world.demo.media.file.name in stored_files()


def test_it_refuses_an_empty_file(world: World) -> None:
    assert_refused(world, b"", "empty")


def test_it_refuses_bytes_that_are_not_an_image(world: World) -> None:
    assert_refused(world, b"hello", "not_an_image")


@pytest.mark.parametrize("make", [noisy_png, noisy_jpeg], ids=["png", "jpeg"])
def test_it_refuses_a_truncated_image(world: World, make: Callable[[], bytes]) -> None:
    data = make()
    assert_refused(world, data[: len(data) // 2], "damaged")


def test_it_refuses_a_gif(world: World) -> None:
    assert_refused(world, gif_bytes(), "unsupported_format", name="anim.gif")


def test_it_refuses_an_image_over_the_pixel_limit(world: World, settings: Settings) -> None:
    settings.MAX_IMAGE_PIXELS = 20 * 20 - 1
    assert_refused(world, png_bytes(20, 20), "too_many_pixels")


def test_it_refuses_a_decompression_bomb_before_decoding_it(world: World, settings: Settings) -> None:
    # Far past the limit, Pillow itself refuses while opening: still the same clear error.
    from PIL import Image

    original = Image.MAX_IMAGE_PIXELS
    assert original == settings.MAX_IMAGE_PIXELS  # the annotation app ties Pillow's limit to the setting
    settings.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS = 20 * 20
    try:
        assert_refused(world, png_bytes(100, 100), "too_many_pixels")
    finally:
        Image.MAX_IMAGE_PIXELS = original


def test_it_accepts_an_image_exactly_at_the_pixel_limit(world: World, settings: Settings) -> None:
    settings.MAX_IMAGE_PIXELS = 20 * 20
    item = media_create_image(project=world.demo.project, name="photo.png", data=png_bytes(20, 20))
    assert (item.width, item.height) == (20, 20)


def test_it_refuses_a_file_over_the_upload_limit(world: World, settings: Settings) -> None:
    data = noisy_png()
    settings.MAX_UPLOAD_BYTES = len(data) - 1
    assert_refused(world, data, "too_large")


def test_it_stores_an_exif_rotated_jpeg_upright(world: World) -> None:
    item = media_create_image(project=world.demo.project, name="phone.jpg", data=sideways_jpeg())
    item.refresh_from_db()
    assert (item.width, item.height) == (20, 40)
    assert item.content_type == "image/jpeg"
    data = read_stored(item)
    assert item.size_bytes == len(data)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.format == "JPEG"
        assert stored.size == (20, 40)
        assert ORIENTATION not in stored.getexif()
        # Turned clockwise: the encoded left half (red) is now on top, the right half (blue) below.
        red, _, blue = stored.convert("RGB").getpixel((10, 5))
        assert red > 200 and blue < 60
        red, _, blue = stored.convert("RGB").getpixel((10, 35))
        assert blue > 200 and red < 60


def test_it_keeps_an_upright_png_byte_for_byte(world: World) -> None:
    data = noisy_png(50, 30)
    item = media_create_image(project=world.demo.project, name="scan.png", data=data)
    item.refresh_from_db()
    assert read_stored(item) == data
    assert (item.width, item.height) == (50, 30)
    assert item.content_type == "image/png"
    assert item.size_bytes == len(data)


def test_it_names_the_stored_file_by_tenant_and_not_by_the_upload_name(world: World) -> None:
    org, project = world.demo.org, world.demo.project
    item = media_create_image(project=project, name="Holiday Secret Name.PNG", data=png_bytes())
    assert item.file.name.startswith(f"org-{org.pk}/project-{project.pk}/")
    assert item.file.name.endswith(".png")
    assert "holiday" not in item.file.name.lower()
    assert "secret" not in item.file.name.lower()
    assert item.original_name == "Holiday Secret Name.PNG"
    assert item.file.name in stored_files()


def sideways(fmt: str, **save: object) -> bytes:
    """40×20 as encoded with orientation 6: left half red, right half blue."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    buffer = io.BytesIO()
    if fmt == "TIFF":
        image.save(buffer, format="TIFF", tiffinfo={ORIENTATION: 6}, **save)
    else:
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        image.save(buffer, format=fmt, exif=exif.tobytes(), **save)
    return buffer.getvalue()


def test_it_stores_an_exif_rotated_tiff_upright_without_the_tag(world: World) -> None:
    item = media_create_image(project=world.demo.project, name="scan.tif", data=sideways("TIFF"))
    assert (item.width, item.height) == (20, 40)
    with Image.open(io.BytesIO(read_stored(item))) as stored:
        assert stored.size == (20, 40)
        assert ORIENTATION not in stored.getexif()
        red, _, blue = stored.convert("RGB").getpixel((10, 5))
        assert red > 200 and blue < 60  # turned once, not twice


def mpo_bytes() -> bytes:
    buffer = io.BytesIO()
    first = Image.new("RGB", (30, 10), (255, 0, 0))
    first.save(buffer, format="MPO", save_all=True, append_images=[Image.new("RGB", (30, 10), (0, 0, 255))])
    return buffer.getvalue()


def test_it_accepts_a_phone_mpo_as_the_jpeg_it_starts_with(world: World) -> None:
    data = mpo_bytes()
    with Image.open(io.BytesIO(data)) as probe:
        assert (probe.format, probe.n_frames) == ("MPO", 2)
    item = media_create_image(project=world.demo.project, name="IMG_0001.JPG", data=data)
    assert (item.content_type, item.width, item.height) == ("image/jpeg", 30, 10)
    assert item.file.name.endswith(".jpg")
    assert read_stored(item) == data


def multipage_tiff() -> bytes:
    buffer = io.BytesIO()
    pages = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    pages[0].save(buffer, format="TIFF", save_all=True, append_images=pages[1:])
    return buffer.getvalue()


def animated_png() -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize("make", [multipage_tiff, animated_png], ids=["multi-page-tiff", "animated-png"])
def test_it_refuses_multi_frame_images(world: World, make: Callable[[], bytes]) -> None:
    assert_refused(world, make(), "multi_frame")
