"""Reading a COCO file for an import: parse the JSON and check every entry before anything is
written, turning each segmentation into the platform's canonical compressed RLE.

A file is refused whole (``ImportRefused``) when anything in it is malformed; the refusal names the
first ``MAX_PROBLEMS`` problems, each with its JSON path and ids (``annotations[3] (id 12): …``),
and counts the rest. What is checked:

- the file: at most ``max_json_bytes()`` bytes (setting ``DATASET_IMPORT_MAX_JSON_BYTES``, 200 MB by
  default: the file is read whole, so the cap bounds the memory an import takes), UTF-8 JSON without
  ``NaN`` or ``Infinity``, an object holding the lists ``images``, ``annotations`` and ``categories``;
- images: ``id`` (a whole number, unique), ``file_name`` (a non-empty text), ``width`` and
  ``height`` (whole numbers of at least 1 whose product is within ``settings.MAX_IMAGE_PIXELS``),
  ``attributes`` an object when present;
- categories: ``id`` (unique), ``name`` (a non-empty text); ``questions`` (the platform's own extra
  key) a list of ``{text, choices, default}`` that the platform could ask;
- annotations: ``id`` (unique), ``image_id`` and ``category_id`` naming an image and a category of
  the file, a ``segmentation`` (compressed RLE with a counts string, uncompressed RLE with a counts
  list, or polygons) or, for boxes alone, a ``bbox``. An RLE's ``size`` must be the image's
  ``[height, width]`` and its counts must decode to exactly that many pixels; a polygon is a list of
  an even number (at least six) of finite numbers, reaching no further outside the image than the
  studio allows; a ``bbox`` ``[x, y, width, height]`` must lie within the image (to within
  ``BOX_TOLERANCE`` pixels, for tools that round outwards).

Polygons and boxes are rasterised by pycocotools' ``frPyObjects`` (polygons of one object merged),
exactly as COCO's own tools read them; every mask is then brought to canonical form by
``annotation.masks.rle_validate``. An annotation whose mask is empty is not an error: it is skipped
and reported by the import.

The platform's export writes a few extra keys (see ``coco_export``); they are read back:
categories' ``color`` and ``questions``, annotations' and images' ``attributes``
(``{question text: answer}``), annotations' ``score``, and the top-level ``item_questions`` and
``classification_labels``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from pycocotools import mask as coco_mask

from annotation.masks import GEOMETRY_MARGIN, box_to_rle, rle_validate

MAX_JSON_BYTES = 200 * 1024**2
MAX_PROBLEMS = 20
BOX_TOLERANCE = 1.0
NAME_MAX = 100  # a label's name
QUESTION_TEXT_MAX = 200
CHOICE_MAX = 100
CHOICES_MAX = 50
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def max_json_bytes() -> int:
    return int(getattr(settings, "DATASET_IMPORT_MAX_JSON_BYTES", MAX_JSON_BYTES))


class ImportRefused(Exception):
    """The file cannot be imported; nothing was. ``problems`` are the first few, ``total`` all."""

    def __init__(self, problems: list[str], *, total: int | None = None, file: str = "") -> None:
        self.problems = problems
        self.total = total if total is not None else len(problems)
        self.file = file
        super().__init__(self.message)

    @property
    def message(self) -> str:
        what = f"“{self.file}”" if self.file else "The file"
        count = f"{self.total} problem{'s' if self.total != 1 else ''}"
        if self.total > len(self.problems):
            count += f", the first {len(self.problems)} listed"
        return f"{what} was refused and nothing was imported ({count}):\n" + "\n".join(
            f"- {problem}" for problem in self.problems
        )

    def as_validation_error(self) -> ValidationError:
        return ValidationError(self.message, code="refused")


class Problems:
    """Collects what is wrong with a file: the first ``MAX_PROBLEMS`` in full, and a count."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_PROBLEMS:
            self.listed.append(f"{path}: {message}")

    def __bool__(self) -> bool:
        return self.count > 0

    def refuse(self, file: str) -> None:
        if self.count:
            raise ImportRefused(self.listed, total=self.count, file=file)


