"""Reads for the video exports: a project's videos, and each video's annotations grouped into tracks.

A *track* is one object across the frames of a video: the video's annotations that share a
``track`` number. An annotation without a track number is an object of its own on its one frame.
What the exports write for a track:

- its frames: ``{frame: compressed RLE}``; two masks of one track on one frame (which nothing
  stops) are written as their union;
- its label: the label of its frames, or where the label changes across frames the most frequent
  one (a tie goes to the label of the earliest of the tied frames);
- its answers: per question, the most frequent answer among the frames that carry the track's label
  (a tie goes to the earliest frame), since answers belong to a label's questions;
- per frame, the box (the exporters compute it from the mask as pycocotools does) and the centroid
  keypoint: the mean of the mask's pixel centres, ``[x, y]`` in pixels, as the studio's overlay and
  the pre-annotation jobs place it;
- which frames are pre-annotations awaiting a person (only when an export keeps them).

Annotations are streamed in (track, frame) order, so memory holds one track at a time. An annotation
that cannot be written (no frame, a frame beyond the video, a mask of another size than the video's)
is handed back with the reason instead of being put in a track.

Like ``selectors``, every read starts from a project the caller fetched through the tenancy door.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import F, QuerySet
from pycocotools import mask as coco_mask

from annotation.datasets.options import ExportOptions
from annotation.datasets.selectors import export_annotations, export_items
from annotation.masks import mask_decode
from annotation.models import Annotation, MediaItem, Project

ANNOTATION_CHUNK = 2000
TRACK_FIELDS = ("id", "label_id", "frame", "track", "rle", "answers", "proposed")


@dataclass(frozen=True)
class ExportVideo:
    id: int
    original_name: str
    file: str
    width: int
    height: int
    state: str
    frame_count: int | None
    frames_prefix: str

    @property
    def ready(self) -> bool:
        return self.state == MediaItem.State.READY and bool(self.frame_count) and bool(self.frames_prefix)


@dataclass
class ExportTrack:
    """One object of a video. ``number`` is the item's track number (None for an annotation
    without one); ``key`` orders the video's objects: tracks by number, then the others."""

    number: int | None
    first_annotation: int
    frames: dict[int, dict] = field(default_factory=dict)
    labels: dict[int, int] = field(default_factory=dict)  # frame -> label id
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)  # frame -> {question id: choice}
    proposed_frames: set[int] = field(default_factory=set)

    @property
    def key(self) -> tuple[int, int]:
        return (0, self.number) if self.number is not None else (1, self.first_annotation)

    @property
    def label_id(self) -> int:
        return most_frequent([self.labels[frame] for frame in sorted(self.labels)])

    def track_answers(self) -> dict[str, Any]:
        """Per question, the most frequent answer on the frames of the track's label."""
        label = self.label_id
        by_question: dict[str, list[Any]] = {}
        for frame in sorted(self.answers):
            if self.labels[frame] != label:
                continue
            for question, choice in self.answers[frame].items():
                by_question.setdefault(question, []).append(choice)
        return {question: most_frequent(choices) for question, choices in by_question.items()}

    def add(self, row: dict[str, Any]) -> None:
        frame = row["frame"]
        if frame in self.frames:
            # A second mask of the object on this frame: keep the union.
            self.frames[frame] = rle_union(self.frames[frame], row["rle"])
        else:
            self.frames[frame] = row["rle"]
            self.labels[frame] = row["label_id"]
            if isinstance(row["answers"], dict) and row["answers"]:
                self.answers[frame] = row["answers"]
        if row["proposed"]:
            self.proposed_frames.add(frame)


@dataclass(frozen=True)
class LeftOut:
    annotation_id: int
    reason: str


def most_frequent(values: list[Any]) -> Any:
    """The most frequent of ``values``; a tie goes to the one that comes first."""
    counts = Counter(values)
    top = max(counts.values())
    return next(value for value in values if counts[value] == top)


def coco_rle(rle: dict) -> dict:
    """A stored RLE as pycocotools takes it (counts as bytes)."""
    return {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}


