"""Mask PNGs out of a project: per image one semantic PNG and one instance PNG, an index of the
instances, and ``classes.json`` saying what the pixel values mean.

- ``masks/semantic/<stem>.png``: 8-bit palette ("P") PNG; pixel value = the class index (0 =
  background, then the mask and box labels in label order from 1); the palette holds the labels'
  colours, so the PNG shows as a colour mask in any viewer.
- ``masks/instances/<stem>.png``: 16-bit grey ("I;16") PNG; pixel value = the object's place in
  z order (1 = bottom), 0 = no object.
- ``masks/instances.json``: per image, which instance value is which annotation (id, category).
- ``classes.json``: class index → label, and this layout in words.

Where objects overlap, the top one (the last in z order) owns the pixel in both PNGs, as in the
studio; each object's visible part is exactly its stored mask less the objects above it.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
from PIL import Image

from annotation.datasets.coco_export import dumps
from annotation.masks import mask_decode
from annotation.models import Label

MAX_CLASSES = 255  # 8-bit semantic PNGs; index 0 is the background
MAX_INSTANCES = 65535  # 16-bit instance PNGs; 0 is "no object"
BACKGROUND = "#000000"

LAYOUT = {
    "masks/semantic/<stem>.png": "8-bit palette PNG per image; pixel value = class index below (0 = background); "
    "the palette holds the label colours",
    "masks/instances/<stem>.png": "16-bit grey PNG per image; pixel value = the object's place in z order "
    "(1 = bottom), 0 = no object",
    "masks/instances.json": "per image: which instance value is which annotation id and category",
    "overlaps": "where objects overlap, the top one (last in z order) owns the pixel in both PNGs",
}


class TooManyObjects(ValueError):
    """An image holds more objects than a 16-bit instance PNG can number."""


def class_table(labels: Iterable[Label]) -> list[dict[str, Any]]:
    table: list[dict[str, Any]] = [{"index": 0, "name": "background", "color": BACKGROUND, "label_id": None}]
    for index, label in enumerate(labels, start=1):
        table.append({"index": index, "name": label.name, "color": label.color, "label_id": label.pk})
    return table


def classes_json(table: list[dict[str, Any]]) -> str:
    return json.dumps({"layout": LAYOUT, "classes": table}, ensure_ascii=False, indent=2) + "\n"


def palette(table: list[dict[str, Any]]) -> list[int]:
    colours: list[int] = []
    for row in table:
        colours += [int(row["color"][i : i + 2], 16) for i in (1, 3, 5)]
    return colours + [0] * (768 - len(colours))


def render(
    height: int, width: int, annotations: list[dict[str, Any]], class_of_label: dict[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``(semantic, instances)`` arrays of one image; ``annotations`` bottom first."""
    if len(annotations) > MAX_INSTANCES:
        raise TooManyObjects(f"{len(annotations)} objects; an instance PNG numbers at most {MAX_INSTANCES}")
    semantic = np.zeros((height, width), dtype=np.uint8)
    instances = np.zeros((height, width), dtype=np.uint16)
    for value, annotation in enumerate(annotations, start=1):
        mask = mask_decode(annotation["rle"])
        semantic[mask] = class_of_label[annotation["label_id"]]
        instances[mask] = value
    return semantic, instances


def semantic_png(semantic: np.ndarray, colours: list[int]) -> bytes:
    height, width = semantic.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(semantic).tobytes())
    image.putpalette(colours)
    return _png(image)


def instance_png(instances: np.ndarray) -> bytes:
    return _png(Image.fromarray(np.ascontiguousarray(instances, dtype=np.uint16)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class InstanceIndexWriter:
    """Streams ``masks/instances.json`` to a temporary file, one image entry at a time."""

    def __init__(self) -> None:
        self.count = 0
        self._file: IO[str] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in close()
            "w", encoding="utf-8", suffix=".json", delete=False
        )
        self.path = Path(self._file.name)
        self._file.write('{"images":[')

    def add(self, entry: dict[str, Any]) -> None:
        self._file.write(("," if self.count else "") + dumps(entry))
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.write("]}\n")
            self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> InstanceIndexWriter:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.discard()


def instance_entry(
    item_id: int, file_name: str, stem: str, annotations: list[dict[str, Any]], label_names: dict[int, str]
) -> dict[str, Any]:
    return {
        "image_id": item_id,
        "file_name": file_name,
        "semantic": f"masks/semantic/{stem}.png",
        "instances": f"masks/instances/{stem}.png",
        "objects": [
            {
                "value": value,
                "annotation_id": annotation["id"],
                "category_id": annotation["label_id"],
                "label": label_names[annotation["label_id"]],
            }
            for value, annotation in enumerate(annotations, start=1)
        ],
    }