@dataclass(frozen=True)
class QuestionSpec:
    text: str
    choices: list[str]
    default: str = ""


@dataclass
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int
    attributes: dict[str, Any]
    path: str  # where it is in the file, for messages


# The label kinds a category may name (the platform's export writes "kind"); others are masks.
OBJECT_KINDS = ("mask", "box")


@dataclass
class CocoCategory:
    id: int
    name: str
    color: str | None
    questions: list[QuestionSpec]
    kind: str | None = None


@dataclass
class CocoAnnotation:
    id: int
    image_id: int
    category_id: int
    rle: dict | None  # canonical compressed RLE; None when the mask is empty
    attributes: dict[str, Any]
    score: float | None
    box: list[float] | None = None  # the corners [x0, y0, x1, y1] of an object given by its bbox alone


@dataclass
class ClassificationSpec:
    name: str
    color: str | None
    questions: list[QuestionSpec]


@dataclass
class CocoFile:
    images: dict[int, CocoImage]
    categories: dict[int, CocoCategory]
    annotations: list[CocoAnnotation]
    item_questions: list[QuestionSpec] = field(default_factory=list)
    classification_labels: list[ClassificationSpec] = field(default_factory=list)


# --- the file ------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes, *, file: str) -> dict[str, Any]:
    """The top-level object of a COCO file; ImportRefused for what is not one."""
    limit = max_json_bytes()
    if len(data) > limit:
        raise ImportRefused([f"the file is {len(data)} bytes; the limit for a COCO file is {limit} bytes"], file=file)
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise ImportRefused(["not JSON: the file is not UTF-8 text"], file=file) from None
    except json.JSONDecodeError as exc:
        raise ImportRefused([f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"], file=file) from None
    except RecursionError:
        raise ImportRefused(["not a COCO file: its JSON is nested too deeply"], file=file) from None
    except ValueError as exc:
        raise ImportRefused([f"not JSON: {exc}"], file=file) from None
    if not isinstance(value, dict):
        raise ImportRefused(
            [
                f"not a COCO file: the JSON is {_kind(value)}, not an object with "
                "“images”, “annotations” and “categories”"
            ],
            file=file,
        )
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"


def read_coco(data: bytes, *, file: str, create_labels: bool = False) -> CocoFile:
    """Parse and check a whole COCO file; ImportRefused naming the first problems."""
    root = parse_json(data, file=file)
    return check_coco(root, file=file, create_labels=create_labels)


def check_coco(root: dict[str, Any], *, file: str, create_labels: bool = False) -> CocoFile:
    problems = Problems()
    lists: dict[str, list] = {}
    for key in ("images", "annotations", "categories"):
        if key not in root:
            problems.add(
                key, f"missing: a COCO file has the lists “images”, “annotations” and “categories” (no “{key}”)"
            )
        elif not isinstance(root[key], list):
            problems.add(key, f"must be a list, not {_kind(root[key])}")
        else:
            lists[key] = root[key]
    problems.refuse(file)
    images, image_ids = _images(lists["images"], problems)
    categories, category_ids = _categories(lists["categories"], problems, create_labels=create_labels)
    annotations = _annotations(lists["annotations"], images, categories, problems, image_ids, category_ids)
    item_questions = _question_list(root.get("item_questions"), "item_questions", problems)
    classification = _classification_labels(root.get("classification_labels"), problems)
    problems.refuse(file)
    return CocoFile(images, categories, annotations, item_questions, classification)


# --- pieces --------------------------------------------------------------------------------------


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _entry_path(key: str, index: int, entry: Any) -> str:
    if isinstance(entry, dict) and _whole(entry.get("id")):
        return f"{key}[{index}] (id {entry['id']})"
    return f"{key}[{index}]"


def _entries(
    raw: list, key: str, required: tuple[str, ...], problems: Problems
) -> tuple[list[tuple[int, str, dict]], set[int]]:
    """The entries of a list that are objects with the required keys and a whole-number unique id;
    and the ids of every entry that has one (so that what refers to a refused entry adds no second
    problem)."""
    good: list[tuple[int, str, dict]] = []
    seen: dict[int, int] = {}
    for index, entry in enumerate(raw):
        path = _entry_path(key, index, entry)
        if not isinstance(entry, dict):
            problems.add(path, f"must be an object, not {_kind(entry)}")
            continue
        if _whole(entry.get("id")) and entry["id"] in seen:
            problems.add(path, f"duplicate id {entry['id']} (also {key}[{seen[entry['id']]}])")
            continue
        if _whole(entry.get("id")):
            seen[entry["id"]] = index
        missing = [name for name in required if name not in entry]
        if missing:
            problems.add(path, f"missing {', '.join(f'“{name}”' for name in missing)}")
            continue
        if not _whole(entry["id"]):
            problems.add(path, f"“id” must be a whole number, not {_kind(entry['id'])}")
            continue
        good.append((index, path, entry))
    return good, set(seen)


def _images(raw: list, problems: Problems) -> tuple[dict[int, CocoImage], set[int]]:
    """The good images, and the ids of every image entry (bad ones too: their problem is told once)."""
    images: dict[int, CocoImage] = {}
    limit = settings.MAX_IMAGE_PIXELS
    entries, ids = _entries(raw, "images", ("id", "file_name", "width", "height"), problems)
    for _index, path, entry in entries:
        name, width, height = entry["file_name"], entry["width"], entry["height"]
        ok = True
        if not isinstance(name, str) or not name.strip():
            problems.add(path, "“file_name” must be a non-empty text")
            ok = False
        if not (_whole(width) and _whole(height)) or width < 1 or height < 1:
            problems.add(
                path, f"absurd size {width!r}×{height!r}: width and height must be whole numbers of at least 1"
            )
            ok = False
        elif width * height > limit:
            problems.add(path, f"absurd size {width}×{height}: more than the limit of {limit} pixels")
            ok = False
        attributes = entry.get("attributes", {})
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, dict):
            problems.add(path, f"“attributes” must be an object, not {_kind(attributes)}")
            ok = False
        if ok:
            images[entry["id"]] = CocoImage(entry["id"], name.strip(), width, height, attributes, path)
    return images, ids


def _colour(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and HEX_COLOUR.match(value) else None


def _categories(raw: list, problems: Problems, *, create_labels: bool) -> tuple[dict[int, CocoCategory], set[int]]:
    categories: dict[int, CocoCategory] = {}
    entries, ids = _entries(raw, "categories", ("id", "name"), problems)
    for _index, path, entry in entries:
        name = entry["name"]
        if not isinstance(name, str) or not name.strip():
            problems.add(path, "“name” must be a non-empty text")
            continue
        if create_labels and len(name.strip()) > NAME_MAX:
            problems.add(path, f"the name is {len(name.strip())} characters; a label's name has at most {NAME_MAX}")
            continue
        questions = _question_list(entry.get("questions"), f"{path}.questions", problems)
        kind = entry.get("kind") if entry.get("kind") in OBJECT_KINDS else None
        categories[entry["id"]] = CocoCategory(entry["id"], name.strip(), _colour(entry.get("color")), questions, kind)
    return categories, ids


def _question_list(raw: Any, path: str, problems: Problems) -> list[QuestionSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add(path, f"must be a list of questions, not {_kind(raw)}")
        return []
    questions = []
    for index, entry in enumerate(raw):
        question = _question(entry, f"{path}[{index}]", problems)
        if question is not None:
            questions.append(question)
    return questions


def _question(entry: Any, path: str, problems: Problems) -> QuestionSpec | None:
    """A question as the platform could ask it (the rules of ``Question.clean``)."""
    if not isinstance(entry, dict):
        problems.add(path, f"a question must be an object with “text” and “choices”, not {_kind(entry)}")
        return None
    text, choices, default = entry.get("text"), entry.get("choices"), entry.get("default") or ""
    if not isinstance(text, str) or not text.strip() or len(text.strip()) > QUESTION_TEXT_MAX:
        problems.add(path, f"“text” must be a non-empty text of at most {QUESTION_TEXT_MAX} characters")
        return None
    if (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= CHOICES_MAX
        or not all(isinstance(c, str) and c.strip() and len(c.strip()) <= CHOICE_MAX for c in choices)
    ):
        problems.add(
            path, f"“choices” must be a list of 2 to {CHOICES_MAX} non-empty texts of at most {CHOICE_MAX} characters"
        )
        return None
    cleaned = [c.strip() for c in choices]
    if len({c.casefold() for c in cleaned}) != len(cleaned):
        problems.add(path, "“choices” must differ from each other")
        return None
    if not isinstance(default, str) or (default.strip() and default.strip() not in cleaned):
        problems.add(path, "“default” must be one of the choices (or empty)")
        return None
    return QuestionSpec(text.strip(), cleaned, default.strip())


def _classification_labels(raw: Any, problems: Problems) -> list[ClassificationSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add("classification_labels", f"must be a list, not {_kind(raw)}")
        return []
    labels = []
    for index, entry in enumerate(raw):
        path = f"classification_labels[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            problems.add(path, "must be an object with a non-empty “name”")
            continue
        questions = _question_list(entry.get("questions"), f"{path}.questions", problems)
        labels.append(ClassificationSpec(entry["name"].strip()[:NAME_MAX], _colour(entry.get("color")), questions))
    return labels


# --- annotations and their geometry -----------------------------------------------------------------


def _annotations(
    raw: list,
    images: dict[int, CocoImage],
    categories: dict[int, CocoCategory],
    problems: Problems,
    image_ids: set[int],
    category_ids: set[int],
) -> list[CocoAnnotation]:
    annotations = []
    entries, _ids = _entries(raw, "annotations", ("id", "image_id", "category_id"), problems)
    for _index, path, entry in entries:
        image_id, category_id = entry["image_id"], entry["category_id"]
        image = images.get(image_id) if _whole(image_id) else None
        ok = True
        # An annotation of an image (or category) whose own entry is refused adds no problem of its own.
        if image is None and not (_whole(image_id) and image_id in image_ids):
            problems.add(path, f"“image_id” {image_id!r} is not the id of an image of the file")
        if not _whole(category_id) or category_id not in categories:
            if not (_whole(category_id) and category_id in category_ids):
                problems.add(path, f"“category_id” {category_id!r} is not the id of a category of the file")
            ok = False
        attributes = entry.get("attributes", {})
        if attributes is None:
            attributes = {}
        if not isinstance(attributes, dict):
            problems.add(path, f"“attributes” must be an object, not {_kind(attributes)}")
            ok = False
        if image is None:
            continue  # the geometry cannot be checked without the image's size
        geometry = _geometry(entry, image, path, problems)
        if not ok or geometry is None:
            continue
        rle, box = geometry
        score = entry.get("score")
        annotations.append(
            CocoAnnotation(
                id=entry["id"],
                image_id=image_id,
                category_id=category_id,
                rle=rle,
                attributes=attributes,
                score=float(score) if _number(score) else None,
                box=box,
            )
        )
    return annotations


def _geometry(
    entry: dict, image: CocoImage, path: str, problems: Problems
) -> tuple[dict | None, list[float] | None] | None:
    """``(canonical RLE or None when empty, box corners when the object is its bbox)``; None after a
    problem was recorded."""
    bbox = entry.get("bbox")
    if bbox is not None and not _bbox_ok(bbox, image, path, problems):
        return None
    try:
        return _segmentation(entry.get("segmentation"), bbox, image, path, problems)
    except _Recorded:
        return None


def _segmentation(
    segmentation: Any, bbox: Any, image: CocoImage, path: str, problems: Problems
) -> tuple[dict | None, list[float] | None] | None:
    height, width = image.height, image.width
    if segmentation is None or segmentation == []:
        if bbox is None:
            problems.add(path, "missing “segmentation” (and no “bbox” to take the object from)")
            return None
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            return None, None
        corners = [x, y, x + w, y + h]
        try:
            rle = box_to_rle(corners, height=height, width=width)
        except ValidationError as exc:
            problems.add(path, " ".join(exc.messages))
            raise _Recorded from None
        return _canonical(rle, image, path, problems), corners
    if isinstance(segmentation, dict):
        return _rle(segmentation, image, path, problems), None
    if isinstance(segmentation, list):
        return _polygons(segmentation, image, path, problems), None
    problems.add(path, f"“segmentation” must be an RLE object or a list of polygons, not {_kind(segmentation)}")
    return None


def _bbox_ok(bbox: Any, image: CocoImage, path: str, problems: Problems) -> bool:
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        problems.add(path, "“bbox” must be four finite numbers [x, y, width, height]")
        return False
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        problems.add(path, f"“bbox” {bbox} has a negative width or height")
        return False
    tolerance = BOX_TOLERANCE
    if x < -tolerance or y < -tolerance or x + w > image.width + tolerance or y + h > image.height + tolerance:
        problems.add(
            path,
            f"“bbox” {bbox} lies outside image {image.id}, which is {image.width}×{image.height} (width × height)",
        )
        return False
    return True


def _canonical(rle: dict, image: CocoImage, path: str, problems: Problems) -> dict | None:
    try:
        return rle_validate(rle, height=image.height, width=image.width)
    except ValidationError as exc:
        if exc.code == "empty":
            return None
        problems.add(path, " ".join(exc.messages))
        raise _Recorded from None


class _Recorded(Exception):
    """A problem was recorded for this annotation: its geometry is not used."""


def _rle(segmentation: dict, image: CocoImage, path: str, problems: Problems) -> dict | None:
    size = segmentation.get("size")
    if "counts" not in segmentation or size is None:
        problems.add(path, "the RLE “segmentation” needs “size” [height, width] and “counts”")
        raise _Recorded
    if size != [image.height, image.width]:
        problems.add(
            path,
            f"the RLE's size {size!r} is not image {image.id}'s [height, width] [{image.height}, {image.width}]",
        )
        raise _Recorded
    counts = segmentation["counts"]
    if not isinstance(counts, str | list):
        problems.add(path, f"the RLE's “counts” must be a text or a list of run lengths, not {_kind(counts)}")
        raise _Recorded
    return _canonical({"size": size, "counts": counts}, image, path, problems)


def _polygons(polygons: list, image: CocoImage, path: str, problems: Problems) -> dict | None:
    height, width = image.height, image.width
    for index, polygon in enumerate(polygons):
        where = f"{path}.segmentation[{index}]"
        if not isinstance(polygon, list) or not all(_number(v) for v in polygon):
            problems.add(where, "a polygon must be a list of finite numbers [x1, y1, x2, y2, …]")
            raise _Recorded
        if len(polygon) % 2:
            problems.add(where, f"a polygon needs x, y pairs: it has an odd count of {len(polygon)} numbers")
            raise _Recorded
        if len(polygon) < 6:
            problems.add(where, f"a polygon needs at least three points (six numbers), not {len(polygon) // 2}")
            raise _Recorded
        xs, ys = polygon[0::2], polygon[1::2]
        if (
            min(xs) < -GEOMETRY_MARGIN * width
            or max(xs) > (1 + GEOMETRY_MARGIN) * width
            or min(ys) < -GEOMETRY_MARGIN * height
            or max(ys) > (1 + GEOMETRY_MARGIN) * height
        ):
            problems.add(where, f"the polygon reaches far outside image {image.id} ({width}×{height})")
            raise _Recorded
    rle = coco_mask.merge(coco_mask.frPyObjects([[float(v) for v in p] for p in polygons], height, width))
    counts = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) else rle["counts"]
    return _canonical({"size": [height, width], "counts": counts}, image, path, problems)
