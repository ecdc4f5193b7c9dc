"""Evaluation of videos: region similarity J and boundary accuracy F per object (DAVIS' measures,
``video_evaluation``) between a comparison's prediction set and its ground truth (the sets of
``evaluation_sets``), beside the image figures of ``evaluation`` on the statistics page and in
``manage.py dataset_stats``.

Videos
------
In one project each video is compared with itself (for pre-annotations, only the videos people
have finished). Against another project, videos are matched by their original file name; a name
that is not unique in either project, or a pair of videos of different sizes or frame counts, is
skipped (and counted), and a video with no namesake is counted as without a match. Videos whose
frames are not extracted are left out.

Objects and pairs
-----------------
A set's objects on a video are its tracks: the annotations of one track number (two masks of one
track on one frame count as their union); an annotation without a track number is an object of its
own on its one frame. An annotation on no frame or beyond the video, or with a mask of another size,
is skipped and counted. Each ground-truth object is scored against one prediction object:

- in one project, the prediction object of the same track number (the same annotation, for one
  without a number): the sets are two views of the same tracks;
- against another project, where track numbers mean nothing, the prediction object it overlaps
  best: for every pair, the mean IoU over the frames where either is present (the pair's J), and
  pairs taken best first (ties: lower track numbers first), each object in one pair at most; a
  ground-truth object whose best remaining partner has J = 0 stays unpaired.

An unpaired ground-truth object scores 0 on every frame it is on. Prediction objects no
ground-truth object is paired with are counted but not scored (DAVIS scores the reference objects).

Figures: per object the means of J and F over the frames where it is in either set and J&F, their
mean; overall, the means over every scored object of every video compared (DAVIS' dataset means),
and J&F. Memory holds the RLE strings of one batch of videos (``VIDEO_BATCH``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from pycocotools import mask as coco_mask

from annotation.datasets.evaluation_sets import SKIP_NAME, AnnotationSet, Comparison, selected_rows
from annotation.datasets.tables import FLOAT, INT, Column, Table
from annotation.datasets.video_evaluation import evaluate_tracks
from annotation.datasets.video_tracks import coco_rle, most_frequent, rle_union
from annotation.models import MediaItem, Project

VIDEO_BATCH = 20
SKIP_VIDEO_SIZE = "different video size or frame count"
BY_NUMBER = "track number"
BY_IOU = "best mean IoU"


@dataclass(frozen=True)
class VideoPair:
    prediction_item: int
    truth_item: int
    name: str
    width: int
    height: int
    length: int


@dataclass
class VideoObject:
    """One object of a set on one video: ``{frame: RLE}`` and the label of most of its frames."""

    number: int | None
    frames: dict[int, dict] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return most_frequent(self.labels)


@dataclass
class ObjectFigures:
    video: str
    track: int | None
    label: str
    prediction_track: int | None
    prediction_label: str
    frames: int
    j: float | None
    f: float | None
    jf: float | None


@dataclass
class VideoEvaluation:
    pairing: str
    videos_compared: int = 0
    videos_unmatched: int = 0
    videos_skipped: dict[str, int] = field(default_factory=dict)
    prediction_objects: int = 0
    truth_objects: int = 0
    unpaired_prediction_objects: int = 0
    objects_skipped: int = 0
    objects: list[ObjectFigures] = field(default_factory=list)

    def _mean(self, key: str) -> float | None:
        values = [getattr(o, key) for o in self.objects if getattr(o, key) is not None]
        return sum(values) / len(values) if values else None

    @property
    def j_mean(self) -> float | None:
        return self._mean("j")

    @property
    def f_mean(self) -> float | None:
        return self._mean("f")

    @property
    def jf_mean(self) -> float | None:
        j, f = self.j_mean, self.f_mean
        return None if j is None or f is None else (j + f) / 2

    def tables(self) -> list[Table]:
        return [self.summary_table(), self.objects_table()]

    def summary_table(self) -> Table:
        table = Table(
            "evaluation_videos",
            "Video evaluation (J and F)",
            [Column("figure", "Figure"), Column("value", "Value", FLOAT, digits=4)],
            note=f"DAVIS' region similarity J and boundary accuracy F; objects paired by {self.pairing}",
        )
        rows: list[tuple[str, Any]] = [
            ("Videos compared", self.videos_compared),
            ("Videos without a match", self.videos_unmatched),
            *((f"Videos skipped: {reason}", n) for reason, n in sorted(self.videos_skipped.items())),
            ("Objects (prediction)", self.prediction_objects),
            ("Objects (ground truth)", self.truth_objects),
            ("Prediction objects not paired", self.unpaired_prediction_objects),
            ("Annotations skipped (no frame of the video, or mask size is not the video's)", self.objects_skipped),
            ("J mean", self.j_mean),
            ("F mean", self.f_mean),
            ("J&F mean", self.jf_mean),
        ]
        for name, value in rows:
            table.add(name, value)
        return table

    def objects_table(self) -> Table:
        table = Table(
            "evaluation_video_objects",
            "J and F per object",
            [
                Column("video", "Video"),
                Column("track", "Track", INT),
                Column("label", "Label"),
                Column("prediction_track", "Predicted track", INT),
                Column("frames", "Frames", INT),
                Column("j", "J", FLOAT),
                Column("f", "F", FLOAT),
                Column("jf", "J&F", FLOAT),
            ],
            note="Means over the frames where the object is in either set; a frame where it is in one only scores 0",
        )
        for o in self.objects:
            table.add(o.video, o.track, o.label, o.prediction_track, o.frames, o.j, o.f, o.jf)
        table.add("All objects", None, "", None, None, self.j_mean, self.f_mean, self.jf_mean)
        return table

    def as_dict(self) -> dict[str, Any]:
        return {
            "pairing": self.pairing,
            "videos_compared": self.videos_compared,
            "videos_unmatched": self.videos_unmatched,
            "videos_skipped": self.videos_skipped,
            "prediction_objects": self.prediction_objects,
            "truth_objects": self.truth_objects,
            "unpaired_prediction_objects": self.unpaired_prediction_objects,
            "objects_skipped": self.objects_skipped,
            "J_mean": self.j_mean,
            "F_mean": self.f_mean,
            "JF_mean": self.jf_mean,
            "objects": [
                {
                    "video": o.video,
                    "track": o.track,
                    "label": o.label,
                    "prediction_track": o.prediction_track,
                    "prediction_label": o.prediction_label,
                    "frames": o.frames,
                    "J_mean": o.j,
                    "F_mean": o.f,
                    "JF_mean": o.jf,
                }
                for o in self.objects
            ],
        }


# --- the videos ----------------------------------------------------------------------------------------


def _videos(project: Project, *, finished_only: bool) -> list[tuple[int, str, int, int, int]]:
    videos = MediaItem.objects.filter(project=project, kind=MediaItem.Kind.VIDEO, state=MediaItem.State.READY)
    if finished_only:
        videos = videos.filter(done_at__isnull=False)
    rows = videos.order_by("id").values_list("id", "original_name", "width", "height", "frame_count")
    return [row for row in rows if row[4]]


def _video_pairs(comparison: Comparison, result: VideoEvaluation) -> list[VideoPair]:
    predicted = _videos(comparison.prediction.project, finished_only=comparison.finished_only)
    if comparison.same_project:
        return [VideoPair(pk, pk, name, w, h, n) for pk, name, w, h, n in predicted]
    by_name: dict[str, list[tuple[int, str, int, int, int]]] = defaultdict(list)
    for row in _videos(comparison.truth.project, finished_only=False):
        by_name[row[1]].append(row)
    names = Counter(row[1] for row in predicted)
    skipped: Counter[str] = Counter()
    pairs = []
    for pk, name, w, h, n in predicted:
        matches = by_name.get(name, [])
        if not matches:
            result.videos_unmatched += 1
        elif len(matches) > 1 or names[name] > 1:
            skipped[SKIP_NAME] += 1
        elif matches[0][2:] != (w, h, n):
            skipped[SKIP_VIDEO_SIZE] += 1
        else:
            pairs.append(VideoPair(pk, matches[0][0], name, w, h, n))
    result.videos_skipped = dict(skipped)
    return pairs


def _batches(pairs: list[VideoPair]) -> Iterator[list[VideoPair]]:
    iterator = iter(pairs)
    while batch := list(islice(iterator, VIDEO_BATCH)):
        yield batch


# --- the objects ---------------------------------------------------------------------------------------


def _objects(
    selection: AnnotationSet, videos: dict[int, VideoPair], result: VideoEvaluation
) -> dict[int, dict[int, VideoObject]]:
    """``{item id: {object key: VideoObject}}``; the key is the track number, or minus the
    annotation's id for an annotation without one (track numbers are never negative)."""
    found: dict[int, dict[int, VideoObject]] = defaultdict(dict)
    for row in selected_rows(selection, list(videos), "id", "media_id", "label__name", "frame", "track", "rle"):
        video = videos[row["media_id"]]
        frame, rle = row["frame"], row["rle"]
        if (
            frame is None
            or frame >= video.length
            or not isinstance(rle, dict)
            or list(rle.get("size") or []) != [video.height, video.width]
        ):
            result.objects_skipped += 1
            continue
        key = row["track"] if row["track"] is not None else -row["id"]
        obj = found[row["media_id"]].setdefault(key, VideoObject(row["track"]))
        if frame in obj.frames:
            obj.frames[frame] = rle_union(obj.frames[frame], rle)
        else:
            obj.frames[frame] = rle
        obj.labels.append(row["label__name"])
    return found


