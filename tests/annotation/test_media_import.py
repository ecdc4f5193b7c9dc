"""Bulk import as a job: from a folder, an uploaded zip and an S3 prefix. Good images become items;
bad files, non-images, hidden files, links and unsafe or oversized zip entries are skipped with a
reason; an archive that is a zip bomb is refused whole; a retried job imports nothing twice."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from moto.server import ThreadedMotoServer
from PIL import Image
from pytest_django import Settings

from annotation.media_import import (
    ImportSuperseded,
    media_import_start_path,
    media_import_start_zip,
    run_import_media,
)
from annotation.models import MediaItem
from platform_core.jobs import JobProgress
from platform_core.models import Job
from tests.conftest import World
from tests.platform_core.test_storage_s3 import BUCKET, S3Endpoint, s3_storages

IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default", "gpu"]}}
DUMMY = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["default", "gpu"]}}


def image_bytes(
    fmt: str = "PNG", size: tuple[int, int] = (24, 16), colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def noise_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def jobs_inline(settings: Settings, django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with jobs_inline():`` runs the jobs started inside it as the block ends, as a commit would."""
    settings.TASKS = IMMEDIATE
    return lambda: django_capture_on_commit_callbacks(execute=True)


def project_items(world: World) -> dict[str, MediaItem]:
    return {item.original_name: item for item in world.demo.project.media.exclude(pk=world.demo.media.pk)}


def reasons(job: Job) -> dict[str, str]:
    return {entry["name"]: entry["reason"] for entry in job.report["skipped"]}


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


# --- folder -------------------------------------------------------------------------------------


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "day 2").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.png").write_bytes(image_bytes())
    (root / "b.jpg").write_bytes(image_bytes("JPEG"))
    (root / "day 2" / "c.tif").write_bytes(image_bytes("TIFF"))
    (root / "notes.txt").write_text("not a picture")
    (root / "broken.jpg").write_bytes(image_bytes("JPEG", (200, 200))[:300])
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / ".git" / "d.png").write_bytes(image_bytes())
    (root / "link.png").symlink_to(root / "a.png")
    return root


def test_it_imports_a_folder_and_reports_what_it_skipped(
    world: World, photo_folder: Path, jobs_inline: Callable[[], Any]
) -> None:
    files = stored_files()
    with jobs_inline():
        job = media_import_start_path(project=world.demo.project, source=str(photo_folder), user=world.manager)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    items = project_items(world)
    assert set(items) == {"a.png", "b.jpg", "day 2/c.tif"}
    assert items["day 2/c.tif"].content_type == "image/png"
    assert all(item.thumbnail and item.uploaded_by == world.manager for item in items.values())
    assert job.report["imported"] == 3
    skipped = reasons(job)
    assert set(skipped) == {"notes.txt", "broken.jpg", ".DS_Store", ".git/", "link.png"}
    assert "not an image" in skipped["notes.txt"]
    assert "damaged" in skipped["broken.jpg"]
    assert "hidden" in skipped[".DS_Store"] and "hidden" in skipped[".git/"]
    assert "symbolic link" in skipped["link.png"]
    assert (job.progress_done, job.progress_total) == (8, 8)
    assert "resume" not in job.report
    # The skipped files left nothing in storage: only the items' files and thumbnails are new.
    assert stored_files() - files == {n for item in items.values() for n in (item.file.name, item.thumbnail.name)}


