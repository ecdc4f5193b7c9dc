"""One video export run: a project's videos and their tracks (see ``video_tracks``), streamed into a
YouTube-VIS or COCO-video JSON file, or DAVIS-style palette PNGs in a zip, and the report of what
it held and left out.

What each format holds (``youtube_vis`` and ``davis_png`` write the files):

- ``youtube-vis``: ``videos`` with ``file_names`` ``<video>/<n>.jpg`` (``<video>`` is the item's
  original name without its extension, made safe and unique as ``naming`` does for images; ``<n>``
  the frame's index from 0, as the platform stores frames); one ``annotations`` entry per track,
  its ``category_id`` the track's label and its ``attributes`` its answers (``{question text:
  answer}``), with lists of the video's ``length`` (``segmentations``, ``bboxes``, ``areas``, and the
  extra key ``centroids``, each ``[x, y]`` or ``null`` where the object is absent) and the extra key
  ``track`` (the item's track number; ``null`` for an object without one);
- ``coco-video``: the same videos, one ``images`` entry per frame (``file_name`` as above) and one
  ``annotations`` entry per track and frame where it is present, with the extra keys ``centroid``
  and ``track``;
- ``davis``: a zip of ``Annotations/<video>/<nnnnn>.png``, one indexed PNG with the DAVIS palette
  per frame (every frame, empty ones included), each pixel the number of its object (1 for the
  video's first object; objects in track-number order, those without a track number last; where
  objects overlap, the higher number is drawn on top), and ``davis.json`` saying which number is
  which track, label and answers. Frame numbers are zero-padded to five digits, as DAVIS and
  YouTube-VOS name them, so that sorted file lists are in frame order.

Pre-annotations awaiting a person are left out unless asked for; kept, they are marked
(``proposed_frames`` on a YouTube-VIS track, ``proposed: true`` on a COCO-video annotation,
``proposed_frames`` per object in ``davis.json``). With images, the frames go into the zip as the
stored JPEG files under ``JPEGImages/`` and the name the JSON gives them
(``JPEGImages/<video>/<n>.jpg``; for DAVIS ``JPEGImages/<video>/<nnnnn>.jpg``, beside the PNGs),
and the JSON file is ``annotations/instances.json``, where the dataset import looks for it.

Left out, and counted in the report: the project's images (``coco`` and ``masks`` hold those),
videos whose frames are not extracted yet, and for DAVIS a video of more than 255 objects; an
annotation that does not fit its video (no frame, a frame beyond the video, a mask of another size)
is listed with the reason. The report counts the videos, frames, tracks and masks written.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.utils import timezone

from annotation.datasets.coco_export import AnswerTexts, question_entry
from annotation.datasets.davis_png import MAX_OBJECTS, frame_png
from annotation.datasets.naming import FileNames
from annotation.datasets.options import ACCEPTED, COCO_VIDEO, DAVIS, YOUTUBE_VIS, ExportOptions
from annotation.datasets.selectors import classification_labels, export_labels, export_questions
from annotation.datasets.video_tracks import (
    ExportTrack,
    ExportVideo,
    LeftOut,
    export_videos,
    frame_centroids,
    images_left_out,
    proposed_on_videos,
    tracks_of,
    video_stream,
    video_tracks,
)
from annotation.datasets.youtube_vis import (
    CocoVideoWriter,
    ListsWriter,
    VisCategory,
    VisTrack,
    VisVideo,
    YoutubeVisWriter,
    track_entry,
)
from annotation.masks import mask_decode
from annotation.models import MediaItem, Project
from annotation.video_services import frame_name

Progress = Callable[[int, int, str], None]
REPORTED_SKIPS = 1000
COPY_CHUNK = 1024 * 1024
JSON_ENTRY = "annotations/instances.json"
FRAMES_FOLDER = "JPEGImages"
DAVIS_FOLDER = "Annotations"
DAVIS_INDEX = "davis.json"
DAVIS_LAYOUT = {
    "Annotations/<video>/<frame>.png": "indexed PNG per frame (DAVIS palette); pixel value = the object's number in "
    "the video's “objects” below, 0 = background; where objects overlap, the higher number is on top",
    "JPEGImages/<video>/<frame>.jpg": "the frames (exports with images)",
    "<frame>": "the frame's index from 0, zero-padded to five digits",
}


class _YoutubeVis(YoutubeVisWriter):
    """The library's streaming writer, each track entry with the platform's extra keys."""

    def add_track(self, track: VisTrack, extra: dict[str, Any], per_frame: dict[int, dict[str, Any]]) -> None:
        entry = track_entry(track, self._ids.video_of(track))
        entry.update(extra)
        self.add("annotations", entry)


class _CocoVideo(CocoVideoWriter):
    """The library's streaming writer, each annotation with the platform's extra keys (the
    track's, and its frame's)."""

    def add_track(self, track: VisTrack, extra: dict[str, Any], per_frame: dict[int, dict[str, Any]]) -> None:
        first = self._entries.first_image[track.video_id]
        for annotation in self._entries.track(track):
            annotation.update(extra)
            annotation.update(per_frame.get(annotation["image_id"] - first, {}))
            self.add("annotations", annotation)


class VideoExportRun:
    """One export of a project's videos (YouTube-VIS, COCO-video or DAVIS), driven by
    ``export.dataset_export_run`` like the image export: ``write(out)``, then ``report(out)``."""

    def __init__(self, project: Project, options: ExportOptions, scratch: Path, progress: Progress | None) -> None:
        self.project = project
        self.options = options
        self.scratch = scratch
        self.progress = progress
        self.archive: zipfile.ZipFile | None = None
        self.labels = export_labels(project)
        self.label_names = {label.pk: label.name for label in self.labels}
        self.questions = export_questions(project)
        self.answer_texts = AnswerTexts(self.questions, classification_labels(project))
        self.names = FileNames()
        self.started = timezone.now()
        self.total = 0
        self.videos = 0
        self.frames = 0
        self.tracks = 0
        self.masks = 0
        self.skipped: list[dict[str, str]] = []
        self.skipped_count = 0

    # --- the run --------------------------------------------------------------------------------

    def write(self, out: Path) -> None:
        self.total = export_videos(self.project, self.options).count()
        if self.progress:
            self.progress(0, self.total, f"{self.total} videos to export")
        if self.options.format == DAVIS:
            self._write_davis()
        else:
            self._write_json(out)

    def _videos(self) -> Iterator[tuple[ExportVideo, str]]:
        """Each video with frames, with its name in the export (``<video>`` in the file names)."""
        for done, video in enumerate(video_stream(self.project, self.options), start=1):
            if video.ready:
                stem, _ = self.names.name(item_id=video.id, original_name=video.original_name, stored_name="")
                yield video, stem
            else:
                reason = f"its frames are not extracted ({MediaItem.State(video.state).label.lower()})"
                self._skip(video.original_name, reason + ": the video is not in the export")
            if self.progress:
                self.progress(done, self.total, video.original_name)

    def _categories(self) -> list[VisCategory]:
        return [
            VisCategory(
                label.pk,
                label.name,
                self.project.name or "",
                {
                    "color": label.color,
                    "kind": label.kind,
                    "questions": [question_entry(q) for q in self.questions if q.label_id == label.pk],
                },
            )
            for label in self.labels
        ]

    def _info(self) -> dict[str, Any]:
        return {
            "description": self.project.name,
            "contributor": self.project.organization.name,
            "date_created": self.started.isoformat(),
            "year": self.started.year,
            "version": "1.0",
            "url": "",
            "export": self.options.as_params(),
        }

    # --- YouTube-VIS and COCO-video -------------------------------------------------------------

    def _write_json(self, out: Path) -> None:
        path = self.scratch / "instances.json" if self.archive else out
        writer_class = _YoutubeVis if self.options.format == YOUTUBE_VIS else _CocoVideo
        with writer_class(path, self._categories(), info=self._info()) as writer:
            for video, stem in self._videos():
                names = [f"{stem}/{frame}.jpg" for frame in range(video.frame_count or 0)]
                writer.video(VisVideo(video.id, names, video.width, video.height))
                for found in video_tracks(self.project, self.options, video):
                    if isinstance(found, LeftOut):
                        self._left_out(video, found)
                        continue
                    extra, per_frame = self._extras(found, video)
                    writer.add_track(self._vis_track(found, video), extra, per_frame)
                self._count_video(video)
                self._frame_files(video, names)
        if self.archive:
            self.archive.write(path, JSON_ENTRY)

    def _vis_track(self, track: ExportTrack, video: ExportVideo) -> VisTrack:
        self.tracks += 1
        self.masks += len(track.frames)
        attributes = self.answer_texts(track.track_answers())
        return VisTrack(self.tracks, video.id, track.label_id, track.frames, attributes)

    def _extras(self, track: ExportTrack, video: ExportVideo) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
        """The keys loaders ignore: the whole track's (YouTube-VIS), and each frame's (COCO-video)."""
        centroids = frame_centroids(track)
        if self.options.format == COCO_VIDEO:
            per_frame: dict[int, dict[str, Any]] = {
                frame: {"centroid": point, **({"proposed": True} if frame in track.proposed_frames else {})}
                for frame, point in centroids.items()
            }
            return {"track": track.number}, per_frame
        listed: list[list[float] | None] = [None] * (video.frame_count or 0)
        for frame, point in centroids.items():
            listed[frame] = point
        extra: dict[str, Any] = {"track": track.number, "centroids": listed}
        if track.proposed_frames:
            extra["proposed_frames"] = sorted(track.proposed_frames)
        return extra, {}

    # --- DAVIS ------------------------------------------------------------------------------------

    def _write_davis(self) -> None:
        archive = self.archive
        if archive is None:
            raise ValueError("DAVIS PNGs are written into a zip.")
        path = self.scratch / DAVIS_INDEX
        categories = [
            {"id": c.id, "name": c.name, "supercategory": c.supercategory, **c.extra} for c in self._categories()
        ]
        head = {"layout": DAVIS_LAYOUT, "palette": "DAVIS (PASCAL VOC colour map)", "categories": categories}
        with ListsWriter(path, head, ("videos",)) as index:
            for video, stem in self._videos():
                tracks, left_out = tracks_of(self.project, self.options, video)
                for found in left_out:
                    self._left_out(video, found)
                if len(tracks) > MAX_OBJECTS:
                    self._skip(
                        video.original_name,
                        f"{len(tracks)} objects: a DAVIS PNG numbers at most {MAX_OBJECTS}; export it as YouTube-VIS",
                    )
                    continue
                self._davis_pngs(video, stem, tracks)
                index.add("videos", self._davis_entry(video, stem, tracks))
                self._count_video(video)
                self.tracks += len(tracks)
                self.masks += sum(len(track.frames) for track in tracks)
                names = [f"{stem}/{frame:05d}.jpg" for frame in range(video.frame_count or 0)]
                self._frame_files(video, names)
        archive.write(path, DAVIS_INDEX)

    def _davis_pngs(self, video: ExportVideo, stem: str, tracks: list[ExportTrack]) -> None:
        assert self.archive is not None  # noqa: S101 - DAVIS is always zipped
        order = list(range(1, len(tracks) + 1))
        for frame in range(video.frame_count or 0):
            masks = {
                number: mask_decode(track.frames[frame])
                for number, track in enumerate(tracks, start=1)
                if frame in track.frames
            }
            png = frame_png(masks, video.height, video.width, order)
            self.archive.writestr(self._entry(f"{DAVIS_FOLDER}/{stem}/{frame:05d}.png"), png)

    def _davis_entry(self, video: ExportVideo, stem: str, tracks: list[ExportTrack]) -> dict[str, Any]:
        objects = []
        for number, track in enumerate(tracks, start=1):
            entry: dict[str, Any] = {
                "number": number,
                "track": track.number,
                "category_id": track.label_id,
                "label": self.label_names.get(track.label_id, ""),
                "frames": sorted(track.frames),
                "attributes": self.answer_texts(track.track_answers()),
            }
            if track.proposed_frames:
                entry["proposed_frames"] = sorted(track.proposed_frames)
            objects.append(entry)
        return {
            "id": video.id,
            "name": stem,
            "original_name": video.original_name,
            "width": video.width,
            "height": video.height,
            "length": video.frame_count,
            "objects": objects,
        }

    # --- pieces -----------------------------------------------------------------------------------

    def _count_video(self, video: ExportVideo) -> None:
        self.videos += 1
        self.frames += video.frame_count or 0

    def _left_out(self, video: ExportVideo, left_out: LeftOut) -> None:
        self._skip(f"{video.original_name}, annotation {left_out.annotation_id}", left_out.reason)

    def _skip(self, name: str, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < REPORTED_SKIPS:
            self.skipped.append({"name": name, "reason": reason})

    def _entry(self, name: str) -> zipfile.ZipInfo:
        entry = zipfile.ZipInfo(name, date_time=timezone.localtime(self.started).timetuple()[:6])
        entry.compress_type = zipfile.ZIP_STORED  # PNG and JPEG are compressed already
        entry.external_attr = 0o644 << 16
        return entry

    def _frame_files(self, video: ExportVideo, names: list[str]) -> None:
        """The stored frames, byte for byte, into ``JPEGImages/`` under ``names``."""
        if not (self.options.include_images and self.archive):
            return
        for frame, name in enumerate(names):
            try:
                source = default_storage.open(frame_name(video.frames_prefix, frame), "rb")
            except FileNotFoundError:
                self._skip(
                    video.original_name,
                    f"its frame {frame} is missing from storage: frames from it on are not in the zip",
                )
                return
            with source, self.archive.open(self._entry(f"{FRAMES_FOLDER}/{name}"), "w", force_zip64=True) as target:
                shutil.copyfileobj(source, target, COPY_CHUNK)

    # --- the report -------------------------------------------------------------------------------

    def report(self, out: Path) -> dict[str, Any]:
        report: dict[str, Any] = {
            "format": self.options.format,
            "videos": self.videos,
            "frames": self.frames,
            "tracks": self.tracks,
            "masks": self.masks,
            "categories": len(self.labels),
            "images_left_out": images_left_out(self.project, self.options),
            "proposed_left_out": proposed_on_videos(self.project, self.options),
        }
        if self.options.only == ACCEPTED:
            everything = MediaItem.objects.filter(project=self.project, kind=MediaItem.Kind.VIDEO).count()
            report["videos_not_accepted_left_out"] = everything - self.total
        report.update(skipped=self.skipped, skipped_count=self.skipped_count, file=out.name, bytes=out.stat().st_size)
        return report


def video_report_line(report: dict[str, Any]) -> str:
    """The report of a video export in one line, as the command prints it."""
    parts = [
        f"{report['videos']} videos",
        f"{report['frames']} frames",
        f"{report['tracks']} tracks",
        f"{report['masks']} masks",
        f"{report['categories']} categories",
    ]
    if report["images_left_out"]:
        parts.append(f"{report['images_left_out']} images left out (export them as COCO or mask PNGs)")
    if report["proposed_left_out"]:
        parts.append(f"{report['proposed_left_out']} pre-annotations awaiting a person left out")
    if report.get("videos_not_accepted_left_out"):
        parts.append(f"{report['videos_not_accepted_left_out']} videos outside accepted tasks left out")
    if report["skipped_count"]:
        parts.append(f"{report['skipped_count']} skipped")
    return f"{report['file']} ({report['format']}, {report['bytes']} bytes): " + ", ".join(parts)
