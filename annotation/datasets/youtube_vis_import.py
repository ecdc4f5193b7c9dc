"""YouTube-VIS into a project: each track's masks onto the project's video of the same name, as
pre-annotations awaiting a person (or accepted objects when asked). One run serves the job
(``import_job``), ``manage.py import_dataset --format youtube-vis``, the project page and the API,
through ``coco_import.dataset_import_run``.

The whole file is checked first (``youtube_vis_reading.read_youtube_vis``: list lengths, RLE sizes,
ids): a malformed file is refused with its first problems and nothing is imported. Then:

- **Videos.** A video of the file is known by the folder its frames' ``file_names`` share (the
  platform's export writes ``<video>/<n>.jpg``). It goes to the project's video whose original
  name without its extension is that folder; else whose original name is the folder; else whose
  name, made safe as the export makes it, is the folder (or ``<name>_<item id>``, as the export
  names a repeated one). Each step counts only when it finds exactly one video; a video of the
  file that matches none (or several) is skipped with its tracks, and the report says why. A
  matched video whose frames are not extracted yet, whose size differs, or whose **frame count
  differs** from the file's ``length`` refuses the whole file: the masks would land on the wrong
  frames.
- **Labels** as the COCO import maps them (``import_mapping``): by name, created with
  ``create_labels`` (colour, kind and questions from the category's extra keys), else the tracks of
  an unknown category are skipped.
- **Tracks.** Each track of the file becomes a new track on its video: a fresh track number (above
  every number the video's annotations already use, in the file's order), and one annotation per
  frame where it is present, ``frame`` set, its ``attributes`` mapped to answers of the label's
  questions, source ``import`` with ``source_detail`` ``{"file", "youtube_vis_id"}``, on top of the
  video's other objects. A track with no mask on any frame is skipped.

Everything is written in one transaction, which also records the job done (``commit``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.db import transaction
from django.db.models import Max

from annotation.annotations.services import annotation_create
from annotation.datasets.coco_reading import CocoCategory, Problems, check_coco
from annotation.datasets.import_mapping import (
    REPORTED,
    CategoryLabels,
    Commit,
    ImportOptions,
    LabelAnswerMaps,
    Progress,
    UnmappedAnswers,
)
from annotation.datasets.import_sources import DatasetSource
from annotation.datasets.naming import UNSAFE, safe_stem
from annotation.datasets.youtube_vis import VisFile, VisTrack, VisVideo, category_entry, video_name
from annotation.datasets.youtube_vis_reading import read_youtube_vis
from annotation.models import Annotation, Label, MediaItem, Project
from platform_core.tenancy import Tenant

FORMAT = "youtube-vis"
REPEATED_NAME = re.compile(r"^(?P<stem>.+)_(?P<id>\d+)$")


@dataclass
class VisImportReport(UnmappedAnswers):
    file: str
    proposed: bool
    videos_in_file: int = 0
    tracks_in_file: int = 0
    matched_videos: int = 0
    tracks: int = 0
    annotations: int = 0
    labels_created: list[str] = field(default_factory=list)
    questions_created: int = 0
    unknown_categories: list[str] = field(default_factory=list)
    skipped_videos: list[dict[str, Any]] = field(default_factory=list)
    skipped_videos_count: int = 0
    skipped_tracks: list[dict[str, Any]] = field(default_factory=list)
    skipped_tracks_count: int = 0

    def skip_video(self, video: VisVideo, reason: str) -> None:
        self.skipped_videos_count += 1
        if len(self.skipped_videos) < REPORTED:
            self.skipped_videos.append({"video": video.id, "name": video_name(video), "reason": reason})

    def skip_track(self, track: VisTrack, reason: str) -> None:
        self.skipped_tracks_count += 1
        if len(self.skipped_tracks) < REPORTED:
            self.skipped_tracks.append({"track": track.id, "video": track.video_id, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": FORMAT,
            "proposed": self.proposed,
            "videos_in_file": self.videos_in_file,
            "tracks_in_file": self.tracks_in_file,
            "matched_videos": self.matched_videos,
            "tracks": self.tracks,
            "annotations": self.annotations,
            "labels_created": self.labels_created,
            "questions_created": self.questions_created,
            "unknown_categories": self.unknown_categories,
            "skipped_videos": self.skipped_videos,
            "skipped_videos_count": self.skipped_videos_count,
            "skipped_tracks": self.skipped_tracks,
            "skipped_tracks_count": self.skipped_tracks_count,
            "unmapped_answers": self.unmapped_answers,
            "unmapped_answers_count": self.unmapped_answers_count,
        }


def vis_report_line(report: dict[str, Any]) -> str:
    """The report in one line, as the command prints it."""
    kind = "pre-annotations" if report["proposed"] else "accepted objects"
    parts = [
        f"{report['tracks']} tracks ({report['annotations']} masks) imported as {kind}",
        f"{report['matched_videos']} videos matched",
    ]
    if report["labels_created"]:
        parts.append(f"labels created: {', '.join(report['labels_created'])}")
    for key, what in (
        ("skipped_videos_count", "videos skipped"),
        ("skipped_tracks_count", "tracks skipped"),
        ("unmapped_answers_count", "answers not mapped"),
    ):
        if report[key]:
            parts.append(f"{report[key]} {what}")
    return f"{report['file']}: " + ", ".join(parts)


# --- finding the videos -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectVideo:
    id: int
    original_name: str
    width: int
    height: int
    frame_count: int | None
    state: str


def _safe(name: str) -> str:
    """A folder name made safe as ``naming.safe_stem`` makes a stem (its extension kept)."""
    return UNSAFE.sub("_", name).strip(" .").casefold()


class VideoIndex:
    """The project's videos, found by the folder of a YouTube-VIS video (see the module's text)."""

    def __init__(self, videos: Iterable[ProjectVideo]) -> None:
        self.videos: dict[int, ProjectVideo] = {}
        self.stem: dict[str, list[int]] = defaultdict(list)
        self.name: dict[str, list[int]] = defaultdict(list)
        self.safe: dict[str, list[int]] = defaultdict(list)
        for video in videos:
            self.videos[video.id] = video
            self.stem[PurePosixPath(video.original_name).stem].append(video.id)
            self.name[video.original_name].append(video.id)
            self.safe[safe_stem(video.original_name).casefold()].append(video.id)

    def find(self, folder: str) -> tuple[ProjectVideo | None, str]:
        """``(video, "")``, or ``(None, why not)``."""
        steps = [self.stem.get(folder, []), self.name.get(folder, []), self.safe.get(_safe(folder), [])]
        repeated = REPEATED_NAME.match(folder)
        if repeated and int(repeated["id"]) in self.videos:
            video_id = int(repeated["id"])
            if safe_stem(self.videos[video_id].original_name).casefold() == _safe(repeated["stem"]):
                steps.append([video_id])
        for found in steps:
            unique = sorted(set(found))
            if len(unique) == 1:
                return self.videos[unique[0]], ""
            if len(unique) > 1:
                return None, f"{len(unique)} videos of the project have this name: rename them"
        return None, "no video of the project has this name"


# --- the run -----------------------------------------------------------------------------------------


def youtube_vis_import_run(
    *,
    tenant: Tenant,
    project: Project,
    source: DatasetSource,
    options: ImportOptions,
    actor: Any,
    commit: Commit | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Import the YouTube-VIS file of ``source`` into ``project`` (see the module's text); returns
    the report. A malformed file, or one whose videos do not fit the project's, raises ImportRefused
    and imports nothing."""
    return _VisImportRun(tenant, project, actor, options, source, progress).run(commit)