def test_it_refuses_a_source_that_is_neither_folder_nor_zip(world: World, tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_bytes(image_bytes())
    for source in (str(tmp_path / "missing"), str(tmp_path / "photo.png"), "s3://Not_A_Bucket/x"):
        with pytest.raises(ValidationError):
            media_import_start_path(project=world.demo.project, source=source, user=world.manager)
    assert not Job.objects.filter(kind="import_media", params__has_key="source").exists()


# --- zip ----------------------------------------------------------------------------------------


def zip_bytes(entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_entry(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16) | 0o777
    return info, target.encode()


def test_it_imports_an_uploaded_zip_skipping_bad_unsafe_and_oversized_entries(
    world: World, settings: Settings, jobs_inline: Callable[[], Any]
) -> None:
    settings.MAX_UPLOAD_BYTES = 20_000
    archive = zip_bytes(
        [
            ("photos/one.png", image_bytes()),
            ("photos/two.jpg", image_bytes("JPEG")),
            ("photos/2024/may/three.tif", image_bytes("TIFF")),
            ("photos/readme.txt", b"hello"),
            ("photos/broken.png", image_bytes("PNG", (64, 64))[:60]),
            ("../../etc/evil.png", image_bytes()),
            ("/absolute.png", image_bytes()),
            ("photos/huge.png", noise_png(100, 100)),  # 30 kB unpacked, over the 20 kB limit
            symlink_entry("photos/link.png", "/etc/passwd"),
            ("__MACOSX/photos/._one.png", b"\0\5\26\7"),
        ]
    )
    upload = SimpleUploadedFile("holiday.zip", archive, content_type="application/zip")
    with jobs_inline():
        job = media_import_start_zip(project=world.demo.project, uploaded_file=upload, user=world.manager)
    stored_zip = job.params["storage_name"]
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    items = project_items(world)
    assert set(items) == {"photos/one.png", "photos/two.jpg", "photos/2024/may/three.tif"}
    assert items["photos/2024/may/three.tif"].content_type == "image/png"
    assert "not an image" in reasons(job)["photos/readme.txt"]
    assert "damaged" in reasons(job)["photos/broken.png"]
    skipped = reasons(job)
    assert set(skipped) == {
        "photos/readme.txt",
        "photos/broken.png",
        "../../etc/evil.png",
        "/absolute.png",
        "photos/huge.png",
        "photos/link.png",
        "__MACOSX/photos/._one.png",
    }
    assert "unsafe path" in skipped["../../etc/evil.png"] and "unsafe path" in skipped["/absolute.png"]
    assert "20000" in skipped["photos/huge.png"]
    assert "symbolic link" in skipped["photos/link.png"]
    assert "hidden" in skipped["__MACOSX/photos/._one.png"]
    assert job.report == {"imported": 3, "skipped": job.report["skipped"], "skipped_count": 7}
    assert not default_storage.exists(stored_zip)  # the uploaded archive is gone once imported


def with_declared_sizes(archive: bytes, sizes: dict[str, int]) -> bytes:
    """The archive with the uncompressed sizes of some entries rewritten, in both of its headers."""
    data = bytearray(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as probe:
        local = {name: probe.getinfo(name).header_offset for name in sizes}
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_length = int.from_bytes(data[central + 28 : central + 30], "little")
        name = data[central + 46 : central + 46 + name_length].decode()
        if name in sizes:
            forged = sizes[name].to_bytes(4, "little")
            data[local[name] + 22 : local[name] + 26] = forged  # local header
            data[central + 24 : central + 28] = forged  # central directory
        central = data.find(b"PK\x01\x02", central + 46)
    return bytes(data)


def test_it_skips_an_entry_that_inflates_past_its_declared_size(world: World, tmp_path: Path) -> None:
    # Forged headers: the entry claims 100 bytes but inflates to a whole PNG. Python's zipfile stops
    # at the declared size and the CRC check fails: skipped, never read on and on.
    data = with_declared_sizes(zip_bytes([("a.png", image_bytes()), ("b.png", noise_png(32, 32))]), {"b.png": 100})
    path = tmp_path / "forged.zip"
    path.write_bytes(data)
    out = io.StringIO()
    call_command("import_media", str(path), project=world.demo.project.pk, stdout=out)
    assert set(project_items(world)) == {"a.png"}
    assert "CRC" in out.getvalue()


@pytest.mark.parametrize(
    ("setting", "value", "code"),
    [("MEDIA_IMPORT_MAX_ENTRIES", 3, "too_many_entries"), ("MEDIA_IMPORT_MAX_TOTAL_BYTES", 50_000, "too_large")],
)
def test_it_refuses_a_zip_bomb_whole_and_stores_nothing(
    world: World, settings: Settings, setting: str, value: int, code: str
) -> None:
    setattr(settings, setting, value)
    # Four entries of 20 kB of zeros: a few hundred bytes packed.
    archive = zip_bytes([(f"zero{i}.png", bytes(20_000)) for i in range(4)])
    assert len(archive) < 1000
    files, jobs = stored_files(), Job.objects.count()
    with pytest.raises(ValidationError) as caught:
        media_import_start_zip(
            project=world.demo.project, uploaded_file=SimpleUploadedFile("bomb.zip", archive), user=world.manager
        )
    assert caught.value.code == code
    assert stored_files() == files
    assert Job.objects.count() == jobs


def test_it_refuses_a_zip_bomb_at_the_default_limits(world: World, tmp_path: Path) -> None:
    # Thirteen small entries that declare 4 GB each unpack to 56 GB, over the 50 GiB a zip may
    # hold: refused from the directory alone, as an upload and as a server path.
    names = [f"photo{i:02}.png" for i in range(13)]
    archive = with_declared_sizes(zip_bytes([(name, image_bytes()) for name in names]), dict.fromkeys(names, 2**32 - 2))
    assert len(archive) < 20_000
    with zipfile.ZipFile(io.BytesIO(archive)) as probe:
        assert sum(info.file_size for info in probe.infolist()) > 50 * 1024**3
    path = tmp_path / "bomb.zip"
    path.write_bytes(archive)
    files, jobs = stored_files(), Job.objects.count()
    with pytest.raises(ValidationError) as upload_error:
        media_import_start_zip(
            project=world.demo.project, uploaded_file=SimpleUploadedFile("bomb.zip", archive), user=world.manager
        )
    with pytest.raises(ValidationError) as path_error:
        media_import_start_path(project=world.demo.project, source=str(path), user=world.manager)
    for caught in (upload_error, path_error):
        assert caught.value.code == "too_large"
        assert "unpacks to" in caught.value.messages[0]
    assert stored_files() == files
    assert Job.objects.count() == jobs
    with pytest.raises(CommandError, match="unpacks to"):
        call_command("import_media", str(path), project=world.demo.project.pk, stdout=io.StringIO())
    assert not project_items(world)


def test_it_skips_an_entry_that_unpacks_past_the_upload_limit_without_unpacking_it(
    world: World, tmp_path: Path, settings: Settings
) -> None:
    # 60 MiB of zeros packed into 60 kB, beside a real photo: the entry is refused by its declared
    # size (a forged smaller size would stop the inflating there, see above).
    archive = zip_bytes([("bomb.png", bytes(60 * 1024 * 1024)), ("real.png", image_bytes())])
    assert len(archive) < 100_000
    path = tmp_path / "photos.zip"
    path.write_bytes(archive)
    out = io.StringIO()
    call_command("import_media", str(path), project=world.demo.project.pk, stdout=out)
    text = out.getvalue()
    report = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert report["imported"] == 1
    assert report["skipped"] == [
        {"name": "bomb.png", "reason": f"62914560 bytes unpacked; the limit is {settings.MAX_UPLOAD_BYTES} bytes"}
    ]
    assert set(project_items(world)) == {"real.png"}


def test_it_fails_a_job_whose_server_zip_is_a_bomb(
    world: World, settings: Settings, tmp_path: Path, jobs_inline: Callable[[], Any]
) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(zip_bytes([(f"zero{i}.png", bytes(20_000)) for i in range(4)]))
    settings.TASKS = DUMMY
    job = media_import_start_path(project=world.demo.project, source=str(path), user=world.manager)
    settings.MEDIA_IMPORT_MAX_TOTAL_BYTES = 50_000  # lowered after the job was queued
    settings.TASKS = IMMEDIATE
    from platform_core.jobs.core import run_job

    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "unpacks to 80000 bytes" in job.message
    assert not project_items(world)


def test_it_refuses_an_upload_that_is_not_a_zip(world: World) -> None:
    with pytest.raises(ValidationError) as caught:
        media_import_start_zip(
            project=world.demo.project,
            uploaded_file=SimpleUploadedFile("photos.zip", image_bytes()),
            user=world.manager,
        )
    assert caught.value.code == "not_a_zip"


# --- retries ------------------------------------------------------------------------------------


class QuietProgress(JobProgress):
    """Progress that writes nothing, so only the import's own commits meet the job row."""

    def update(self, *, done: int, total: int | None = None, message: str | None = None) -> None:
        pass


class DyingProgress(JobProgress):
    """The worker dies (its process is killed) after ``files`` files."""

    def __init__(self, job: Job, *, files: int) -> None:
        super().__init__(job, attempt=job.attempts)
        self.files = files

    def update(self, *, done: int, total: int | None = None, message: str | None = None) -> None:
        if done >= self.files:
            raise KeyboardInterrupt("worker killed")


def claim(job: Job) -> Job:
    """What run_job does before calling the runner: the job is running, one more attempt."""
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, attempts=job.attempts + 1)
    job.refresh_from_db()
    return job


def test_it_resumes_a_retried_job_without_importing_anything_twice(
    world: World, photo_folder: Path, settings: Settings
) -> None:
    from platform_core.jobs.services import job_retry

    settings.TASKS = DUMMY
    job = media_import_start_path(project=world.demo.project, source=str(photo_folder), user=world.manager)
    with pytest.raises(KeyboardInterrupt):
        run_import_media(claim(job), DyingProgress(job, files=3))  # .DS_Store, .git/, a.png
    assert set(project_items(world)) == {"a.png"}
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)

    settings.TASKS = IMMEDIATE
    job_retry(job=job, actor=world.manager)  # clears the report, keeps the params
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED and job.report == {}
    from platform_core.jobs.core import run_job

    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.attempts == 2
    names = list(world.demo.project.media.exclude(pk=world.demo.media.pk).values_list("original_name", flat=True))
    assert sorted(names) == ["a.png", "b.jpg", "day 2/c.tif"]  # each once
    # The report covers both runs.
    assert job.report["imported"] == 3
    assert set(reasons(job)) == {"notes.txt", "broken.jpg", ".DS_Store", ".git/", "link.png"}


def test_it_commits_nothing_from_a_run_that_lost_its_job(world: World, photo_folder: Path, settings: Settings) -> None:
    settings.TASKS = DUMMY
    job = claim(media_import_start_path(project=world.demo.project, source=str(photo_folder), user=world.manager))
    # Meanwhile the job went stale and a retry started a newer run.
    Job.objects.filter(pk=job.pk).update(attempts=job.attempts + 1)
    files = stored_files()
    with pytest.raises(ImportSuperseded):
        run_import_media(job, QuietProgress(job, attempt=job.attempts))
    assert not project_items(world)
    assert stored_files() == files


# --- S3 -----------------------------------------------------------------------------------------

SOURCE_BUCKET = "incoming-photos"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Endpoint]:
    """moto's S3 API on loopback, as in tests/platform_core/test_storage_s3.py."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = S3Endpoint(url=f"http://{host}:{port}", host=host, port=port)
        client = endpoint.client()
        client.create_bucket(Bucket=BUCKET)
        client.create_bucket(Bucket=SOURCE_BUCKET)
        for key, data in [
            ("batch1/a.png", image_bytes()),
            ("batch1/sub/b.jpg", image_bytes("JPEG")),
            ("batch1/list.csv", b"name\n"),
            ("batch1/.hidden.png", image_bytes()),
            ("batch1/folder/", b""),
            ("batch10/not-this.png", image_bytes()),
        ]:
            client.put_object(Bucket=SOURCE_BUCKET, Key=key, Body=data)
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_media(world: World, s3_server: S3Endpoint, settings: Settings) -> S3Endpoint:
    settings.STORAGES = s3_storages(s3_server, settings, BUCKET)
    return s3_server


def test_it_imports_an_s3_prefix_with_the_storage_credentials(
    world: World, s3_media: S3Endpoint, jobs_inline: Callable[[], Any]
) -> None:
    with jobs_inline():
        job = media_import_start_path(
            project=world.demo.project, source=f"s3://{SOURCE_BUCKET}/batch1/", user=world.manager
        )
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    items = project_items(world)
    assert set(items) == {"a.png", "sub/b.jpg"}
    keys = {entry["Key"] for entry in s3_media.client().list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {items["a.png"].file.name, items["a.png"].thumbnail.name} <= keys
    skipped = reasons(job)
    assert set(skipped) == {"list.csv", ".hidden.png"}
    assert "not an image" in skipped["list.csv"]
    assert "hidden" in skipped[".hidden.png"]
    assert (job.progress_done, job.progress_total) == (4, 4)


def test_the_command_imports_an_s3_prefix(world: World, s3_media: S3Endpoint) -> None:
    out = io.StringIO()
    call_command("import_media", f"s3://{SOURCE_BUCKET}/batch1/sub", project=world.demo.project.pk, stdout=out)
    # The prefix "batch1/sub" names batch1/sub/b.jpg as sub/b.jpg (relative to its folder).
    assert set(project_items(world)) == {"sub/b.jpg"}
    assert "1 imported, 0 skipped" in out.getvalue()


def test_it_refuses_to_import_from_the_platforms_own_media_bucket(world: World, s3_media: S3Endpoint) -> None:
    with pytest.raises(ValidationError) as caught:
        media_import_start_path(project=world.demo.project, source=f"s3://{BUCKET}/org-2/", user=world.manager)
    assert caught.value.code == "bad_source"


# --- the command --------------------------------------------------------------------------------


def test_the_command_imports_here_and_prints_the_report(world: World, photo_folder: Path) -> None:
    out = io.StringIO()
    call_command("import_media", str(photo_folder), project=world.demo.project.pk, user="manager", stdout=out)
    text = out.getvalue()
    report = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert report["imported"] == 3
    assert {entry["name"] for entry in report["skipped"]} >= {"notes.txt", "broken.jpg"}
    assert "3 imported, 5 skipped" in text
    assert set(project_items(world)) == {"a.png", "b.jpg", "day 2/c.tif"}
    assert not Job.objects.filter(params__path=str(photo_folder)).exists()


def test_the_command_queues_a_job_with_background(world: World, photo_folder: Path, settings: Settings) -> None:
    settings.TASKS = DUMMY
    out = io.StringIO()
    call_command("import_media", str(photo_folder), "--background", project=world.demo.project.pk, stdout=out)
    job = Job.objects.get(params__path=str(photo_folder))
    assert f"job {job.pk}" in out.getvalue()
    assert (job.kind, job.state, job.project) == ("import_media", Job.State.QUEUED, world.demo.project)
    assert not project_items(world)
