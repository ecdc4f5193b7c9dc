"""YouTube-VIS and COCO-video files: writing them from plain video and track data, checking a file
as a loader would, and reading one whole for an import.

YouTube-VIS (the layout of youtube-vos/cocoapi's ``ytvos.py``): one JSON object with

- ``videos``: ``{id, width, height, length, file_names}``, one file name per frame, so that
  ``length == len(file_names)``;
- ``categories``: ``{id, name, supercategory}`` (and whatever a ``VisCategory`` carries in
  ``extra``, e.g. the platform's label colour, kept beside);
- ``annotations``: one per track (an object across the frames of one video): ``{id, video_id,
  category_id, segmentations, bboxes, areas, iscrowd: 0, width, height, length, attributes}``.
  ``segmentations``, ``bboxes`` and ``areas`` have one entry per frame of the video, ``null`` where
  the object is absent; a present frame is COCO compressed RLE whose ``size`` is ``[height,
  width]``, with its ``[x, y, w, h]`` box and pixel count as pycocotools' ``toBbox`` and ``area``
  compute them, so that a loader recomputing them finds the same numbers. An empty mask is written
  as absent.

COCO-video (mmtracking's ``CocoVID`` layout, which pycocotools' ``COCO`` also loads): ``videos``
``{id, name, width, height, length}``; ``images``, one per frame, ``{id, video_id, frame_id
(0-based), file_name, width, height}``; ``annotations``, one per (track, present frame), ``{id,
image_id, video_id, category_id, instance_id (the track's id), segmentation, bbox, area, iscrowd:
0, attributes}``. Image and annotation ids are numbered from 1 in the order written. A video's name
is the folder its frames' file names share (YouTube-VIS names frames ``<video>/<frame>.jpg``), else
its id.

Writing: ``youtube_vis_document`` and ``coco_video_document`` build the whole file in memory, which
suits a few thousand frames; ``YoutubeVisWriter`` and ``CocoVideoWriter`` stream it to a file
(videos straight in, the other lists through spool files appended on close), holding one track at a
time, however long the videos. Data that cannot make a valid file (a frame outside its video, an
RLE of another size, an id given twice or naming nothing) raises ``ValueError``.

Checking and reading are in ``youtube_vis_reading`` (``check_youtube_vis``, ``read_youtube_vis``).
"""

from __future__ import annotations

import json
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from django.core.exceptions import ValidationError
from pycocotools import mask as coco_mask

from annotation.masks import rle_validate

# pycocotools' ``area`` first makes its result array as ``np.array((n,), dtype=np.uint8)``: under
# NumPy 2 more than 255 masks in one call overflow, so they go in batches.
AREA_BATCH = 255


@dataclass
class VisVideo:
    id: int
    file_names: list[str]
    width: int
    height: int

    @property
    def length(self) -> int:
        return len(self.file_names)


@dataclass
class VisTrack:
    """One object across the frames of a video: ``frames`` maps a 0-based frame index to the
    object's compressed RLE on that frame; a frame not in it is one where the object is absent."""

    id: int
    video_id: int
    category_id: int
    frames: dict[int, dict]
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class VisCategory:
    id: int
    name: str
    supercategory: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # further keys of the entry, e.g. "color"


@dataclass
class VisFile:
    videos: dict[int, VisVideo]
    categories: dict[int, VisCategory]
    tracks: list[VisTrack]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- entries ----------------------------------------------------------------------------------------


def category_entry(category: VisCategory) -> dict[str, Any]:
    return {**category.extra, "id": category.id, "name": category.name, "supercategory": category.supercategory}


def video_entry(video: VisVideo) -> dict[str, Any]:
    return {
        "id": video.id,
        "width": video.width,
        "height": video.height,
        "length": video.length,
        "file_names": list(video.file_names),
    }


def video_name(video: VisVideo) -> str:
    """The folder every frame's file name shares, else the video's id."""
    folders = {posixpath.dirname(name) for name in video.file_names}
    if len(folders) == 1 and (folder := folders.pop()):
        return folder
    return str(video.id)


@dataclass(frozen=True)
class FrameMask:
    """A present frame of a track: its canonical RLE with pycocotools' box and area."""

    frame: int
    rle: dict
    bbox: list[float]
    area: int


