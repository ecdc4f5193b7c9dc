"""Where a bulk import reads its files: a server folder, a zip archive (on the server or uploaded
into storage) or an S3 prefix. Each source lists its files as ``Entry`` objects, with the reason a
file is skipped when that is known before reading it.

Job parameters, one shape per source::

    {"source": "folder", "path": "/abs/folder"}
    {"source": "zip", "path": "/abs/archive.zip"}
    {"source": "upload", "storage_name": "org-1/project-2/imports/upload_x.zip", "label": "photos.zip"}
    {"source": "s3", "bucket": "name", "prefix": "some/prefix/"}
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

from annotation.image_files import ImageSource

# Defaults for settings a deployment may set: the most entries and uncompressed bytes one zip may
# hold (beyond them it is refused whole: a zip bomb, or not a photo collection), and the largest
# zip accepted as an upload.
MEDIA_IMPORT_MAX_ENTRIES = 100_000
MEDIA_IMPORT_MAX_TOTAL_BYTES = 50 * 1024**3
MEDIA_IMPORT_MAX_ZIP_BYTES = 4 * 1024**3

HIDDEN = "hidden or system file"
SYMLINK_TYPE = 0o120000


@dataclass(frozen=True)
class ImportLimits:
    max_file_bytes: int
    max_entries: int
    max_total_bytes: int


def import_limits() -> ImportLimits:
    return ImportLimits(
        max_file_bytes=settings.MAX_UPLOAD_BYTES,
        max_entries=getattr(settings, "MEDIA_IMPORT_MAX_ENTRIES", MEDIA_IMPORT_MAX_ENTRIES),
        max_total_bytes=getattr(settings, "MEDIA_IMPORT_MAX_TOTAL_BYTES", MEDIA_IMPORT_MAX_TOTAL_BYTES),
    )


@dataclass
class Entry:
    name: str  # relative to the source: shown in the report, kept as the item's original name
    read: Callable[[], ImageSource]
    size: int | None = None
    skip: str | None = None


def _never() -> ImageSource:
    raise AssertionError("a skipped entry is never read")


def skipped(name: str, reason: str) -> Entry:
    return Entry(name=name, read=_never, skip=reason)


def is_hidden(parts: tuple[str, ...] | list[str]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


# --- parsing what the command line names ------------------------------------------------------


def parse_source(source: str) -> dict[str, Any]:
    """Job parameters for ``folder``, ``archive.zip`` or ``s3://bucket/prefix``; ValidationError if
    it names nothing importable."""
    if source.startswith("s3://"):
        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ValidationError(f"{source!r} names no valid bucket: use s3://bucket/prefix.", code="bad_source")
        _refuse_media_bucket(bucket, prefix)
        return {"source": "s3", "bucket": bucket, "prefix": prefix}
    path = Path(source).expanduser().resolve()
    if path.is_dir():
        return {"source": "folder", "path": str(path)}
    if path.is_file():
        with open(path, "rb") as handle:
            validate_zip(handle)
        return {"source": "zip", "path": str(path)}
    raise ValidationError(f"{source}: no such folder or zip file.", code="bad_source")


def _s3_storage_options() -> dict[str, Any] | None:
    default = settings.STORAGES.get("default", {})
    if str(default.get("BACKEND", "")).endswith("S3Storage"):
        return default.get("OPTIONS", {})
    return None


def _refuse_media_bucket(bucket: str, prefix: str) -> None:
    # The platform's own stored media belongs to every organisation: importing from it would copy
    # one organisation's files into another's project.
    options = _s3_storage_options()
    if not options or options.get("bucket_name") != bucket:
        return
    location = (options.get("location") or "").strip("/")
    if not location or prefix.startswith(location) or location.startswith(prefix.rstrip("/")):
        raise ValidationError(
            "That prefix holds the platform's own stored media: import from another bucket or prefix.",
            code="bad_source",
        )


def validate_zip(fp: IO[bytes]) -> None:
    """Refuse what is not a zip, or one too large to import, before anything is stored or queued."""
    size = fp.seek(0, os.SEEK_END)
    fp.seek(0)
    limit = getattr(settings, "MEDIA_IMPORT_MAX_ZIP_BYTES", MEDIA_IMPORT_MAX_ZIP_BYTES)
    if size > limit:
        raise ValidationError(f"The archive is {size} bytes; the limit is {limit} bytes.", code="too_large")
    try:
        with zipfile.ZipFile(fp) as archive:
            _check_archive(archive, import_limits())
    except zipfile.BadZipFile:
        raise ValidationError("The file is not a zip archive.", code="not_a_zip") from None
    finally:
        fp.seek(0)


def _check_archive(archive: zipfile.ZipFile, limits: ImportLimits) -> None:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ValidationError(
            f"The archive holds {len(infos)} entries; the limit is {limits.max_entries}.", code="too_many_entries"
        )
    # Declared sizes bind: Python's zipfile stops at the declared size and fails the CRC check
    # of an entry that would inflate past it.
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise ValidationError(
            f"The archive unpacks to {total} bytes; the limit is {limits.max_total_bytes} bytes.",
            code="too_large",
        )


# --- listing -----------------------------------------------------------------------------------


@contextmanager
def open_entries(params: dict[str, Any], limits: ImportLimits) -> Iterator[list[Entry]]:
    source = params.get("source")
    if source == "folder":
        yield list(_folder_entries(Path(params["path"])))
    elif source == "zip":
        with open(params["path"], "rb") as handle:
            yield from _zip_source(handle, limits)
    elif source == "upload":
        with _local_copy(params["storage_name"]) as handle:
            yield from _zip_source(handle, limits)
    elif source == "s3":
        yield list(_s3_entries(params["bucket"], params.get("prefix", ""), limits))
    else:
        raise ValueError(f"Unknown import source {source!r}.")


def _folder_entries(root: Path) -> Iterator[Entry]:
    if not root.is_dir():
        raise ValidationError(f"{root} is not a folder (or not one this worker can see).", code="bad_source")
    # Links are not followed: the import reads what is in the folder, not what it points at.
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            relative = (here / name).relative_to(root).as_posix()
            if (here / name).is_symlink():
                yield skipped(relative + "/", "symbolic link (not followed)")
                dirs.remove(name)
            elif is_hidden([name]):
                yield skipped(relative + "/", "hidden or system folder")
                dirs.remove(name)
        for name in files:
            path = here / name
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                yield skipped(relative, "symbolic link (not followed)")
            elif not stat.S_ISREG(info.st_mode):
                yield skipped(relative, "not a regular file")
            elif is_hidden([name]):
                yield skipped(relative, HIDDEN)
            else:
                yield Entry(name=relative, read=lambda path=path: path, size=info.st_size)


def _zip_source(handle: IO[bytes], limits: ImportLimits) -> Iterator[list[Entry]]:
    try:
        archive = zipfile.ZipFile(handle)
    except zipfile.BadZipFile:
        raise ValidationError("The file is not a zip archive.", code="not_a_zip") from None
    with archive:
        _check_archive(archive, limits)
        yield list(_zip_entries(archive, limits))


def _zip_entries(archive: zipfile.ZipFile, limits: ImportLimits) -> Iterator[Entry]:
    for info in archive.infolist():
        if info.is_dir():
            continue
        name = info.filename.replace("\\", "/")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts or not parts:
            yield skipped(info.filename, "unsafe path (it points outside the archive)")
        elif (info.external_attr >> 16) & 0o170000 == SYMLINK_TYPE:
            yield skipped(name, "symbolic link")
        elif is_hidden(parts):
            yield skipped(name, HIDDEN)
        elif info.flag_bits & 0x1:
            yield skipped(name, "encrypted")
        elif info.file_size > limits.max_file_bytes:
            yield skipped(name, f"{info.file_size} bytes unpacked; the limit is {limits.max_file_bytes} bytes")
        else:
            yield Entry(name="/".join(parts), read=lambda info=info: _read_member(archive, info), size=info.file_size)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(info) as member:
            return member.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as exc:
        raise ValidationError(f"damaged in the archive ({exc})", code="damaged") from None


@contextmanager
def _local_copy(storage_name: str) -> Iterator[IO[bytes]]:
    """The stored archive as a local, seekable file: zip reading jumps around the file."""
    try:
        path = default_storage.path(storage_name)
    except NotImplementedError:
        path = None
    if path is not None:
        with open(path, "rb") as handle:
            yield handle
        return
    with tempfile.TemporaryFile() as copy, default_storage.open(storage_name, "rb") as stored:
        shutil.copyfileobj(stored, copy, 1024 * 1024)
        copy.seek(0)
        yield copy


def s3_client() -> Any:
    """A boto3 S3 client with the media storage's endpoint, region and keys when media is on S3,
    else boto3's own configuration (AWS_* environment variables, instance role)."""
    import boto3

    options = _s3_storage_options() or {}
    return boto3.client(
        "s3",
        endpoint_url=options.get("endpoint_url"),
        region_name=options.get("region_name"),
        aws_access_key_id=options.get("access_key"),
        aws_secret_access_key=options.get("secret_key"),
    )


def _s3_entries(bucket: str, prefix: str, limits: ImportLimits) -> Iterator[Entry]:
    from botocore.exceptions import BotoCoreError, ClientError

    _refuse_media_bucket(bucket, prefix)
    client = s3_client()

    def read(key: str) -> bytes:
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            return body.read(limits.max_file_bytes + 1)
        except ClientError as exc:
            raise ValidationError(f"could not be read ({exc.response['Error'].get('Code', 'error')})") from None

    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        listing = [obj for page in pages for obj in page.get("Contents", [])]
    except (ClientError, BotoCoreError) as exc:
        raise ValidationError(f"s3://{bucket}/{prefix} cannot be listed: {exc}", code="bad_source") from None
    # Names are relative to the prefix's folder: s3://b/photos/2024 lists photos/2024-05/a.jpg as 2024-05/a.jpg.
    base = prefix[: prefix.rfind("/") + 1]
    for obj in listing:
        key = obj["Key"]
        if key.endswith("/"):
            continue  # a folder marker
        name = key[len(base) :] if key.startswith(base) else key
        if is_hidden(PurePosixPath(name).parts):
            yield skipped(name, HIDDEN)
        else:
            yield Entry(name=name, read=lambda key=key: read(key), size=obj.get("Size"))
