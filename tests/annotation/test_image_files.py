"""Uploaded images: every bad file is refused with a clear error code and nothing is stored; every
good one is decoded and written anew (nothing appended or hidden survives), upright, in a format a
browser shows; peak memory stays bounded for a 100-megapixel photograph."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo
from pytest_django import Settings

from annotation.image_files import normalise_image
from annotation.media_services import media_create_image
from annotation.models import MediaItem
from tests.conftest import World
from tests.factories import png_bytes

ORIENTATION = 0x0112
REPO = Path(__file__).resolve().parents[2]


def noise(width: int, height: int) -> Image.Image:
    # Pixel data that does not compress away, so cutting a file in half cuts the pixel data.
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def noisy_png(width: int = 128, height: int = 96) -> bytes:
    """Not what Pillow would write by default (fast compression, a text chunk): re-encoding changes the bytes."""
    info = PngInfo()
    info.add_text("Comment", "uploaded as is")
    return encoded(noise(width, height), "PNG", compress_level=1, pnginfo=info)


def noisy_jpeg(width: int = 128, height: int = 96) -> bytes:
    return encoded(noise(width, height), "JPEG", quality=90)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def forged_png(width: int, height: int, rows: int, row_bytes: int) -> bytes:
    """An RGB PNG whose header declares width×height, holding ``rows`` rows of ``row_bytes`` pixel bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + bytes([7]) * row_bytes for _ in range(rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(pixels))
        + png_chunk(b"IEND", b"")
    )


def frames(fmt: str, count: int = 2, **options: object) -> bytes:
    images = [Image.new("RGB", (10, 10), (40 * i, 255 - 40 * i, 0)) for i in range(count)]
    return encoded(images[0], fmt, save_all=True, append_images=images[1:], **options)


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def read_stored(item: MediaItem) -> bytes:
    with default_storage.open(item.file.name, "rb") as handle:
        return handle.read()


def assert_refused(world: World, data: bytes, code: str, name: str = "photo.png") -> ValidationError:
    count = MediaItem.objects.count()
    files = stored_files()
    with pytest.raises(ValidationError) as caught:
        media_create_image(project=world.demo.project, name=name, data=data)
    assert caught.value.code == code, caught.value
    assert caught.value.messages and all(len(message) > 15 for message in caught.value.messages)
    assert MediaItem.objects.count() == count
    assert stored_files() == files
    return caught.value


def test_it_sees_the_world_media_in_the_local_storage_it_lists(world: World) -> None:
    # Guards the helpers above: if stored_files() looked in the wrong folder, "nothing new" would be vacuous.
    assert world.demo.media.file.name in stored_files()


# --- refusals -----------------------------------------------------------------------------------


def test_it_refuses_an_empty_file(world: World) -> None:
    assert_refused(world, b"", "empty")


def test_it_refuses_bytes_that_are_not_an_image(world: World) -> None:
    error = assert_refused(world, b"hello, this is a text file and no picture", "not_an_image")
    assert "JPEG, PNG" in error.messages[0]


def test_it_refuses_an_html_page_named_jpg(world: World) -> None:
    page = b"<!DOCTYPE html>\n<html><body><script>alert(document.cookie)</script></body></html>"
    error = assert_refused(world, page, "not_an_image", name="holiday.jpg")
    assert "HTML" in error.messages[0]


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="5" height="5"/></svg>',
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<!DOCTYPE svg><svg xmlns="http://www.w3.org/2000/svg"></svg>',
    ],
    ids=["bare", "xml-declaration"],
)
def test_it_refuses_an_svg_drawing(world: World, svg: bytes) -> None:
    error = assert_refused(world, svg, "unsupported_format", name="logo.png")
    assert "SVG" in error.messages[0]


