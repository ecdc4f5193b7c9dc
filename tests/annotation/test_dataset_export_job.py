"""Dataset export as a job through the real Tasks API (queued after commit, run as ``db_worker``
runs it), its progress, report and result file (under the organisation's prefix, downloaded
through the jobs pages' tenant check), cancellation and retries; and ``manage.py export_dataset``."""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_tasks_db.models import DBTaskResult
from pycocotools.coco import COCO

from annotation.datasets.export_job import dataset_export_start, run_export_dataset
from annotation.datasets.options import ExportOptions
from platform_core.jobs import JobCancelled, JobProgress
from platform_core.jobs.core import run_job
from platform_core.jobs.services import job_cancel, job_retry
from platform_core.models import Job
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_project import DatasetProject, make_dataset_project
from tests.conftest import World


@pytest.fixture
def dataset(world: World) -> DatasetProject:
    return make_dataset_project(world)


def start(world: World, dataset: DatasetProject, capture: Any, **options: Any) -> Job:
    with capture(execute=True):
        job = dataset_export_start(
            tenant=resolve_tenant(world.manager, "demo-lab"),
            project=dataset.project,
            actor=world.manager,
            options=ExportOptions.parse(options),
        )
    job.refresh_from_db()
    return job


def download(user: Any, job: Job, org_slug: str = "demo-lab") -> Any:
    client = Client()
    client.force_login(user)
    return client.get(reverse("job_result", kwargs={"org_slug": org_slug, "job_id": job.pk}))


def test_it_runs_the_export_as_a_job_and_offers_the_file(
    world: World, dataset: DatasetProject, django_capture_on_commit_callbacks: Any, tmp_path: Path
) -> None:
    job = start(world, dataset, django_capture_on_commit_callbacks)
    task = DBTaskResult.objects.get(id=job.task_result_id)
    assert (task.queue_name, job.kind, job.state) == ("default", "export_dataset", Job.State.QUEUED)
    assert job.params == {
        "format": "coco",
        "polygons": False,
        "include_images": False,
        "only": "all",
        "include_proposed": False,
    }

    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    # Progress per item: the three images and the video.
    assert (job.progress_done, job.progress_total, job.percent) == (4, 4, 100)
    assert job.report["images"] == 3 and job.report["annotations"] == 7
    assert job.report["proposed_left_out"] == 1 and job.report["skipped_count"] == 1
    assert job.report["file"] == "pets-things-coco.json"
    assert job.result_file.name.startswith(f"org-{world.demo.org.pk}/jobs/")
    assert job.result_file.name.endswith("/pets-things-coco.json")

    response = download(world.manager, job)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="pets-things-coco.json"'
    path = tmp_path / "downloaded.json"
    path.write_bytes(b"".join(response.streaming_content))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert set(coco.imgs) == {dataset.street.pk, dataset.garden.pk, dataset.scan.pk}
    assert len(coco.anns) == 7
    # The file is Demo Lab's: another organisation's member gets a 404, in either organisation's URL.
    assert download(world.outsider, job).status_code == 404
    assert download(world.outsider, job, "other-lab").status_code == 404