class _VisImportRun:
    def __init__(
        self,
        tenant: Tenant,
        project: Project,
        actor: Any,
        options: ImportOptions,
        source: DatasetSource,
        progress: Progress | None,
    ) -> None:
        self.tenant = tenant
        self.project = project
        self.actor = actor
        self.options = options
        self.source = source
        self.progress = progress or (lambda done, total, message: None)
        self.report = VisImportReport(file=source.label, proposed=options.proposed)
        self.labels = CategoryLabels(project, create_labels=options.create_labels)
        self.categories: dict[int, CocoCategory] = {}
        self.targets: dict[int, ProjectVideo] = {}  # file video id -> the project's video
        self._answer_map = LabelAnswerMaps()

    def run(self, commit: Commit | None) -> dict[str, Any]:
        self.progress(0, 3, f"Reading {self.source.label}")
        vis = read_youtube_vis(self.source.json_bytes, file=self.source.label)
        self.source.json_bytes = b""  # parsed: let the bytes go
        self.report.videos_in_file = len(vis.videos)
        self.report.tracks_in_file = len(vis.tracks)
        self.progress(1, 3, f"{len(vis.videos)} videos and {len(vis.tracks)} tracks checked")
        self._plan_labels(vis)
        self._plan_videos(vis)
        self.progress(2, 3, f"Writing {len(vis.tracks)} tracks")
        self._write(vis, commit)
        self.progress(3, 3, f"{self.report.tracks} tracks imported")
        return self.report.as_dict()

    # --- planning (reads only) ------------------------------------------------------------------

    def _plan_labels(self, vis: VisFile) -> None:
        # The categories' extra keys (colour, kind, questions) are checked as a COCO file's are.
        root = {
            "images": [],
            "annotations": [],
            "categories": [category_entry(c) for c in vis.categories.values()],
        }
        self.categories = check_coco(root, file=self.source.label, create_labels=self.options.create_labels).categories
        self.labels.plan(self.categories.values())
        self.report.unknown_categories = self.labels.unknown

    def _plan_videos(self, vis: VisFile) -> None:
        problems = Problems()
        index = VideoIndex(
            ProjectVideo(*row)
            for row in MediaItem.objects.filter(project=self.project, kind=MediaItem.Kind.VIDEO).values_list(
                "id", "original_name", "width", "height", "frame_count", "state"
            )
        )
        taken: dict[int, int] = {}
        for video in vis.videos.values():
            folder = video_name(video)
            found, why = index.find(folder)
            if found is None:
                self.report.skip_video(video, why)
                continue
            if found.id in taken:
                self.report.skip_video(
                    video, f"its video “{found.original_name}” is already matched by video {taken[found.id]}"
                )
                continue
            problem = _misfit(video, found)
            if problem:
                problems.add(f"videos (id {video.id}, “{folder}”)", problem)
                continue
            taken[found.id] = video.id
            self.targets[video.id] = found
        problems.refuse(self.source.label)

    # --- writing (one transaction) ----------------------------------------------------------------

    def _write(self, vis: VisFile, commit: Commit | None) -> None:
        with transaction.atomic():
            self.labels.create(self.report)
            items = MediaItem.objects.select_related("project", "task").in_bulk(
                [video.id for video in self.targets.values()]
            )
            self.report.matched_videos = len(items)
            self._tracks(vis, items)
            if commit is not None:
                commit(self.report.as_dict())

    def _tracks(self, vis: VisFile, items: dict[int, MediaItem]) -> None:
        labels = self.labels.object_labels()
        tops = _tops(list(items))
        for track in vis.tracks:
            target = self.targets.get(track.video_id)
            if target is None:
                self.report.skip_track(track, f"its video {track.video_id} was skipped")
                continue
            folded = self.labels.category_label.get(track.category_id)
            if folded is None or folded not in labels:
                self.report.skip_track(track, self.labels.reason(self.categories[track.category_id]))
                continue
            if not track.frames:
                self.report.skip_track(track, "it has no mask on any frame")
                continue
            self._track(track, items[target.id], labels[folded], tops[target.id])

    def _track(self, track: VisTrack, item: MediaItem, label: Label, top: _Top) -> None:
        answers = self._answer_map(label).map(track.attributes, f"track {track.id}", self.report)
        number = top.next_track()
        for frame in sorted(track.frames):
            annotation_create(
                tenant=self.tenant,
                media=item,
                label=label,
                rle=track.frames[frame],
                author=self.actor,
                frame=frame,
                track=number,
                answers=answers,
                source=Annotation.Source.IMPORT,
                source_detail={"file": self.source.label, "youtube_vis_id": track.id},
                z_order=top.next_z(),
                proposed=self.options.proposed,
            )
            self.report.annotations += 1
        self.report.tracks += 1


