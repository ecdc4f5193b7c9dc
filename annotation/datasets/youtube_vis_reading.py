"""Checking a YouTube-VIS file as a loader would, and reading one whole for an import.

``check_youtube_vis`` is the check an export passes before it is handed out: every problem a
loader (youtube-vos/cocoapi's ``ytvos.py`` and the evaluation built on it) would meet, each with its
JSON path. ``read_youtube_vis`` reads a file for an import as pre-annotations and refuses it whole
(``ImportRefused``, naming the first problems, as ``coco_reading`` does) before anything is
returned. Both check:

- the top level: an object with the lists ``videos``, ``annotations`` and ``categories``;
- ids: whole numbers, unique within their list; a track's ``video_id`` and ``category_id`` name an
  entry of the file;
- videos: ``width`` and ``height`` whole numbers of at least 1 (within ``MAX_IMAGE_PIXELS`` for an
  import), ``length`` at least 1 and ``file_names`` a list of that many non-empty texts;
- tracks: ``segmentations`` (and ``bboxes`` and ``areas`` where given) lists of the video's
  ``length``; each frame null or an RLE whose ``size`` is the video's ``[height, width]`` and whose
  counts decode to exactly that many pixels, compressed (a counts text) or uncompressed (a list of
  run lengths, converted as loaders do); polygons are refused; ``width``, ``height`` and ``length``
  where given equal the video's; ``iscrowd`` where given 0 or 1; ``attributes`` an object.

``check_youtube_vis`` also wants the keys a loader reads (``bboxes``, ``areas``, ``iscrowd``,
``width``, ``height``, ``length``) and each frame's box within ``BOX_TOLERANCE`` of pycocotools'
``toBbox`` and its area equal to ``area`` of the frame's mask, both null on a null frame. An import
recomputes boxes and areas from the masks, so ``read_youtube_vis`` does not hold a file to them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from pycocotools import mask as coco_mask

from annotation.datasets.coco_reading import ImportRefused, Problems, max_json_bytes
from annotation.datasets.youtube_vis import FrameMask, VisCategory, VisFile, VisTrack, VisVideo
from annotation.masks import MAX_PIXELS, rle_validate

BOX_TOLERANCE = 1e-6  # a loader's recomputed box against the file's, per coordinate
TRACK_KEYS = ("id", "video_id", "category_id", "segmentations")
# Keys a loader reads that an import can do without (bboxes and areas are recomputed from the masks).
EXPORT_TRACK_KEYS = ("bboxes", "areas", "iscrowd", "width", "height", "length")


class _EveryProblem(Problems):
    """Lists every problem, not only the first few."""

    def add(self, path: str, message: str) -> None:
        self.count += 1
        self.listed.append(f"{path}: {message}")


class _Recorded(Exception):
    """A problem was recorded for this frame."""


def check_youtube_vis(root: Any) -> list[str]:
    """Every problem a YouTube-VIS loader would meet in ``root`` (the parsed JSON), each with its
    path (``annotations[3].segmentations[7]: …``); an empty list when there is none."""
    problems = _EveryProblem()
    _read(root, problems, strict=True, pixel_limit=MAX_PIXELS)
    return problems.listed


def read_youtube_vis(data: bytes, *, file: str = "") -> VisFile:
    """A whole YouTube-VIS file, checked before anything is returned; ImportRefused naming the
    first problems. Masks come back as canonical compressed RLE (uncompressed RLE converted), empty
    ones left out as absent frames; a track with no mask at all is kept (with no frames)."""
    root = _parse(data, file)
    problems = Problems()
    result = _read(root, problems, strict=False, pixel_limit=settings.MAX_IMAGE_PIXELS)
    problems.refuse(file)
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(data: bytes, file: str) -> Any:
    limit = max_json_bytes()
    if len(data) > limit:
        raise ImportRefused(
            [f"the file is {len(data)} bytes; the limit for a dataset file is {limit} bytes"], file=file
        )
    try:
        return json.loads(data, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ImportRefused(["not JSON: the file is not UTF-8 text"], file=file) from None
    except json.JSONDecodeError as exc:
        raise ImportRefused([f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"], file=file) from None
    except RecursionError:
        raise ImportRefused(["not a YouTube-VIS file: its JSON is nested too deeply"], file=file) from None
    except ValueError as exc:
        raise ImportRefused([f"not JSON: {exc}"], file=file) from None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read(root: Any, problems: Problems, *, strict: bool, pixel_limit: int) -> VisFile:
    if not isinstance(root, dict):
        problems.add("the file", "must be a JSON object with the lists “videos”, “annotations” and “categories”")
        return VisFile({}, {}, [])
    lists: dict[str, list] = {}
    for key in ("videos", "annotations", "categories"):
        if not isinstance(root.get(key), list):
            what = "missing" if key not in root else "not a list"
            problems.add(key, f"{what}: a YouTube-VIS file has the lists “videos”, “annotations” and “categories”")
        else:
            lists[key] = root[key]
    if len(lists) < 3:
        return VisFile({}, {}, [])
    videos, video_ids = _videos(lists["videos"], problems, pixel_limit)
    categories, category_ids = _categories(lists["categories"], problems)
    known = _Known(videos, video_ids, categories, category_ids)
    tracks = _tracks(lists["annotations"], known, problems, strict=strict)
    return VisFile(videos, categories, tracks)


def _entries(raw: list, key: str, required: tuple[str, ...], problems: Problems) -> tuple[list, set[int]]:
    """``(path, entry)`` of the entries that are objects with the required keys and a whole-number
    id not given before; and every id given (a reference to a refused entry adds no problem)."""
    good: list[tuple[str, dict]] = []
    seen: dict[int, int] = {}
    for index, entry in enumerate(raw):
        path = f"{key}[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, "must be an object")
            continue
        entry_id = entry.get("id")
        if _whole(entry_id) and entry_id in seen:
            problems.add(path, f"duplicate id {entry_id} (also {key}[{seen[entry_id]}])")
            continue
        if _whole(entry_id):
            seen[entry_id] = index
        missing = [name for name in required if name not in entry]
        if missing:
            problems.add(path, f"missing {', '.join(f'“{name}”' for name in missing)}")
        elif not _whole(entry_id):
            problems.add(path, f"“id” must be a whole number, not {entry_id!r}")
        else:
            good.append((path, entry))
    return good, set(seen)


def _videos(raw: list, problems: Problems, pixel_limit: int) -> tuple[dict[int, VisVideo], set[int]]:
    videos: dict[int, VisVideo] = {}
    entries, ids = _entries(raw, "videos", ("id", "width", "height", "length", "file_names"), problems)
    for path, entry in entries:
        width, height, length, names = entry["width"], entry["height"], entry["length"], entry["file_names"]
        ok = True
        if not (_whole(width) and _whole(height)) or width < 1 or height < 1:
            problems.add(
                path, f"absurd size {width!r}×{height!r}: width and height must be whole numbers of at least 1"
            )
            ok = False
        elif width * height > pixel_limit:
            problems.add(path, f"absurd size {width}×{height}: more than the limit of {pixel_limit} pixels")
            ok = False
        if not _whole(length) or length < 1:
            problems.add(path, f"“length” must be a whole number of frames of at least 1, not {length!r}")
            ok = False
        if not isinstance(names, list) or not all(isinstance(name, str) and name.strip() for name in names):
            problems.add(path, "“file_names” must be a list of non-empty texts, one per frame")
            ok = False
        elif _whole(length) and len(names) != length:
            problems.add(path, f"“file_names” has {len(names)} entries but “length” is {length}")
            ok = False
        if ok:
            videos[entry["id"]] = VisVideo(entry["id"], list(names), width, height)
    return videos, ids


def _categories(raw: list, problems: Problems) -> tuple[dict[int, VisCategory], set[int]]:
    categories: dict[int, VisCategory] = {}
    entries, ids = _entries(raw, "categories", ("id", "name"), problems)
    for path, entry in entries:
        name, supercategory = entry["name"], entry.get("supercategory") or ""
        if not isinstance(name, str) or not name.strip():
            problems.add(path, "“name” must be a non-empty text")
            continue
        extra = {key: value for key, value in entry.items() if key not in ("id", "name", "supercategory")}
        supercategory = supercategory if isinstance(supercategory, str) else ""
        categories[entry["id"]] = VisCategory(entry["id"], name.strip(), supercategory, extra)
    return categories, ids


@dataclass
class _Known:
    videos: dict[int, VisVideo]
    video_ids: set[int]  # every video id given, good entries or not
    categories: dict[int, VisCategory]
    category_ids: set[int]


def _tracks(raw: list, known: _Known, problems: Problems, *, strict: bool) -> list[VisTrack]:
    required = TRACK_KEYS + EXPORT_TRACK_KEYS if strict else TRACK_KEYS
    entries, _ids = _entries(raw, "annotations", required, problems)
    tracks = []
    for path, entry in entries:
        track = _track(entry, path, known, problems, strict=strict)
        if track is not None:
            tracks.append(track)
    return tracks


def _track(entry: dict, path: str, known: _Known, problems: Problems, *, strict: bool) -> VisTrack | None:
    video_id, category_id = entry["video_id"], entry["category_id"]
    video = known.videos.get(video_id) if _whole(video_id) else None
    ok = True
    if video is None and not (_whole(video_id) and video_id in known.video_ids):
        problems.add(path, f"“video_id” {video_id!r} is not the id of a video of the file")
    if not _whole(category_id) or category_id not in known.categories:
        if not (_whole(category_id) and category_id in known.category_ids):
            problems.add(path, f"“category_id” {category_id!r} is not the id of a category of the file")
        ok = False
    attributes = entry.get("attributes")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, dict):
        problems.add(path, "“attributes” must be an object")
        ok = False
    if "iscrowd" in entry and entry["iscrowd"] not in (0, 1):
        problems.add(path, f"“iscrowd” must be 0 or 1, not {entry['iscrowd']!r}")
        ok = False
    if video is None:
        return None  # the frames cannot be checked without the video
    for key, value in (("width", video.width), ("height", video.height), ("length", video.length)):
        if key in entry and entry[key] != value:
            problems.add(path, f"“{key}” is {entry[key]!r} but video {video.id}'s is {value}")
            ok = False
    frames = _frames(entry, path, video, problems, strict=strict)
    if not ok or frames is None:
        return None
    return VisTrack(entry["id"], video_id, category_id, frames, attributes)


def _frame_lists(entry: dict, path: str, video: VisVideo, problems: Problems) -> dict[str, list] | None:
    """The track's per-frame lists that it has, each of the video's length; None after a problem."""
    lists: dict[str, list] = {}
    ok = True
    for key in ("segmentations", "bboxes", "areas"):
        if key not in entry:
            continue
        value = entry[key]
        if not isinstance(value, list):
            problems.add(
                f"{path}.{key}", f"must be a list of {video.length} entries, one per frame (null where absent)"
            )
            ok = False
        elif len(value) != video.length:
            problems.add(f"{path}.{key}", f"has {len(value)} entries but video {video.id} has {video.length} frames")
            ok = False
        else:
            lists[key] = value
    return lists if ok else None


def _frames(entry: dict, path: str, video: VisVideo, problems: Problems, *, strict: bool) -> dict[int, dict] | None:
    """The track's masks ``{frame: canonical RLE}``; None after a problem was recorded."""
    lists = _frame_lists(entry, path, video, problems)
    if lists is None:
        return None
    frames: dict[int, dict] = {}
    ok = True
    for index, segmentation in enumerate(lists["segmentations"]):
        try:
            mask = _frame_mask(segmentation, video, f"{path}.segmentations[{index}]", problems)
        except _Recorded:
            ok = False
            continue
        if mask is not None and mask.rle:
            frames[index] = mask.rle
        if strict:
            ok &= _box_and_area(mask, lists, index, path, problems)
    return frames if ok else None