def pair_j(a: VideoObject, b: VideoObject) -> float:
    """The mean IoU of two objects over the frames where either is present."""
    frames = set(a.frames) | set(b.frames)
    total = 0.0
    for frame in frames:
        if frame in a.frames and frame in b.frames:
            total += float(coco_mask.iou([coco_rle(a.frames[frame])], [coco_rle(b.frames[frame])], [0])[0][0])
    return total / len(frames) if frames else 0.0


def best_iou_pairs(truth: dict[int, VideoObject], predicted: dict[int, VideoObject]) -> dict[int, int]:
    """``{truth key: prediction key}``: pairs by mean IoU, best first (see the module's text)."""
    scored = [
        (pair_j(t, p), t_key, p_key)
        for t_key, t in truth.items()
        for p_key, p in predicted.items()
        if set(t.frames) & set(p.frames)
    ]
    scored.sort(key=lambda entry: (-entry[0], _order(entry[1]), _order(entry[2])))
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for j, t_key, p_key in scored:
        if j <= 0:
            break
        if t_key in pairs or p_key in taken:
            continue
        pairs[t_key] = p_key
        taken.add(p_key)
    return pairs


def _order(key: int) -> tuple[int, int]:
    """Tracks by number, then the objects without one."""
    return (0, key) if key >= 0 else (1, -key)


