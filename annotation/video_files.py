"""Checking uploaded video files and decoding their frames, with PyAV (FFmpeg's libraries).

The container is sniffed from the first bytes, never taken from the name: MP4 and MOV carry an
``ftyp`` box at offset 4, WebM and Matroska start with the EBML magic ``1A 45 DF A3``; anything
else is refused (``not_a_video``). The demuxer is then chosen from what was sniffed, so FFmpeg never
guesses among its other formats (playlists that name further files among them), and it only ever
reads the file object handed to it.

Checks, in order, each with a readable message and a code:

| check | read from | code |
| --- | --- | --- |
| bytes, at most ``VIDEO_MAX_BYTES`` | the size, before parsing | ``empty``, ``too_large`` |
| an MP4 / MOV / WebM / Matroska that opens | first bytes, headers | ``not_a_video``, ``damaged`` |
| one video stream (cover pictures aside) | headers | ``no_video_stream``, ``several_video_streams`` |
| width × height at most ``MAX_IMAGE_PIXELS`` | headers | ``too_many_pixels`` |
| ``VIDEO_MAX_SECONDS``, ``VIDEO_MAX_FRAMES`` | headers, else the packets | ``too_long``, ``too_many_frames`` |
| the first frame decodes | one frame decoded | ``damaged``, ``unsupported_codec`` |

Extraction decodes every frame once: turned upright where the stream carries a display rotation,
encoded as JPEG (quality 90) and handed to the caller with its index (from 0) and time in seconds;
a frame that fails to decode, or a size that changes mid-stream, stops it with a ValidationError.
``make_demo_clip`` encodes a slow pan over a photograph as an H.264 MP4 (MPEG-4 part 2 where the
FFmpeg build has no H.264 encoder), for the demo and the tests.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, Any

import av
import numpy as np
from av.stream import Disposition
from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image

from annotation.image_files import THUMBNAIL_QUALITY, THUMBNAIL_SIZE, is_seekable

VideoSource = bytes | bytearray | memoryview | os.PathLike | IO[bytes]

FRAME_QUALITY = 90
FRAME_CONTENT_TYPE = "image/jpeg"
HEAD_BYTES = 64
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv")
# What the decoders raise on a damaged stream: FFmpeg's errors, and ValueError / EOFError from PyAV.
DECODE_ERRORS = (av.error.FFmpegError, ValueError, EOFError, IndexError)
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
ACCEPTED = "MP4, MOV, WebM or Matroska"


@dataclass(frozen=True)
class Container:
    demuxer: str  # FFmpeg's name for the demuxer that reads it
    content_type: str
    extension: str


@dataclass(frozen=True)
class VideoProbe:
    """What the headers and the first frame say about an accepted video. Width and height are
    the upright frame's; ``frame_count`` is the container's (or the packets') count."""

    container: Container
    codec: str
    width: int
    height: int
    frame_count: int
    fps: float | None
    duration_s: float | None
    rotation: int
    thumbnail: bytes


@dataclass(frozen=True)
class ExtractedFrames:
    frame_count: int
    fps: float | None
    times: list[float]
    width: int
    height: int


# --- sniffing ----------------------------------------------------------------------------------


def sniff_container(head: bytes) -> Container | None:
    """The container the first bytes announce, or None when they announce no video we read."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        if head[8:12] == b"qt  ":
            return Container("mov", "video/quicktime", ".mov")
        return Container("mov", "video/mp4", ".mp4")
    if head.startswith(EBML_MAGIC):
        if b"webm" in head[:HEAD_BYTES]:
            return Container("matroska", "video/webm", ".webm")
        return Container("matroska", "video/x-matroska", ".mkv")
    return None


def is_video_name(name: str) -> bool:
    """Whether a file name says video (the content decides what it is; the name only what was meant)."""
    return name.lower().endswith(VIDEO_EXTENSIONS)


def looks_like_video(source: VideoSource) -> bool:
    """Whether the first bytes of ``source`` announce a video container (the position is kept)."""
    return sniff_container(_head(source)) is not None


def _head(source: VideoSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source[:HEAD_BYTES])
    if isinstance(source, os.PathLike):
        with open(source, "rb") as handle:
            return handle.read(HEAD_BYTES)
    if is_seekable(source):
        start = source.tell()
        head = source.read(HEAD_BYTES)
        source.seek(start)
        return head
    return b""


def _describe(head: bytes) -> str:
    """What a refused file looks like, for the message."""
    signatures = {
        b"\x89PNG": "a PNG image",
        b"\xff\xd8\xff": "a JPEG image",
        b"GIF8": "a GIF image",
        b"PK\x03\x04": "a zip archive",
        b"%PDF": "a PDF document",
    }
    for magic, what in signatures.items():
        if head.startswith(magic):
            return f" It looks like {what}."
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return " It looks like an AVI file: convert it to MP4 or WebM."
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return " It looks like a WebP image."
    return ""


# --- reading -----------------------------------------------------------------------------------


@contextmanager
def opened_video(source: VideoSource) -> Iterator[tuple[IO[bytes], int]]:
    """A seekable binary file over ``source`` (read where it lies) and its size in bytes.

    A stream that cannot seek is copied to a temporary file, at most one byte past the limit.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        yield io.BytesIO(source), len(source)
    elif isinstance(source, os.PathLike):
        with open(source, "rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
    elif hasattr(source, "read"):
        if is_seekable(source):
            source.seek(0)
            size = source.seek(0, io.SEEK_END)
            source.seek(0)
            yield source, size
            return
        with tempfile.TemporaryFile() as spool:
            remaining = settings.VIDEO_MAX_BYTES + 1
            while remaining > 0 and (chunk := source.read(min(remaining, 1024 * 1024))):
                spool.write(chunk)
                remaining -= len(chunk)
            size = spool.tell()
            spool.seek(0)
            yield spool, size
    else:
        raise TypeError(f"Videos are read from bytes, a path or a binary file, not {type(source).__name__}.")


@contextmanager
def _open_container(fp: IO[bytes], container: Container) -> Iterator[Any]:
    fp.seek(0)
    try:
        handle = av.open(fp, mode="r", format=container.demuxer)
    except DECODE_ERRORS:
        raise ValidationError(
            "The video file is damaged or truncated: its headers cannot be read.", code="damaged"
        ) from None
    with handle:
        yield handle


def _video_stream(handle: Any) -> Any:
    streams = [s for s in handle.streams.video if not s.disposition & Disposition.attached_pic]
    if not streams:
        raise ValidationError(
            "The file holds no video stream (only sound, subtitles or a cover picture).", code="no_video_stream"
        )
    if len(streams) > 1:
        raise ValidationError(
            f"The file holds {len(streams)} video streams; upload a file with one.", code="several_video_streams"
        )
    return streams[0]


# --- checking ----------------------------------------------------------------------------------


def probe_video(source: VideoSource) -> VideoProbe:
    """Check a video and describe it: container, size, frame count, rate, duration, thumbnail.

    Raises ValidationError with a readable message (codes in the module's table); nothing but the
    first frame is decoded.
    """
    with opened_video(source) as (fp, size):
        _check_bytes(size)
        container = _sniff_or_refuse(fp)
        with _open_container(fp, container) as handle:
            stream = _video_stream(handle)
            _check_pixels(stream.width, stream.height)
            declared_frames = stream.frames or 0
            duration = _declared_duration(handle, stream)
            _check_duration(duration)
            _check_frame_count(declared_frames)
            fps = _rate(stream)
            codec = stream.codec_context.name or "unknown"
            first = _first_frame(handle, stream)
            rotation = _rotation(first)
            image = _upright(first.to_image(), rotation)
        if not declared_frames or duration is None:
            counted, packet_duration = _count_packets(fp, container)
            declared_frames = declared_frames or counted
            duration = duration if duration is not None else packet_duration
            _check_duration(duration)
    return VideoProbe(
        container=container,
        codec=codec,
        width=image.width,
        height=image.height,
        frame_count=declared_frames,
        fps=fps or _rate_from(declared_frames, duration),
        duration_s=duration,
        rotation=rotation,
        thumbnail=_thumbnail(image),
    )


def check_container(source: VideoSource) -> Container:
    """The quick checks, before anything is parsed: the size, and a container sniffed from the
    first bytes. ValidationError (``empty``, ``too_large``, ``not_a_video``) otherwise."""
    with opened_video(source) as (fp, size):
        _check_bytes(size)
        return _sniff_or_refuse(fp)


def _check_bytes(size: int) -> None:
    if size == 0:
        raise ValidationError("The file is empty.", code="empty")
    limit = settings.VIDEO_MAX_BYTES
    if size > limit:
        raise ValidationError(f"The video is {size} bytes; the limit is {limit} bytes.", code="too_large")


def _sniff_or_refuse(fp: IO[bytes]) -> Container:
    fp.seek(0)
    head = fp.read(HEAD_BYTES)
    fp.seek(0)
    container = sniff_container(head)
    if container is None:
        raise ValidationError(
            f"The file is not a video this platform reads ({ACCEPTED}).{_describe(head)}", code="not_a_video"
        )
    return container


def _check_pixels(width: int, height: int) -> None:
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise ValidationError(
            f"The video's frames are {width}×{height} pixels; the limit is {settings.MAX_IMAGE_PIXELS} pixels.",
            code="too_many_pixels",
        )
    if width <= 0 or height <= 0:
        raise ValidationError("The video declares frames without pixels.", code="damaged")


def _check_duration(duration: float | None) -> None:
    limit = settings.VIDEO_MAX_SECONDS
    if duration is not None and duration > limit:
        raise ValidationError(f"The video lasts {duration:.1f} seconds; the limit is {limit} seconds.", code="too_long")


def _check_frame_count(frames: int) -> None:
    limit = settings.VIDEO_MAX_FRAMES
    if frames > limit:
        raise ValidationError(f"The video has {frames} frames; the limit is {limit} frames.", code="too_many_frames")


def _declared_duration(handle: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if handle.duration:
        return handle.duration / av.time_base
    return None


def _rate(stream: Any) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate:
            return float(rate)
    return None


def _rate_from(frames: int, duration: float | None) -> float | None:
    return frames / duration if frames and duration else None


def _first_frame(handle: Any, stream: Any) -> Any:
    try:
        for frame in handle.decode(stream):
            return frame
    except DECODE_ERRORS:
        raise ValidationError("The video is damaged: its first frame cannot be decoded.", code="damaged") from None
    if stream.codec_context.name is None:
        raise ValidationError("The video's codec cannot be decoded here.", code="unsupported_codec")
    raise ValidationError("The video holds no frame that decodes.", code="damaged")


def _count_packets(fp: IO[bytes], container: Container) -> tuple[int, float | None]:
    """Frames and duration from the packets, for containers whose headers do not say (WebM): one
    packet a frame, counted without decoding, stopping one past the frame limit."""
    limit = settings.VIDEO_MAX_FRAMES
    count, end = 0, None
    with _open_container(fp, container) as handle:
        stream = _video_stream(handle)
        try:
            for packet in handle.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                count += 1
                if packet.pts is not None and packet.time_base:
                    stop = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    end = stop if end is None else max(end, stop)
                if count > limit:
                    _check_frame_count(count)
        except DECODE_ERRORS:
            raise ValidationError("The video file is damaged or truncated.", code="damaged") from None
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
    return count, (end - start if end is not None else None)


# --- frames ------------------------------------------------------------------------------------


def _rotation(frame: Any) -> int:
    """The display rotation, counter-clockwise, rounded to a quarter turn (0, 90, 180, 270)."""
    angle = getattr(frame, "rotation", 0) or 0
    return int(round(angle / 90.0)) * 90 % 360


def _upright(image: Image.Image, rotation: int) -> Image.Image:
    turns = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }
    return image.transpose(turns[rotation]) if rotation in turns else image


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=FRAME_QUALITY)
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=THUMBNAIL_QUALITY)
    return out.getvalue()