def _misfit(video: VisVideo, found: ProjectVideo) -> str:
    """Why the masks of ``video`` cannot go onto ``found``; empty when they can."""
    name = found.original_name
    if found.state != MediaItem.State.READY or not found.frame_count:
        return f"the video “{name}” it matches has no extracted frames yet ({found.state}): import once it is ready"
    if (found.width, found.height) != (video.width, video.height):
        return (
            f"it is {video.width}×{video.height} (width × height) in the file but the video “{name}” it matches is "
            f"{found.width}×{found.height}: its masks do not fit the video"
        )
    if found.frame_count != video.length:
        return (
            f"it has {video.length} frames in the file but the video “{name}” it matches has {found.frame_count}: "
            "its masks would land on the wrong frames"
        )
    return ""


@dataclass
class _Top:
    """The highest track number and stacking order a video's annotations use so far."""

    track: int
    z_order: int

    def next_track(self) -> int:
        self.track += 1
        return self.track

    def next_z(self) -> int:
        self.z_order += 1
        return self.z_order


def _tops(item_ids: list[int]) -> dict[int, _Top]:
    rows = (
        Annotation.objects.filter(media__in=item_ids)
        .order_by()
        .values("media_id")
        .annotate(track=Max("track"), z_order=Max("z_order"))
        .values_list("media_id", "track", "z_order")
    )
    found = {
        media_id: _Top(track if track is not None else 0, z if z is not None else -1) for media_id, track, z in rows
    }
    return {item_id: found.get(item_id, _Top(0, -1)) for item_id in item_ids}