def _score_video(
    video: VideoPair,
    truth: dict[int, VideoObject],
    predicted: dict[int, VideoObject],
    *,
    by_number: bool,
    result: VideoEvaluation,
) -> None:
    pairs = {key: key for key in truth if key in predicted} if by_number else best_iou_pairs(truth, predicted)
    result.truth_objects += len(truth)
    result.prediction_objects += len(predicted)
    result.unpaired_prediction_objects += len(set(predicted) - set(pairs.values()))
    reference = {key: obj.frames for key, obj in truth.items()}
    # Each prediction object under the key of the ground-truth object it is paired with: an unpaired
    # ground-truth object finds none, and scores against an empty one.
    candidate = {key: predicted[partner].frames for key, partner in pairs.items()}
    scores = evaluate_tracks(reference, candidate, length=video.length)
    for key in sorted(truth, key=_order):
        obj, figures = truth[key], scores["objects"][key]
        partner = predicted.get(pairs[key]) if key in pairs else None
        result.objects.append(
            ObjectFigures(
                video=video.name,
                track=obj.number,
                label=obj.label,
                prediction_track=partner.number if partner is not None else None,
                prediction_label=partner.label if partner is not None else "",
                frames=figures["frames"],
                j=figures["J_mean"],
                f=figures["F_mean"],
                jf=figures["JF_mean"],
            )
        )


def evaluate_videos(comparison: Comparison) -> VideoEvaluation | None:
    """J and F of the comparison's videos (see the module's text); None when neither project
    holds a video."""
    projects = {comparison.prediction.project.pk, comparison.truth.project.pk}
    if not MediaItem.objects.filter(project__in=projects, kind=MediaItem.Kind.VIDEO).exists():
        return None
    result = VideoEvaluation(pairing=BY_NUMBER if comparison.same_project else BY_IOU)
    pairs = _video_pairs(comparison, result)
    result.videos_compared = len(pairs)
    for batch in _batches(pairs):
        predicted = _objects(comparison.prediction, {pair.prediction_item: pair for pair in batch}, result)
        truth = _objects(comparison.truth, {pair.truth_item: pair for pair in batch}, result)
        for pair in batch:
            _score_video(
                pair,
                truth.get(pair.truth_item, {}),
                predicted.get(pair.prediction_item, {}),
                by_number=comparison.same_project,
                result=result,
            )
    return result