@pytest.mark.parametrize("make", [noisy_png, noisy_jpeg], ids=["png", "jpeg"])
def test_it_refuses_a_truncated_image(world: World, make: Callable[[], bytes]) -> None:
    data = make()
    assert_refused(world, data[: len(data) // 2], "damaged")


def test_it_refuses_an_image_over_the_pixel_limit(world: World, settings: Settings) -> None:
    settings.MAX_IMAGE_PIXELS = 20 * 20 - 1
    error = assert_refused(world, png_bytes(20, 20), "too_many_pixels")
    assert "20×20" in error.messages[0]


def test_it_refuses_a_decompression_bomb_before_decoding_it(world: World, settings: Settings) -> None:
    # Far past the limit, Pillow itself refuses while opening: still the same clear error.
    original = Image.MAX_IMAGE_PIXELS
    assert original == settings.MAX_IMAGE_PIXELS  # the annotation app ties Pillow's limit to the setting
    settings.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS = 20 * 20
    try:
        assert_refused(world, png_bytes(100, 100), "too_many_pixels")
    finally:
        Image.MAX_IMAGE_PIXELS = original


def test_it_refuses_a_header_that_claims_100000_by_100000_pixels(world: World) -> None:
    # 10 gigapixels declared by a file of a few dozen bytes: refused from the header alone.
    data = forged_png(100_000, 100_000, rows=1, row_bytes=30)
    assert len(data) < 100
    assert_refused(world, data, "too_many_pixels")


def test_it_refuses_a_header_whose_pixel_data_is_far_too_small(world: World) -> None:
    # 9000×9000 is under the pixel limit, but 243 MB of pixels cannot deflate into a few bytes;
    # caught before Pillow would allocate the bitmap.
    data = forged_png(9000, 9000, rows=1, row_bytes=30)
    error = assert_refused(world, data, "size_mismatch")
    assert "9000×9000" in error.messages[0]


def jpeg_declaring(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A real 32×24 JPEG (behind 6 kB of EXIF) whose frame header is rewritten to declare width×height."""
    exif = Image.Exif()
    exif[0x010F] = "x" * 6000  # the frame header lies past the first 4 kB
    data = bytearray(encoded(noise(32, 24), "JPEG", quality=90, progressive=progressive, exif=exif.tobytes()))
    frame = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    assert frame > 6000
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_it_refuses_a_jpeg_header_that_declares_far_more_than_the_file_holds(world: World, progressive: bool) -> None:
    # 9000×9000 is under the pixel limit: the decoder would fill a 324 MB bitmap with one flat
    # colour, without an error. A few kB cannot hold one bit for each of its 8×8 blocks.
    data = jpeg_declaring(9000, 9000, progressive=progressive)
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.size == (9000, 9000)
    error = assert_refused(world, data, "size_mismatch", name="photo.jpg")
    assert "9000×9000" in error.messages[0]


def test_it_accepts_the_smallest_honest_jpeg_of_a_large_size(world: World) -> None:
    # One flat colour at the lowest quality spends two bits per 8×8 block: twice the floor checked.
    item = media_create_image(
        project=world.demo.project,
        name="flat.jpg",
        data=encoded(Image.new("L", (4000, 3000), 128), "JPEG", quality=1, optimize=True),
    )
    assert (item.width, item.height) == (4000, 3000)


def test_it_refuses_a_header_that_declares_less_than_the_data_holds(world: World) -> None:
    # 10×10 declared, 100×100 of pixel data: the decoder finds data past the image's end.
    assert_refused(world, forged_png(10, 10, rows=100, row_bytes=300), "damaged")


def test_it_refuses_a_file_over_the_upload_limit(world: World, settings: Settings) -> None:
    data = noisy_png()
    settings.MAX_UPLOAD_BYTES = len(data) - 1
    assert_refused(world, data, "too_large")


@pytest.mark.parametrize(
    "make",
    [
        lambda: frames("GIF"),
        lambda: frames("PNG"),
        lambda: frames("WEBP"),
        lambda: frames("TIFF"),
    ],
    ids=["animated-gif", "animated-png", "animated-webp", "multi-page-tiff"],
)
def test_it_refuses_multi_frame_images(world: World, make: Callable[[], bytes]) -> None:
    data = make()
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.n_frames == 2
    assert_refused(world, data, "multi_frame", name="animation.gif")


def test_it_refuses_formats_it_does_not_read(world: World) -> None:
    assert_refused(world, encoded(Image.new("RGB", (8, 8)), "PCX"), "not_an_image", name="old.pcx")


def test_it_refuses_a_project_that_takes_videos_only(world: World) -> None:
    project = world.demo.project
    project.media_type = project.MediaType.VIDEOS
    project.save(update_fields=["media_type"])
    assert_refused(world, png_bytes(), "wrong_media_type")


# --- re-encoding --------------------------------------------------------------------------------


def test_it_serves_a_png_with_an_html_page_appended_as_a_clean_png(world: World) -> None:
    page = b"<html><body><script>fetch('/steal?'+document.cookie)</script></body></html>"
    clean = noisy_png(40, 30)
    item = media_create_image(project=world.demo.project, name="polyglot.png", data=clean + page)
    stored = read_stored(item)
    for trace in (b"<script", b"<html", b"steal", b"cookie"):
        assert trace not in stored
    assert stored.endswith(png_chunk(b"IEND", b""))
    assert b"uploaded as is" not in stored  # the text chunk is gone too
    with Image.open(io.BytesIO(stored)) as image, Image.open(io.BytesIO(clean)) as original:
        assert image.format == "PNG"
        assert image.tobytes() == original.tobytes()  # lossless: the same pixels


def test_it_re_encodes_every_jpeg_without_its_metadata(world: World) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Secret Camera Maker"  # Make
    exif[0x8825] = {2: (52.0, 31.0, 12.0)}  # GPS latitude
    data = encoded(noise(64, 48), "JPEG", quality=95, exif=exif.tobytes(), comment=b"hidden note")
    item = media_create_image(project=world.demo.project, name="trip.jpg", data=data)
    stored = read_stored(item)
    assert stored != data
    assert b"Secret Camera Maker" not in stored and b"hidden note" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG"
        assert image.size == (64, 48)
        assert not image.getexif()
        assert "comment" not in image.info


def test_it_keeps_the_colour_profile(world: World) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    item = media_create_image(
        project=world.demo.project, name="p.jpg", data=encoded(noise(16, 16), "JPEG", icc_profile=icc)
    )
    with Image.open(io.BytesIO(read_stored(item))) as image:
        assert image.info.get("icc_profile") == icc
    with default_storage.open(item.thumbnail.name, "rb") as handle, Image.open(handle) as thumbnail:
        assert thumbnail.info.get("icc_profile") == icc  # the gallery shows the same colours


def srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
def test_it_drops_a_page_hidden_in_the_colour_profile(world: World, fmt: str) -> None:
    # JPEG and WebP carry the profile's bytes as they are: the page would be served back inside the image.
    page = b"<html><body><script>fetch('/steal?'+document.cookie)</script></body></html>"
    data = encoded(noise(16, 16), fmt, icc_profile=page)
    item = media_create_image(project=world.demo.project, name=f"p.{fmt.lower()}", data=data)
    stored = read_stored(item)
    assert b"<script" not in stored and b"cookie" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert "icc_profile" not in image.info


def test_it_drops_what_trails_a_colour_profile(world: World) -> None:
    icc = srgb_profile()
    data = encoded(noise(16, 16), "JPEG", icc_profile=icc + b"<script>alert(1)</script>")
    item = media_create_image(project=world.demo.project, name="p.jpg", data=data)
    stored = read_stored(item)
    assert b"<script" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.info.get("icc_profile") == icc


def test_it_drops_a_cmyk_profile_from_pixels_made_rgb(world: World) -> None:
    # The sRGB profile relabelled as describing CMYK: whatever it says about ink no longer fits
    # the RGB pixels stored, so it must not travel with them.
    icc = bytearray(srgb_profile())
    icc[16:20] = b"CMYK"
    data = encoded(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", icc_profile=bytes(icc))
    item = media_create_image(project=world.demo.project, name="print.jpg", data=data)
    with Image.open(io.BytesIO(read_stored(item))) as image:
        assert image.mode == "RGB"
        assert "icc_profile" not in image.info
        red, green, blue = image.getpixel((8, 8))
        assert red > 200 and green < 60 and blue < 60


def sideways(fmt: str, **save: object) -> bytes:
    """40×20 as encoded with orientation 6 (display rotated 90° clockwise): left half red, right half blue."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    if fmt == "TIFF":
        return encoded(image, "TIFF", tiffinfo={ORIENTATION: 6}, **save)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return encoded(image, fmt, exif=exif.tobytes(), **save)


@pytest.mark.parametrize(
    ("fmt", "name", "stored_format"),
    [
        ("JPEG", "phone.jpg", "JPEG"),
        ("PNG", "shot.png", "PNG"),
        ("TIFF", "scan.tif", "PNG"),
        ("WEBP", "w.webp", "WEBP"),
    ],
)
def test_it_stores_an_exif_rotated_image_upright_once(world: World, fmt: str, name: str, stored_format: str) -> None:
    item = media_create_image(project=world.demo.project, name=name, data=sideways(fmt, quality=95))
    item.refresh_from_db()
    assert (item.width, item.height) == (20, 40)
    data = read_stored(item)
    assert item.size_bytes == len(data)
    with Image.open(io.BytesIO(data)) as stored:
        assert stored.format == stored_format
        assert stored.size == (20, 40)
        assert ORIENTATION not in stored.getexif()
        # Turned clockwise, once: the encoded left half (red) is now on top, the right half (blue) below.
        red, _, blue = stored.convert("RGB").getpixel((10, 5))
        assert red > 200 and blue < 60
        red, _, blue = stored.convert("RGB").getpixel((10, 35))
        assert blue > 200 and red < 60


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: encoded(noise(30, 20), "TIFF"), "scan.tif"),
        (lambda: encoded(noise(30, 20), "BMP"), "paint.bmp"),
        (lambda: encoded(noise(30, 20).quantize(64), "GIF"), "still.gif"),
    ],
    ids=["tiff", "bmp", "single-frame-gif"],
)
def test_it_converts_what_browsers_cannot_show_to_png_without_loss(
    world: World, make: Callable[[], bytes], name: str
) -> None:
    data = make()
    item = media_create_image(project=world.demo.project, name=name, data=data)
    assert (item.content_type, item.width, item.height) == ("image/png", 30, 20)
    assert item.file.name.endswith(".png")
    with Image.open(io.BytesIO(read_stored(item))) as stored, Image.open(io.BytesIO(data)) as original:
        assert stored.format == "PNG"
        assert stored.convert("RGB").tobytes() == original.convert("RGB").tobytes()