def _frame_mask(segmentation: Any, video: VisVideo, path: str, problems: Problems) -> FrameMask | None:
    """None for an absent frame; a FrameMask (with an empty ``rle`` for an empty mask) otherwise."""
    if segmentation is None:
        return None
    if isinstance(segmentation, list):
        problems.add(path, "polygons are not read: give each frame's mask as RLE {“size”, “counts”} (or null)")
        raise _Recorded
    if not isinstance(segmentation, dict) or "size" not in segmentation or "counts" not in segmentation:
        problems.add(path, "must be null or an RLE object with “size” [height, width] and “counts”")
        raise _Recorded
    if segmentation["size"] != [video.height, video.width]:
        problems.add(
            path,
            f"the RLE's size {segmentation['size']!r} is not video {video.id}'s [height, width] "
            f"[{video.height}, {video.width}]",
        )
        raise _Recorded
    if not isinstance(segmentation["counts"], str | list):
        problems.add(path, "the RLE's “counts” must be a text or a list of run lengths")
        raise _Recorded
    try:
        rle = rle_validate(segmentation, height=video.height, width=video.width)
    except ValidationError as exc:
        if exc.code == "empty":
            return FrameMask(0, {}, [0.0, 0.0, 0.0, 0.0], 0)
        problems.add(path, " ".join(exc.messages))
        raise _Recorded from None
    return FrameMask(0, rle, [float(v) for v in coco_mask.toBbox(rle)], int(coco_mask.area(rle)))


def _box_and_area(mask: FrameMask | None, lists: dict[str, list], index: int, path: str, problems: Problems) -> bool:
    ok = True
    bbox, area = lists["bboxes"][index], lists["areas"][index]
    if mask is None:
        for key, value in (("bboxes", bbox), ("areas", area)):
            if value is not None:
                problems.add(f"{path}.{key}[{index}]", f"must be null: the frame's segmentation is null, not {value!r}")
                ok = False
        return ok
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(_number(v) for v in bbox)
        or any(abs(v - w) > BOX_TOLERANCE for v, w in zip(bbox, mask.bbox, strict=True))
    ):
        problems.add(f"{path}.bboxes[{index}]", f"is {bbox!r} but the frame's mask has the box {mask.bbox}")
        ok = False
    if not _number(area) or area != mask.area:
        problems.add(f"{path}.areas[{index}]", f"is {area!r} but the frame's mask has {mask.area} pixels")
        ok = False
    return ok
