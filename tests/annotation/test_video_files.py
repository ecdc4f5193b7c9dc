"""Checking and decoding video files (annotation.video_files): containers sniffed from the bytes,
the limits, damaged and audio-only files refused with a reason, frames decoded upright as JPEG with
their times, and the demo clip. Clips are made here with PyAV: tiny (64 × 48, a few frames)."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from django.core.exceptions import ValidationError
from PIL import Image
from pytest_django import Settings

from annotation.video_files import (
    check_container,
    extract_frames,
    is_video_name,
    looks_like_video,
    make_demo_clip,
    probe_video,
    sniff_container,
)
from tests.factories import png_bytes

WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 5, 12


def clip_frame(index: int, frames: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame ``index``: a grey bar that widens with the index, and a red block in the top-left corner."""
    array = np.full((height, width, 3), 20, np.uint8)
    array[:, : (index + 1) * width // frames] = 200
    array[: height // 3, : width // 4] = (255, 0, 0)
    return array


def make_clip(
    *,
    fmt: str = "mp4",
    codec: str = "libx264",
    frames: int = FRAMES,
    width: int = WIDTH,
    height: int = HEIGHT,
    fps: int = FPS,
    rotation: int | None = None,
    audio: bool = False,
    video: bool = True,
) -> bytes:
    """A real clip encoded by FFmpeg: ``fmt`` is the muxer (mp4, mov, webm, matroska)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as clip:
        stream = sound = None
        if video:
            stream = clip.add_stream(codec, rate=Fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if rotation is not None:
                stream.set_display_rotation(rotation)
        if audio:
            sound = clip.add_stream("aac" if fmt in ("mp4", "mov") else "libopus", rate=48000)
        for index in range(frames if stream else 0):
            frame = av.VideoFrame.from_ndarray(clip_frame(index, frames, width, height), format="rgb24")
            clip.mux(stream.encode(frame))
        if stream:
            clip.mux(stream.encode())
        if sound:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="fltp", layout="mono")
            samples.sample_rate = 48000
            clip.mux(sound.encode(samples))
            clip.mux(sound.encode())
    return out.getvalue()


def decode_jpeg(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.convert("RGB")


def refused(source: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        probe_video(source)
    return caught.value


def collect(source: Any) -> tuple[Any, list[tuple[int, bytes, float]]]:
    written: list[tuple[int, bytes, float]] = []
    result = extract_frames(source, lambda index, jpeg, seconds: written.append((index, jpeg, seconds)))
    return result, written


# --- sniffing and probing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "codec", "content_type", "extension"),
    [
        ("mp4", "libx264", "video/mp4", ".mp4"),
        ("mov", "libx264", "video/quicktime", ".mov"),
        ("webm", "libvpx-vp9", "video/webm", ".webm"),
        ("matroska", "libx264", "video/x-matroska", ".mkv"),
        ("mp4", "mpeg4", "video/mp4", ".mp4"),
    ],
)
def test_it_probes_each_container(fmt: str, codec: str, content_type: str, extension: str) -> None:
    probe = probe_video(make_clip(fmt=fmt, codec=codec))
    assert (probe.container.content_type, probe.container.extension) == (content_type, extension)
    assert (probe.width, probe.height, probe.frame_count) == (WIDTH, HEIGHT, FRAMES)
    assert probe.fps == pytest.approx(FPS)
    assert probe.duration_s == pytest.approx(FRAMES / FPS, abs=0.01)
    with Image.open(io.BytesIO(probe.thumbnail)) as thumbnail:
        assert (thumbnail.format, thumbnail.size) == ("WEBP", (WIDTH, HEIGHT))


def test_it_counts_the_frames_of_a_webm_from_its_packets() -> None:
    data = make_clip(fmt="webm", codec="libvpx-vp9", frames=7)
    with av.open(io.BytesIO(data)) as clip:
        assert clip.streams.video[0].frames == 0  # the container does not say
    assert probe_video(data).frame_count == 7


def test_it_reads_a_path_and_an_open_file(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(make_clip())
    assert probe_video(path).frame_count == FRAMES
    with open(path, "rb") as handle:
        assert probe_video(handle).frame_count == FRAMES


def test_it_sniffs_containers_from_bytes_not_names() -> None:
    assert sniff_container(make_clip()[:64]) is not None
    assert sniff_container(make_clip(fmt="webm", codec="libvpx-vp9")[:64]) is not None
    assert sniff_container(png_bytes()[:64]) is None
    assert looks_like_video(make_clip()) and not looks_like_video(png_bytes())
    assert is_video_name("Clip.MP4") and is_video_name("a.webm") and not is_video_name("a.png")


# --- refusals ------------------------------------------------------------------------------------


def truncated_mp4() -> bytes:
    data = make_clip(frames=12)
    return data[: len(data) // 2]


def test_it_refuses_a_png_named_like_a_video() -> None:
    error = refused(png_bytes())
    assert error.code == "not_a_video"
    assert "not a video" in error.messages[0] and "PNG image" in error.messages[0]


def test_it_refuses_random_bytes() -> None:
    error = refused(np.random.default_rng(1).bytes(4096))
    assert error.code == "not_a_video"
    assert "MP4, MOV, WebM or Matroska" in error.messages[0]


def test_it_refuses_a_truncated_mp4() -> None:
    error = refused(truncated_mp4())
    assert (error.code, error.messages) == (
        "damaged",
        ["The video file is damaged or truncated: its headers cannot be read."],
    )


def test_it_refuses_a_forged_header_over_garbage() -> None:
    error = refused(b"\x00\x00\x00\x18ftypisom" + np.random.default_rng(2).bytes(3000))
    assert error.code == "damaged"


def test_it_refuses_an_mp4_with_only_sound() -> None:
    data = make_clip(audio=True, video=False)
    with av.open(io.BytesIO(data)) as clip:
        assert len(clip.streams.audio) == 1  # a real file, just without pictures
    error = refused(data)
    assert error.code == "no_video_stream"
    assert "no video stream" in error.messages[0]


def test_it_accepts_a_video_with_sound() -> None:
    assert probe_video(make_clip(audio=True)).frame_count == FRAMES


def test_it_refuses_an_empty_file() -> None:
    assert refused(b"").code == "empty"
    with pytest.raises(ValidationError) as caught:
        check_container(b"")
    assert caught.value.code == "empty"


def test_it_refuses_too_many_frames(settings: Settings) -> None:
    settings.VIDEO_MAX_FRAMES = FRAMES - 1
    error = refused(make_clip())
    assert (error.code, error.messages) == (
        "too_many_frames",
        [f"The video has {FRAMES} frames; the limit is 4 frames."],
    )


def test_it_refuses_too_many_frames_counted_from_packets(settings: Settings) -> None:
    settings.VIDEO_MAX_FRAMES = 3
    assert refused(make_clip(fmt="webm", codec="libvpx-vp9")).code == "too_many_frames"


def test_it_refuses_a_clip_too_long(settings: Settings) -> None:
    settings.VIDEO_MAX_SECONDS = 1
    error = refused(make_clip(frames=24, fps=12))
    assert error.code == "too_long"
    assert "lasts 2.0 seconds; the limit is 1 seconds" in error.messages[0]


def test_it_refuses_a_file_too_big_before_decoding(settings: Settings) -> None:
    data = make_clip()
    settings.VIDEO_MAX_BYTES = len(data) - 1
    error = refused(data)
    assert error.code == "too_large"
    assert f"{len(data)} bytes; the limit is {len(data) - 1} bytes" in error.messages[0]
    # Before decoding: the same verdict for bytes that would not even open.
    assert refused(b"\x00" * len(data)).code == "too_large"


def test_it_refuses_frames_over_the_pixel_limit(settings: Settings) -> None:
    settings.MAX_IMAGE_PIXELS = WIDTH * HEIGHT - 1
    error = refused(make_clip())
    assert error.code == "too_many_pixels"
    assert "64×48" in error.messages[0]


# --- extraction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "libx264"), ("webm", "libvpx-vp9")])
def test_it_extracts_every_frame_as_jpeg_with_its_time(fmt: str, codec: str) -> None:
    result, written = collect(make_clip(fmt=fmt, codec=codec))
    assert [index for index, _, _ in written] == list(range(FRAMES))
    assert (result.frame_count, result.width, result.height) == (FRAMES, WIDTH, HEIGHT)
    assert result.fps == pytest.approx(FPS)
    assert result.times == pytest.approx([n / FPS for n in range(FRAMES)], abs=0.002)
    images = [decode_jpeg(jpeg) for _, jpeg, _ in written]
    assert all(image.size == (WIDTH, HEIGHT) for image in images)
    # Each frame is its own picture: the grey bar widens frame by frame.
    brightness = [float(np.asarray(image).mean()) for image in images]
    assert brightness == sorted(brightness) and brightness[0] + 40 < brightness[-1]
    # Close to what was encoded (lossy twice: the codec, then JPEG at quality 90).
    for index, image in enumerate(images):
        difference = np.abs(np.asarray(image).astype(int) - clip_frame(index).astype(int))
        assert difference.mean() < 8


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_it_turns_rotated_frames_upright_as_opencv_does(tmp_path: Path, rotation: int) -> None:
    data = make_clip(rotation=rotation)
    probe = probe_video(data)
    _, written = collect(data)
    ours = np.asarray(decode_jpeg(written[0][1]))
    # OpenCV's FFmpeg reader applies the display rotation itself: an independent reference.
    path = tmp_path / "rotated.mp4"
    path.write_bytes(data)
    capture = cv2.VideoCapture(str(path))
    ok, reference = capture.read()
    capture.release()
    assert ok
    reference = cv2.cvtColor(reference, cv2.COLOR_BGR2RGB)
    assert ours.shape == reference.shape
    assert (probe.width, probe.height) == (ours.shape[1], ours.shape[0])
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 8


def corrupt_pictures(data: bytes) -> bytes:
    """The clip with bytes of its last pictures overwritten (in the ``mdat`` box, past the first
    key frame); its headers (the ``moov`` box, after the pictures) stay whole."""
    start = data.index(b"mdat") + 4
    end = data.index(b"moov")
    at = start + (end - start) * 3 // 4
    noise = np.random.default_rng(7).bytes(100)
    return data[:at] + noise + data[at + len(noise) :]


def test_it_stops_on_a_frame_that_does_not_decode() -> None:
    data = corrupt_pictures(make_clip(frames=12, width=160, height=120))
    assert probe_video(data).frame_count == 12  # the headers are whole: the checks pass
    written: list[int] = []
    with pytest.raises(ValidationError) as caught:
        extract_frames(data, lambda index, jpeg, seconds: written.append(index))
    assert caught.value.code == "damaged"
    assert caught.value.messages == [f"The video is damaged: decoding stopped at frame {len(written)}."]
    assert 0 < len(written) < 12


def test_it_refuses_more_frames_than_the_limit_while_decoding(settings: Settings) -> None:
    data = make_clip()
    settings.VIDEO_MAX_FRAMES = 3
    with pytest.raises(ValidationError) as caught:
        collect(data)
    assert caught.value.code == "too_many_frames"


def test_it_lets_the_writer_stop_the_extraction() -> None:
    class Stop(Exception):
        pass

    def write(index: int, jpeg: bytes, seconds: float) -> None:
        if index == 2:
            raise Stop

    with pytest.raises(Stop):
        extract_frames(make_clip(), write)


# --- the demo clip -------------------------------------------------------------------------------


def test_it_makes_a_demo_clip_that_pans_across_a_photograph(photo: np.ndarray) -> None:
    data = make_demo_clip(photo, frames=6, fps=12)
    probe = probe_video(data)
    assert probe.container.content_type == "video/mp4"
    assert probe.codec in ("h264", "mpeg4")
    assert (probe.frame_count, probe.fps) == (6, pytest.approx(12))
    height, width = photo.shape[:2]
    assert (probe.width, probe.height) == (int(width * 0.7) // 2 * 2, int(height * 0.7) // 2 * 2)
    _, written = collect(data)
    first, last = (np.asarray(decode_jpeg(jpeg)).astype(int) for _, jpeg, _ in (written[0], written[-1]))
    window_h, window_w = first.shape[:2]
    # The first frame is the photograph's top-left corner, the last its bottom-right one.
    assert np.abs(first - photo[:window_h, :window_w].astype(int)).mean() < 12
    assert np.abs(last - photo[height - window_h :, width - window_w :].astype(int)).mean() < 12
    assert np.abs(first - last).mean() > 12


def test_it_refuses_a_demo_photograph_that_is_no_picture() -> None:
    with pytest.raises(ValueError, match="H × W × 3"):
        make_demo_clip(np.zeros((5,), np.uint8))