def test_it_keeps_a_gif_transparency(world: World) -> None:
    image = Image.new("P", (10, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    item = media_create_image(project=world.demo.project, name="t.gif", data=encoded(image, "GIF", transparency=0))
    with Image.open(io.BytesIO(read_stored(item))) as stored:
        rgba = stored.convert("RGBA")
        assert rgba.getpixel((0, 0))[3] == 0
        assert rgba.getpixel((5, 5)) == (255, 0, 0, 255)


@pytest.mark.parametrize("lossless", [True, False], ids=["lossless", "lossy"])
def test_it_keeps_webp_as_webp_and_lossless_as_lossless(world: World, lossless: bool) -> None:
    source = noise(24, 16).convert("RGBA")
    item = media_create_image(
        project=world.demo.project, name="w.webp", data=encoded(source, "WEBP", lossless=lossless, quality=90)
    )
    assert item.content_type == "image/webp"
    stored = read_stored(item)
    chunk = stored[12:16]
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "WEBP"
        if lossless:
            assert chunk == b"VP8L"
            assert image.convert("RGBA").tobytes() == source.tobytes()
        else:
            assert b"VP8L" not in stored


def test_it_stores_a_pillow_png_it_would_write_the_same_way_byte_for_byte(world: World) -> None:
    # Re-encoding is deterministic: a file already in the stored form comes back unchanged.
    data = png_bytes(33, 21)
    item = media_create_image(project=world.demo.project, name="plain.png", data=data)
    assert read_stored(item) == data


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
    with Image.open(io.BytesIO(read_stored(item))) as stored:
        assert stored.format == "JPEG"  # one frame: the depth map / preview is gone
        red, _, blue = stored.getpixel((15, 5))
        assert red > 200 and blue < 60


def test_it_reads_a_path_and_an_open_file_like_bytes(tmp_path: Path) -> None:
    data = noisy_jpeg(50, 40)
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    from_bytes = normalise_image(data)
    with open(path, "rb") as handle:
        from_file = normalise_image(handle)
    from_path = normalise_image(path)
    assert from_bytes == from_file == from_path
    assert (from_path.width, from_path.height, from_path.content_type) == (50, 40, "image/jpeg")


# --- memory -------------------------------------------------------------------------------------

MEMORY_PROBE = """
import sys
from pathlib import Path
from django.conf import settings
settings.configure(MAX_UPLOAD_BYTES=50 * 1024 * 1024, MAX_IMAGE_PIXELS=100_000_000)
from annotation.image_files import normalise_image

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

before = status("VmRSS:")
result = normalise_image(Path(sys.argv[1]))
print(status("VmHWM:") - before, result.width, result.height, len(result.data), len(result.thumbnail))
"""

MAKE_PHOTO = """
import sys
from PIL import Image, ImageDraw
image = Image.linear_gradient("L").resize((10_000, 10_000)).convert("RGB")
draw = ImageDraw.Draw(image)
for i in range(40):
    draw.ellipse((i * 230, i * 170, i * 230 + 2500, i * 170 + 1800), fill=(i * 6, 255 - i * 6, 90))
upright, sideways = Image.Exif(), Image.Exif()
sideways[0x0112] = 6
image.save(sys.argv[1], "JPEG", quality=90, exif=upright.tobytes())
image.save(sys.argv[2], "JPEG", quality=90, exif=sideways.tobytes())
"""


@pytest.fixture(scope="module")
def photos_100mp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("100mp")
    paths = {"upright": folder / "upright.jpg", "rotated": folder / "rotated.jpg"}
    # Made in a child process so this one does not grow by the bitmap.
    subprocess.run([sys.executable, "-c", MAKE_PHOTO, *map(str, paths.values())], check=True, timeout=300)
    return paths


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak memory from /proc (Linux)")
@pytest.mark.parametrize(("orientation", "bound"), [("upright", 1.5), ("rotated", 2.5)])
def test_it_keeps_peak_memory_bounded_for_a_100_megapixel_photo(
    photos_100mp: dict[str, Path], orientation: str, bound: float
) -> None:
    """Peak resident memory added by checking, decoding, re-encoding and thumbnailing a 10000×10000
    JPEG, measured in a fresh process (Pillow's bitmaps are C allocations tracemalloc cannot see).

    Pillow holds RGB as 4 bytes a pixel, so the decoded bitmap is 400 MB. An upright photo needs
    that one bitmap plus the encoder's buffers and the output bytes: under 1.5 bitmaps. An EXIF
    rotation needs a source and a destination bitmap at once (then frees the source): under 2.5.
    A second decode, a copy for the thumbnail or the file held as bytes would break either bound.
    """
    path = photos_100mp[orientation]
    assert path.stat().st_size < 50 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    peak, width, height, size, thumbnail = map(int, result.stdout.split())
    bitmap = 10_000 * 10_000 * 4
    assert (width, height) == (10_000, 10_000)
    assert size > 0 and thumbnail > 0
    assert peak < bound * bitmap, f"peak {peak / 1e6:.0f} MB for a {bitmap / 1e6:.0f} MB bitmap"
    # And it did decode the whole image: the bound is not met by skipping the work.
    assert peak > 0.9 * bitmap


def test_it_makes_the_thumbnail_from_the_upright_pixels(world: World) -> None:
    image = Image.new("RGB", (1000, 500), (0, 0, 255))
    ImageDraw.Draw(image).rectangle((0, 0, 499, 499), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    item = media_create_image(
        project=world.demo.project, name="t.jpg", data=encoded(image, "JPEG", exif=exif.tobytes())
    )
    with default_storage.open(item.thumbnail.name, "rb") as handle, Image.open(handle) as thumb:
        assert thumb.size == (160, 320)
        red, _, blue = thumb.convert("RGB").getpixel((80, 60))
        assert red > 200 and blue < 60
