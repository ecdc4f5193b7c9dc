"""What an export may be asked for, and the one check of it (page form, API, command and the job's
stored parameters all go through ``ExportOptions.parse``).

Formats: ``coco`` and ``masks`` hold a project's images; ``youtube-vis``, ``coco-video`` and
``davis`` hold its videos (``video_export``). Each kind of format leaves the other kind of item out
and counts it in the report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError

COCO = "coco"
MASKS = "masks"
YOUTUBE_VIS = "youtube-vis"
COCO_VIDEO = "coco-video"
DAVIS = "davis"
FORMATS = {
    COCO: "COCO JSON",
    MASKS: "Mask PNGs",
    YOUTUBE_VIS: "YouTube-VIS JSON (videos)",
    COCO_VIDEO: "COCO-video JSON (videos)",
    DAVIS: "DAVIS palette PNGs (videos)",
}
VIDEO_FORMATS = (YOUTUBE_VIS, COCO_VIDEO, DAVIS)

ALL = "all"
ACCEPTED = "accepted"
ONLY = {ALL: "every item", ACCEPTED: "items of accepted tasks"}

# A saved split's subsets (annotation.datasets.splits): an export may take one of them.
SUBSETS = ("train", "val", "test")


@dataclass(frozen=True)
class ExportOptions:
    """``format``: one of ``FORMATS``. ``polygons``: COCO segmentations as polygons instead of
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
            errors["format"] = (
                f"Unknown format {str(format_)[:40]!r}: use {COCO} or {MASKS} (images), "
                f"{', '.join(VIDEO_FORMATS[:-1])} or {VIDEO_FORMATS[-1]} (videos)."
            )
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
    def is_video(self) -> bool:
        return self.format in VIDEO_FORMATS

    @property
    def zipped(self) -> bool:
        """Mask PNGs (of images or DAVIS' of videos), and anything with images or frames, come as
        one zip; COCO, COCO-video and YouTube-VIS alone as a JSON file."""
        return self.format in (MASKS, DAVIS) or self.include_images

    @property
    def extension(self) -> str:
        return ".zip" if self.zipped else ".json"