def extract_frames(source: VideoSource, write: Callable[[int, bytes, float], None]) -> ExtractedFrames:
    """Decode every frame once and hand each to ``write(index, jpeg_bytes, seconds)``, index from 0.

    The checks of ``probe_video`` are assumed passed; what only decoding finds (a damaged frame, a
    size that changes, more frames than the limit) raises ValidationError. Whatever ``write``
    raises propagates (a cancelled job stops here).
    """
    limit = settings.VIDEO_MAX_FRAMES
    with opened_video(source) as (fp, size):
        _check_bytes(size)
        container = _sniff_or_refuse(fp)
        with _open_container(fp, container) as handle:
            stream = _video_stream(handle)
            stream.thread_type = "AUTO"
            fps = _rate(stream)
            declared = (stream.width, stream.height)
            times: list[float] = []
            upright_size = (0, 0)
            for index, frame in enumerate(_decoded(handle, stream)):
                if index >= limit:
                    _check_frame_count(index + 1)
                if (frame.width, frame.height) != declared:
                    raise ValidationError(
                        f"The video changes its frame size at frame {index}; upload one with a fixed size.",
                        code="size_changes",
                    )
                image = _upright(frame.to_image(), _rotation(frame))
                upright_size = image.size
                seconds = float(frame.time) if frame.time is not None else index / (fps or 1.0)
                write(index, _jpeg(image), seconds)
                times.append(seconds)
    if not times:
        raise ValidationError("The video holds no frame that decodes.", code="damaged")
    width, height = upright_size
    return ExtractedFrames(len(times), fps or _rate_from(len(times), _span(times)), times, width, height)