def rle_union(a: dict, b: dict) -> dict:
    """The union of two stored RLEs of one size, as a stored RLE."""
    merged = coco_mask.merge([coco_rle(a), coco_rle(b)])
    return {"size": [int(n) for n in merged["size"]], "counts": merged["counts"].decode("ascii")}


def centroid(rle: dict) -> list[float] | None:
    """The mean of the mask's pixel centres, ``[x, y]`` rounded to 1/100 pixel; None when empty."""
    rows, columns = np.nonzero(mask_decode(rle))
    if not rows.size:
        return None
    return [round(float(columns.mean()) + 0.5, 2), round(float(rows.mean()) + 0.5, 2)]


# --- videos ------------------------------------------------------------------------------------------


def export_videos(project: Project, options: ExportOptions) -> QuerySet[MediaItem]:
    """The videos an export takes (the options' choice of items, videos only), in id order."""
    return export_items(project, options).filter(kind=MediaItem.Kind.VIDEO)


def images_left_out(project: Project, options: ExportOptions) -> int:
    return export_items(project, options).filter(kind=MediaItem.Kind.IMAGE).count()


def video_stream(project: Project, options: ExportOptions) -> Iterator[ExportVideo]:
    fields = ("id", "original_name", "file", "width", "height", "state", "frame_count", "frames_prefix")
    for values in export_videos(project, options).values(*fields).iterator(chunk_size=200):
        yield ExportVideo(**values)


def proposed_on_videos(project: Project, options: ExportOptions) -> int:
    """Pre-annotations awaiting a person on the exported videos that this export leaves out."""
    if options.include_proposed:
        return 0
    return Annotation.objects.filter(media__in=export_videos(project, options), proposed=True).count()


# --- tracks ------------------------------------------------------------------------------------------


def _rows(project: Project, options: ExportOptions, video: ExportVideo) -> Iterator[dict[str, Any]]:
    return (
        export_annotations(project, options)
        .filter(media_id=video.id)
        .order_by(F("track").asc(nulls_last=True), "frame", "z_order", "id")
        .values(*TRACK_FIELDS)
        .iterator(chunk_size=ANNOTATION_CHUNK)
    )


def _problem(row: dict[str, Any], video: ExportVideo) -> str:
    frame, rle, length = row["frame"], row["rle"], video.frame_count or 0
    if frame is None:
        return "it has no frame: an object on a video belongs to one of its frames"
    if frame >= length:
        return f"its frame {frame} is beyond the video's {length} frames"
    if not isinstance(rle, dict) or list(rle.get("size") or []) != [video.height, video.width]:
        return f"its mask is not of the video's size {video.width}×{video.height}"
    return ""


def video_tracks(project: Project, options: ExportOptions, video: ExportVideo) -> Iterator[ExportTrack | LeftOut]:
    """The video's tracks, one at a time in (track number, first annotation) order, and the
    annotations that cannot be written, as ``LeftOut``."""
    current: ExportTrack | None = None
    for row in _rows(project, options, video):
        problem = _problem(row, video)
        if problem:
            yield LeftOut(row["id"], problem)
            continue
        number = row["track"]
        if current is None or number is None or number != current.number:
            if current is not None:
                yield current
            current = ExportTrack(number=number, first_annotation=row["id"])
        current.add(row)
    if current is not None:
        yield current


def tracks_of(project: Project, options: ExportOptions, video: ExportVideo) -> tuple[list[ExportTrack], list[LeftOut]]:
    """Every track of one video at once (DAVIS draws all of them on each frame), in object order."""
    tracks: list[ExportTrack] = []
    left_out: list[LeftOut] = []
    for found in video_tracks(project, options, video):
        if isinstance(found, LeftOut):
            left_out.append(found)
        else:
            tracks.append(found)
    return sorted(tracks, key=lambda track: track.key), left_out


def frame_centroids(track: ExportTrack) -> dict[int, list[float] | None]:
    return {frame: centroid(rle) for frame, rle in track.frames.items()}
