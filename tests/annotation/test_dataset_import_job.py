"""COCO import as a job (report, retries, the stored upload), through the REST endpoint, the project
page's form and ``manage.py import_dataset``; other organisations get 404, members below manager 403."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotation.datasets.import_job import dataset_import_start
from annotation.models import Project
from platform_core.jobs.core import run_job
from platform_core.jobs.services import job_retry
from platform_core.models import Job
from tests.annotation.dataset_import_world import (
    H,
    Target,
    W,
    valid_coco,
    write,
    zip_of,
)
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import png_bytes

# --- the job ---------------------------------------------------------------------------------------


def upload(data: dict[str, Any] | bytes, name: str = "coco.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if isinstance(data, bytes) else json.dumps(data).encode())


def start(target: Target, capture: Any, data: Any, name: str = "coco.json", **options: Any) -> Job:
    with capture(execute=True):
        job = dataset_import_start(
            tenant=target.tenant,
            project=target.project,
            actor=target.world.manager,
            uploaded_file=upload(data, name),
            **options,
        )
    return job


def test_it_runs_as_a_job_with_its_report_and_forgets_the_upload(
    target: Target, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(target, django_capture_on_commit_callbacks, valid_coco(), create_labels=True)
    assert job.kind == "import_dataset" and job.state == Job.State.QUEUED
    stored = job.params["storage_name"]
    assert stored.startswith(f"org-{target.project.organization_id}/project-{target.project.pk}/imports/")
    assert default_storage.exists(stored)
    assert {k: v for k, v in job.params.items() if k != "storage_name"} == {
        "source": "upload_json",
        "label": "coco.json",
        "create_labels": True,
        "proposed": True,
    }
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.report["annotations"] == 1 and job.report["matched_items"] == 1
    assert job.params["committed"] == job.report
    assert not default_storage.exists(stored)
    assert target.annotations().count() == 1

    # A retry of a job whose run committed imports nothing twice.
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)
    job_retry(job=Job.objects.get(pk=job.pk), actor=target.world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.report["annotations"] == 1
    assert target.annotations().count() == 1


def test_it_fails_the_job_with_the_problems_of_a_malformed_file(
    target: Target, django_capture_on_commit_callbacks: Any
) -> None:
    data = valid_coco()
    data["annotations"][0]["image_id"] = 5
    job = start(target, django_capture_on_commit_callbacks, data)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.message.startswith("“coco.json” was refused and nothing was imported (1 problem):")
    assert "annotations[0] (id 1): “image_id” 5 is not the id of an image of the file" in job.message
    assert target.annotations().count() == 0 and not default_storage.exists(job.params["storage_name"])


def test_it_imports_an_uploaded_zip_creating_the_items(
    target: Target, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    coco = valid_coco()
    coco["images"][0]["file_name"] = "new.png"
    path = zip_of(tmp_path, coco, {"new.png": png_bytes(W, H)})
    job = start(target, django_capture_on_commit_callbacks, path.read_bytes(), name="dataset.zip")
    assert job.params["source"] == "upload" and job.params["storage_name"].endswith(".zip")
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    item = target.items().get(original_name="new.png")
    assert (item.width, item.height, item.uploaded_by) == (W, H, target.world.manager)
    assert target.annotations().get().media == item and job.report["created_items"] == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "empty"), (b"hello", "not_coco"), (b"PK\x03\x04broken", "not_coco")],
    ids=["empty", "text", "broken_zip"],
)
def test_it_refuses_an_upload_that_is_neither_json_nor_zip(target: Target, data: bytes, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        dataset_import_start(
            tenant=target.tenant, project=target.project, actor=target.world.manager, uploaded_file=upload(data)
        )
    assert info.value.code == code
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_refuses_a_json_upload_over_the_cap_at_once(target: Target, settings: Any) -> None:
    settings.DATASET_IMPORT_MAX_JSON_BYTES = 50
    with pytest.raises(ValidationError, match="the limit for a COCO file is 50 bytes"):
        dataset_import_start(
            tenant=target.tenant,
            project=target.project,
            actor=target.world.manager,
            uploaded_file=upload(valid_coco()),
        )


def test_it_stops_when_the_member_who_started_it_no_longer_manages(
    target: Target, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(target, django_capture_on_commit_callbacks, valid_coco())
    target.world.manager.memberships.update(role="annotator")
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and "no longer a manager" in job.message
    assert target.annotations().count() == 0


@pytest.fixture
def target(world: World) -> Target:
    return Target(world)


# --- REST ----------------------------------------------------------------------------------------------


def post_api(user: Any, project: Project, data: Any, org_slug: str = "demo-lab", **fields: Any) -> Any:
    url = api_url("api_project_import", org_slug=org_slug, project_id=project.pk)
    return token_client(user).post(url, {"file": upload(data), **fields}, format="multipart")


def test_it_starts_the_import_through_the_api(target: Target, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(target.world.manager, target.project, valid_coco(), create_labels="true")
    assert response.status_code == 201, response.content
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert (body["kind"], body["project"], body["state"]) == ("import_dataset", target.project.pk, "queued")
    assert job.params["create_labels"] is True and job.params["proposed"] is True and job.task_result_id


def test_it_answers_400_to_a_file_that_is_not_coco(target: Target) -> None:
    response = post_api(target.world.manager, target.project, b"plain text")
    assert response.status_code == 400
    assert response.json()["code"] == "not_coco"
    assert not Job.objects.filter(kind="import_dataset").exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_api_imports_below_manager(target: Target, who: str) -> None:
    assert post_api(getattr(target.world, who), target.project, valid_coco()).status_code == 403
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_answers_404_to_another_organisation_through_the_api(target: Target) -> None:
    outsider = target.world.outsider
    assert post_api(outsider, target.project, valid_coco()).status_code == 404
    assert post_api(outsider, target.project, valid_coco(), org_slug="other-lab").status_code == 404
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_is_documented_in_the_schema(world: World) -> None:
    client = Client()
    client.force_login(world.manager)
    schema = client.get(reverse("api_schema"), {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/o/{org_slug}/projects/{project_id}/import/"]["post"]
    assert operation["operationId"] == "projects_import"
    assert set(operation["responses"]) >= {"201", "400"}
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert "nothing of it is imported" in operation["description"]


# --- the project page ----------------------------------------------------------------------------------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def import_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_import", kwargs={"org_slug": org_slug, "project_id": project.pk})


def test_it_offers_the_form_to_managers_and_owners_only(target: Target) -> None:
    page_url = target.project.get_absolute_url()
    for user in (target.world.manager, target.world.owner):
        page = client_for(user).get(page_url).content.decode()
        assert 'data-testid="dataset-import-form"' in page and f'action="{import_url(target.project)}"' in page
    for user in (target.world.reviewer, target.world.annotator):
        assert 'data-testid="dataset-import-form"' not in client_for(user).get(page_url).content.decode()


def test_it_starts_the_job_from_the_page(target: Target, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(target.world.owner).post(
            import_url(target.project), {"file": upload(valid_coco()), "as_accepted": "on"}
        )
    job = Job.objects.get(kind="import_dataset")
    assert response.status_code == 302
    assert response["Location"] == reverse("job_detail", kwargs={"org_slug": "demo-lab", "job_id": job.pk})
    assert job.params["proposed"] is False and job.created_by == target.world.owner


def test_it_sends_a_bad_file_back_to_the_project_page(target: Target) -> None:
    response = client_for(target.world.manager).post(import_url(target.project), {"file": upload(b"hi")}, follow=True)
    assert response.redirect_chain[-1][0] == target.project.get_absolute_url()
    assert "neither a zip nor a COCO JSON file" in response.content.decode()
    assert not Job.objects.filter(kind="import_dataset").exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_page_imports_below_manager(target: Target, who: str) -> None:
    response = client_for(getattr(target.world, who)).post(import_url(target.project), {"file": upload(valid_coco())})
    assert response.status_code == 403
    assert not Job.objects.filter(kind="import_dataset").exists()


def test_it_answers_404_to_another_organisation_on_the_page(target: Target) -> None:
    outsider = client_for(target.world.outsider)
    assert outsider.post(import_url(target.project), {"file": upload(valid_coco())}).status_code == 404
    assert outsider.post(import_url(target.project, "other-lab"), {"file": upload(valid_coco())}).status_code == 404
    assert not Job.objects.filter(kind="import_dataset").exists()


# --- the command ---------------------------------------------------------------------------------------


def test_it_imports_from_the_command_line(target: Target, tmp_path: Path) -> None:
    out = io.StringIO()
    path = write(tmp_path, valid_coco())
    call_command("import_dataset", str(path), "--project", str(target.project.pk), "--as-accepted", stdout=out)
    assert json.loads(out.getvalue().rsplit("\n", 2)[0])["annotations"] == 1
    assert "coco.json: 1 annotations imported as accepted objects, 1 items matched" in out.getvalue()
    annotation = target.annotations().get()
    assert annotation.proposed is False and annotation.author == target.world.owner  # the first owner


def test_it_refuses_a_malformed_file_on_the_command_line(target: Target, tmp_path: Path) -> None:
    path = write(tmp_path, b"[]")
    with pytest.raises(CommandError, match="not a COCO file"):
        call_command("import_dataset", str(path), "--project", str(target.project.pk), "--user", "manager")
    with pytest.raises(CommandError, match="is not a manager or owner"):
        call_command("import_dataset", str(path), "--project", str(target.project.pk), "--user", "reviewer")
    assert target.annotations().count() == 0
    assert os.path.exists(path)
