"""Where a dataset import reads from, and how its images are found: the COCO bytes and (for a zip)
the zip's files that a job's ``params`` name (``open_dataset``); a zip's files by a COCO
``file_name`` (``ZipFiles``); the project's items by name (``ItemIndex``, the matching steps the
``coco_import`` module's docstring lists).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from annotation.datasets.coco_reading import ImportRefused, max_json_bytes
from annotation.datasets.naming import safe_stem
from annotation.media_sources import Entry, import_limits, is_hidden, open_entries

EXPORT_JSON = "annotations/instances.json"


@dataclass
class DatasetSource:
    label: str  # the file as people named it: in messages, the report and each object's source_detail
    json_bytes: bytes
    files: dict[str, Entry] | None = None  # a zip's entries by path; None for a COCO file alone


def _read_bounded(handle: Any, name: str) -> bytes:
    limit = max_json_bytes()
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise ImportRefused([f"the file is larger than the limit for a COCO file, {limit} bytes"], file=name)
    return data


@contextmanager
def open_dataset(params: dict[str, Any]) -> Iterator[DatasetSource]:
    """The COCO bytes and (for a zip) the zip's files that ``params`` name. A file that is no zip
    (or too large a one) is refused like a malformed COCO file."""
    source = params.get("source")
    label = str(params.get("label") or PurePosixPath(str(params.get("path") or "dataset")).name)
    if source not in ("json", "upload_json", "zip", "upload"):
        raise ValueError(f"Unknown dataset source {source!r}.")
    if source.startswith("upload") and not default_storage.exists(params["storage_name"]):
        raise ValidationError("The uploaded file is no longer stored: upload it again.", code="gone")
    if source == "json":
        with open(params["path"], "rb") as handle:
            yield DatasetSource(label=label, json_bytes=_read_bounded(handle, label))
        return
    if source == "upload_json":
        with default_storage.open(params["storage_name"], "rb") as handle:
            yield DatasetSource(label=label, json_bytes=_read_bounded(handle, label))
        return
    with ExitStack() as stack:
        try:
            entries = stack.enter_context(open_entries(params, import_limits()))
        except ValidationError as exc:
            raise ImportRefused([" ".join(exc.messages)], file=label) from None
        files = {entry.name: entry for entry in entries}
        json_entry = _json_entry(files, label)
        if json_entry.skip:
            raise ImportRefused(
                [
                    f"{json_entry.name}: {json_entry.skip} (inside a zip the COCO file is bound by the per-file "
                    "upload limit: import it on its own instead, onto the images as items of the project)"
                ],
                file=label,
            )
        try:
            data = json_entry.read()
        except ValidationError as exc:
            raise ImportRefused([f"{json_entry.name}: {' '.join(exc.messages)}"], file=label) from None
        del files[json_entry.name]
        assert isinstance(data, bytes)  # noqa: S101 - a zip's entries read as bytes
        yield DatasetSource(label=label, json_bytes=data, files=files)


def _json_entry(files: dict[str, Entry], label: str) -> Entry:
    # Hidden files (``__MACOSX/…``, ``._x.json``) are what archivers add, never the dataset.
    candidates = [
        entry
        for name, entry in files.items()
        if name.lower().endswith(".json") and not is_hidden(PurePosixPath(name).parts)
    ]
    if not candidates:
        raise ImportRefused(["the zip holds no COCO file (a .json file)"], file=label)
    if len(candidates) == 1:
        return candidates[0]
    for entry in candidates:
        if entry.name == EXPORT_JSON:
            return entry
    names = ", ".join(entry.name for entry in candidates[:5])
    raise ImportRefused(
        [f"the zip holds several .json files ({names}): keep one, or name the COCO file {EXPORT_JSON}"], file=label
    )


def _normalised(file_name: str) -> str:
    name = file_name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _last_part(name: str) -> str:
    return name.rsplit("/", 1)[-1]


class ZipFiles:
    """A zip's files, found by a COCO ``file_name``: as it is, under ``images/``, or by its last
    path part when only one file has it."""

    def __init__(self, files: dict[str, Entry]) -> None:
        self.files = files
        self.by_last: dict[str, list[Entry]] = defaultdict(list)
        for name, entry in files.items():
            self.by_last[_last_part(name)].append(entry)

    def find(self, file_name: str) -> Entry | None:
        name = _normalised(file_name)
        for candidate in (name, f"images/{name}"):
            if candidate in self.files:
                return self.files[candidate]
        found = self.by_last.get(_last_part(name), [])
        return found[0] if len(found) == 1 else None


class ItemIndex:
    """The project's images, found by a COCO ``file_name`` (see the module's docstring)."""

    def __init__(self, items: Iterable[tuple[int, str, int, int, dict]]) -> None:
        self.rows: dict[int, tuple[int, str, int, int, dict]] = {}
        self.exact: dict[str, list[int]] = defaultdict(list)
        self.last: dict[str, list[int]] = defaultdict(list)
        self.stem: dict[str, list[int]] = defaultdict(list)
        for row in items:
            pk, name = row[0], row[1]
            self.rows[pk] = row
            self.exact[name].append(pk)
            self.last[_last_part(_normalised(name))].append(pk)
            self.stem[safe_stem(name).casefold()].append(pk)

    def find(self, file_name: str) -> tuple[int | None, str]:
        """``(item id, "")``, or ``(None, why not)``."""
        name = _normalised(file_name)
        last = _last_part(name)
        steps = [self.exact.get(file_name, []), self.exact.get(name, []), self.exact.get(last, [])]
        steps += [self.last.get(last, []), self.stem.get(safe_stem(name).casefold(), [])]
        for found in steps:
            unique = sorted(set(found))
            if len(unique) == 1:
                return unique[0], ""
            if len(unique) > 1:
                return None, f"{len(unique)} items of the project have this name: rename them, or import a zip"
        return None, "no item of the project has this name"