def test_it_zips_mask_pngs_with_images_as_a_job(
    world: World, dataset: DatasetProject, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(world, dataset, django_capture_on_commit_callbacks, format="masks", include_images=True)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.result_file.name.endswith("/pets-things-masks.zip")
    with job.result_file.open("rb") as handle, zipfile.ZipFile(handle) as archive:
        names = set(archive.namelist())
    assert {"classes.json", "masks/instances.json", "images/photo 1.png", "masks/semantic/photo 1.png"} <= names


class CancelledAfter(JobProgress):
    """A person cancels the job while the export is at item ``items``."""

    def __init__(self, job: Job, *, items: int, actor: Any) -> None:
        super().__init__(job, attempt=job.attempts)
        self.items, self.actor = items, actor

    def update(self, *, done: int, total: int | None = None, message: str | None = None) -> None:
        if done == self.items:
            job_cancel(job=self.job, actor=self.actor)
        super().update(done=done, total=total, message=message)


def claim(job: Job) -> Job:
    """What run_job does before calling the runner: the job is running, one more attempt."""
    Job.objects.filter(pk=job.pk).update(state=Job.State.RUNNING, attempts=job.attempts + 1)
    job.refresh_from_db()
    return job


def job_files(world: World) -> set[str]:
    _, folders = default_storage.listdir(f"org-{world.demo.org.pk}/jobs")
    return set(folders)


def test_it_stops_a_cancelled_export_and_stores_nothing(
    world: World, dataset: DatasetProject, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(JobProgress, "interval", 0)
    before = job_files(world)
    job = start(world, dataset, django_capture_on_commit_callbacks, format="masks")
    with pytest.raises(JobCancelled):
        run_export_dataset(claim(job), CancelledAfter(job, items=2, actor=world.manager))
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED and not job.result_file
    assert job_files(world) == before


def test_a_retry_replaces_the_file_of_the_earlier_run(
    world: World, dataset: DatasetProject, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(world, dataset, django_capture_on_commit_callbacks)
    run_job.call(job.pk)
    job.refresh_from_db()
    first = job.result_file.name
    # As if the run had failed after storing its file (a worker dying at the very end).
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)
    with django_capture_on_commit_callbacks(execute=False):
        job_retry(job=job, actor=world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.attempts == 2
    assert job.result_file.name != first
    assert default_storage.exists(job.result_file.name) and not default_storage.exists(first)


# --- the command --------------------------------------------------------------------------------


def test_the_command_exports_coco_here_and_prints_a_summary(
    world: World, dataset: DatasetProject, tmp_path: Path
) -> None:
    out = io.StringIO()
    target = tmp_path / "pets.json"
    call_command("export_dataset", project=dataset.project.pk, format="coco", out=str(target), stdout=out)
    line = out.getvalue().strip()
    assert "\n" not in line
    assert line.startswith("pets.json (coco, ") and "3 images, 7 annotations, 2 categories" in line
    assert "1 pre-annotations awaiting a person left out" in line and "1 skipped" in line
    assert len(json.loads(target.read_text())["annotations"]) == 7
    assert not Job.objects.filter(kind="export_dataset").exists()  # no worker involved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets.json"]  # no scratch file left


def test_the_command_takes_every_option(world: World, dataset: DatasetProject, tmp_path: Path) -> None:
    target = tmp_path / "pets.zip"
    out = io.StringIO()
    call_command(
        "export_dataset",
        "--project",
        str(dataset.project.pk),
        "--format",
        "coco",
        "--out",
        str(target),
        "--include-images",
        "--only",
        "accepted",
        "--polygons",
        "--include-proposed",
        stdout=out,
    )
    with zipfile.ZipFile(target) as archive:
        data = json.loads(archive.read("annotations/instances.json"))
    assert data["info"]["export"] == {
        "format": "coco",
        "polygons": True,
        "include_images": True,
        "only": "accepted",
        "include_proposed": True,
    }
    assert data["images"] == []  # no task is accepted
    assert "4 items outside accepted tasks left out" in out.getvalue()


def test_the_command_refuses_a_bad_project_or_file_name(world: World, dataset: DatasetProject, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No project with id 999999"):
        call_command("export_dataset", project=999999, out=str(tmp_path / "x.json"))
    with pytest.raises(CommandError, match=r"\.zip file"):
        call_command("export_dataset", project=dataset.project.pk, format="masks", out=str(tmp_path / "x.json"))
    with pytest.raises(CommandError, match="No folder"):
        call_command("export_dataset", project=dataset.project.pk, out=str(tmp_path / "missing" / "x.json"))
    assert list(tmp_path.iterdir()) == []