def track_frames(track: VisTrack, video: VisVideo) -> list[FrameMask]:
    """The frames where ``track`` is present (empty masks left out), in order, each RLE checked
    against the video's size; ValueError naming the track and frame otherwise."""
    checked: list[tuple[int, dict]] = []
    for frame in sorted(track.frames):
        if not isinstance(frame, int) or not 0 <= frame < video.length:
            raise ValueError(
                f"Track {track.id} has a mask on frame {frame!r}, outside video {video.id}'s "
                f"{video.length} frames (0 to {video.length - 1})."
            )
        try:
            checked.append((frame, rle_validate(track.frames[frame], height=video.height, width=video.width)))
        except ValidationError as exc:
            if exc.code == "empty":
                continue
            raise ValueError(f"Track {track.id}, frame {frame}: {' '.join(exc.messages)}") from None
    if not checked:
        return []
    rles = [rle for _, rle in checked]
    boxes = coco_mask.toBbox(rles)
    areas = [
        int(area)
        for start in range(0, len(rles), AREA_BATCH)
        for area in coco_mask.area(rles[start : start + AREA_BATCH])
    ]
    return [
        FrameMask(frame, rle, [float(v) for v in box], area)
        for (frame, rle), box, area in zip(checked, boxes, areas, strict=True)
    ]


def track_entry(track: VisTrack, video: VisVideo) -> dict[str, Any]:
    """The YouTube-VIS ``annotations`` entry of a track."""
    length = video.length
    segmentations: list[dict | None] = [None] * length
    bboxes: list[list[float] | None] = [None] * length
    areas: list[int | None] = [None] * length
    for mask in track_frames(track, video):
        segmentations[mask.frame] = mask.rle
        bboxes[mask.frame] = mask.bbox
        areas[mask.frame] = mask.area
    return {
        "id": track.id,
        "video_id": track.video_id,
        "category_id": track.category_id,
        "segmentations": segmentations,
        "bboxes": bboxes,
        "areas": areas,
        "iscrowd": 0,
        "width": video.width,
        "height": video.height,
        "length": length,
        "attributes": dict(track.attributes),
    }


class _Ids:
    """The ids written so far: refuses a duplicate, and a track naming a video or category that is
    not in the file."""

    def __init__(self, categories: Iterable[VisCategory]) -> None:
        self.categories: set[int] = set()
        for category in categories:
            if category.id in self.categories:
                raise ValueError(f"Category id {category.id} is given twice.")
            self.categories.add(category.id)
        self.videos: dict[int, VisVideo] = {}
        self.tracks: set[int] = set()

    def add_video(self, video: VisVideo) -> None:
        if video.id in self.videos:
            raise ValueError(f"Video id {video.id} is given twice.")
        if video.length < 1:
            raise ValueError(f"Video {video.id} has no frames.")
        if video.width < 1 or video.height < 1:
            raise ValueError(f"Video {video.id} has the size {video.width}×{video.height}.")
        # The file names are not kept: a track needs only the video's size and length.
        self.videos[video.id] = VisVideo(video.id, [""] * video.length, video.width, video.height)

    def video_of(self, track: VisTrack) -> VisVideo:
        if track.id in self.tracks:
            raise ValueError(f"Track id {track.id} is given twice.")
        if track.category_id not in self.categories:
            raise ValueError(f"Track {track.id} names category {track.category_id}, which is not in the file.")
        video = self.videos.get(track.video_id)
        if video is None:
            raise ValueError(f"Track {track.id} names video {track.video_id}, which is not (yet) in the file.")
        self.tracks.add(track.id)
        return video


# --- YouTube-VIS ------------------------------------------------------------------------------------


