"""What an export may be asked for, and the one check of it (page form, API, command and the job's
stored parameters all go through ``ExportOptions.parse``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError

COCO = "coco"
MASKS = "masks"
FORMATS = {COCO: "COCO JSON", MASKS: "Mask PNGs"}

ALL = "all"
ACCEPTED = "accepted"
ONLY = {ALL: "every item", ACCEPTED: "items of accepted tasks"}

# A saved split's subsets (annotation.datasets.splits): an export may take one of them.
SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class ExportOptions:
    """``format``: ``coco`` or ``masks``. ``polygons``: COCO segmentations as polygons instead of
    RLE (COCO only). ``include_images``: zip the stored images in. ``only``: ``all`` items, or only
    those of ``accepted`` tasks. ``include_proposed``: keep pre-annotations awaiting a person.
    ``split`` (a saved split's id) and ``subset`` (train, val or test; none: the whole split): only
    the items of that split's subset."""

    format: str = COCO
    polygons: bool = False
    include_images: bool = False
    only: str = ALL
    include_proposed: bool = False
    split: int | None = None
    subset: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ExportOptions:
        """The options of ``data`` (missing keys take their defaults); ValidationError per field."""
        errors: dict[str, str] = {}
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            errors["__all__"] = f"Unknown export options: {', '.join(unknown)}."
        format_ = data.get("format", COCO)
        if format_ not in FORMATS:
            errors["format"] = f"Unknown format {str(format_)[:40]!r}: use {' or '.join(FORMATS)}."
        only = data.get("only", ALL)
        if only not in ONLY:
            errors["only"] = f"Unknown choice {str(only)[:40]!r}: use {' or '.join(ONLY)}."
        flags = {}
        for name in ("polygons", "include_images", "include_proposed"):
            value = data.get(name, False)
            if not isinstance(value, bool):
                errors[name] = "Give true or false."
            flags[name] = value is True
        split, subset = data.get("split"), data.get("subset") or None
        if split is not None and (isinstance(split, bool) or not isinstance(split, int) or split < 1):
            errors["split"] = "Give the split's id, a whole number."
        if subset is not None and subset not in SUBSETS:
            errors["subset"] = f"Unknown subset {str(subset)[:40]!r}: use {', '.join(SUBSETS)}."
        elif subset is not None and split is None:
            errors["subset"] = "Choose the split to take this subset of."
        if errors:
            raise ValidationError(errors)
        # Polygons are a COCO matter: the mask PNGs are pixels either way.
        flags["polygons"] = flags["polygons"] and format_ == COCO
        return cls(format=format_, only=only, split=split, subset=subset, **flags)

    def as_params(self) -> dict[str, Any]:
        params = asdict(self)
        if self.split is None:
            # Exports of a whole project keep the parameters they always had.
            del params["split"], params["subset"]
        return params

    @property
    def zipped(self) -> bool:
        """Mask PNGs, and anything with images, come as one zip; COCO alone as a JSON file."""
        return self.format == MASKS or self.include_images

    @property
    def extension(self) -> str:
        return ".zip" if self.zipped else ".json"