def _decoded(handle: Any, stream: Any) -> Iterator[Any]:
    frames = handle.decode(stream)
    index = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except DECODE_ERRORS:
            raise ValidationError(f"The video is damaged: decoding stopped at frame {index}.", code="damaged") from None
        yield frame
        index += 1


def _span(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    # One frame's length past the last start, estimated from the mean spacing.
    return (times[-1] - times[0]) * len(times) / (len(times) - 1)


# --- demo clips --------------------------------------------------------------------------------


def make_demo_clip(photo: np.ndarray, frames: int = 24, fps: int = 12) -> bytes:
    """A slow pan across ``photo`` (H × W × 3 uint8) as MP4 bytes: a window of 70 % of the
    photograph moves diagonally from its top-left to its bottom-right corner."""
    rgb = _as_rgb(photo)
    height, width = rgb.shape[:2]
    window_w, window_h = _even(width * 0.7), _even(height * 0.7)
    codec = _mp4_encoder()
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as clip:
        stream = clip.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = window_w, window_h, "yuv420p"
        for index in range(frames):
            share = index / max(1, frames - 1)
            left = round(share * (width - window_w))
            top = round(share * (height - window_h))
            window = np.ascontiguousarray(rgb[top : top + window_h, left : left + window_w])
            for packet in stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")):
                clip.mux(packet)
        for packet in stream.encode():
            clip.mux(packet)
    return out.getvalue()


def _as_rgb(photo: np.ndarray) -> np.ndarray:
    array = np.asarray(photo)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 4:
        raise ValueError("make_demo_clip takes an H × W × 3 (or × 4) photograph of at least 4 × 4 pixels.")
    return array[:, :, :3].astype(np.uint8)


def _even(value: float) -> int:
    # H.264 and MPEG-4 in 4:2:0 need even sides.
    return max(2, int(value) // 2 * 2)


def _mp4_encoder() -> str:
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        return name
    raise RuntimeError("This FFmpeg build has neither an H.264 nor an MPEG-4 encoder.")