def youtube_vis_document(
    videos: Iterable[VisVideo],
    categories: Iterable[VisCategory],
    tracks: Iterable[VisTrack],
    *,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole YouTube-VIS file as one dict (see ``YoutubeVisWriter`` for long videos)."""
    categories = list(categories)
    ids = _Ids(categories)
    video_entries = []
    for video in videos:
        ids.add_video(video)
        video_entries.append(video_entry(video))
    return {
        "info": dict(info or {}),
        "categories": [category_entry(category) for category in categories],
        "videos": video_entries,
        "annotations": [track_entry(track, ids.video_of(track)) for track in tracks],
    }


class ListsWriter:
    """Writes one JSON object whose last keys are lists that grow as the export goes: the first
    list straight into the file, each other one into a spool file appended when the file is closed.
    Nothing grows in memory."""

    def __init__(self, path: Path, head: dict[str, Any], lists: tuple[str, ...]) -> None:
        self.counts = dict.fromkeys(lists, 0)
        self._first = lists[0]
        self._out: IO[str] = path.open("w", encoding="utf-8")
        self._spools: dict[str, IO[str]] = {
            key: tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed in close()
            for key in lists[1:]
        }
        self._out.write("{" + "".join(f"{dumps(key)}:{dumps(value)}," for key, value in head.items()))
        self._out.write(f"{dumps(self._first)}:[")

    def add(self, key: str, entry: dict[str, Any]) -> None:
        stream = self._out if key == self._first else self._spools[key]
        stream.write(("," if self.counts[key] else "") + dumps(entry))
        self.counts[key] += 1

    def close(self) -> None:
        try:
            self._out.write("]")
            for key, spool in self._spools.items():
                self._out.write(f",{dumps(key)}:[")
                spool.seek(0)
                shutil.copyfileobj(spool, self._out)
                self._out.write("]")
            self._out.write("}\n")
        finally:
            self.abort()

    def abort(self) -> None:
        for spool in self._spools.values():
            spool.close()
        self._out.close()

    def __enter__(self) -> ListsWriter:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class YoutubeVisWriter(ListsWriter):
    """Streams a YouTube-VIS file: ``video()`` each video, then ``track()`` each of its tracks (a
    track may follow any video written before it)."""

    def __init__(self, path: Path, categories: Iterable[VisCategory], *, info: dict[str, Any] | None = None) -> None:
        categories = list(categories)
        self._ids = _Ids(categories)
        head = {"info": dict(info or {}), "categories": [category_entry(category) for category in categories]}
        super().__init__(path, head, ("videos", "annotations"))

    def video(self, video: VisVideo) -> None:
        self._ids.add_video(video)
        self.add("videos", video_entry(video))

    def track(self, track: VisTrack) -> None:
        self.add("annotations", track_entry(track, self._ids.video_of(track)))

    def __enter__(self) -> YoutubeVisWriter:
        return self


# --- COCO-video -------------------------------------------------------------------------------------


class _CocoVideoEntries:
    """Numbers the images and annotations of a COCO-video file as its videos and tracks come."""

    def __init__(self, categories: Iterable[VisCategory]) -> None:
        self.ids = _Ids(categories)
        self.first_image: dict[int, int] = {}
        self.next_image = 1
        self.next_annotation = 1

    def video(self, video: VisVideo) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
        self.ids.add_video(video)
        first = self.first_image[video.id] = self.next_image
        self.next_image += video.length
        entry = {
            "id": video.id,
            "name": video_name(video),
            "width": video.width,
            "height": video.height,
            "length": video.length,
        }
        images = (
            {
                "id": first + frame,
                "video_id": video.id,
                "frame_id": frame,
                "file_name": file_name,
                "width": video.width,
                "height": video.height,
            }
            for frame, file_name in enumerate(video.file_names)
        )
        return entry, images

    def track(self, track: VisTrack) -> Iterator[dict[str, Any]]:
        video = self.ids.video_of(track)
        first = self.first_image[video.id]
        for mask in track_frames(track, video):
            yield {
                "id": self.next_annotation,
                "image_id": first + mask.frame,
                "video_id": video.id,
                "category_id": track.category_id,
                "instance_id": track.id,
                "segmentation": mask.rle,
                "bbox": mask.bbox,
                "area": mask.area,
                "iscrowd": 0,
                "attributes": dict(track.attributes),
            }
            self.next_annotation += 1


def coco_video_document(
    videos: Iterable[VisVideo],
    categories: Iterable[VisCategory],
    tracks: Iterable[VisTrack],
    *,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole COCO-video file as one dict (see ``CocoVideoWriter`` for long videos)."""
    categories = list(categories)
    entries = _CocoVideoEntries(categories)
    video_entries: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for video in videos:
        entry, frames = entries.video(video)
        video_entries.append(entry)
        images.extend(frames)
    annotations = [annotation for track in tracks for annotation in entries.track(track)]
    return {
        "info": dict(info or {}),
        "licenses": [],
        "categories": [category_entry(category) for category in categories],
        "videos": video_entries,
        "images": images,
        "annotations": annotations,
    }


class CocoVideoWriter(ListsWriter):
    """Streams a COCO-video file: ``video()`` each video, then ``track()`` each of its tracks."""

    def __init__(self, path: Path, categories: Iterable[VisCategory], *, info: dict[str, Any] | None = None) -> None:
        categories = list(categories)
        self._entries = _CocoVideoEntries(categories)
        head = {
            "info": dict(info or {}),
            "licenses": [],
            "categories": [category_entry(category) for category in categories],
        }
        super().__init__(path, head, ("videos", "images", "annotations"))

    def video(self, video: VisVideo) -> None:
        entry, images = self._entries.video(video)
        self.add("videos", entry)
        for image in images:
            self.add("images", image)

    def track(self, track: VisTrack) -> None:
        for annotation in self._entries.track(track):
            self.add("annotations", annotation)

    def __enter__(self) -> CocoVideoWriter:
        return self
