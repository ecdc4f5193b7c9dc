"""REST API: starting a dataset export job on a project. Managers and owners only; options checked
with a 400 per field; other organisations get a 404."""

from __future__ import annotations

from typing import Any

import pytest

from platform_core.models import Job
from tests.api_client import api_url, token_client
from tests.conftest import World


def url(world: World, org_slug: str = "demo-lab") -> str:
    return api_url("api_project_export", org_slug=org_slug, project_id=world.demo.project.pk)


def post(user: Any, world: World, body: dict[str, Any], org_slug: str = "demo-lab") -> Any:
    return token_client(user).post(url(world, org_slug), body, format="json")


def test_it_starts_the_job_and_answers_with_it(world: World, django_capture_on_commit_callbacks: Any) -> None:
    body = {"format": "coco", "polygons": True, "include_images": True, "only": "accepted", "include_proposed": True}
    with django_capture_on_commit_callbacks(execute=True):
        response = post(world.manager, world, body)
    assert response.status_code == 201, response.content
    data = response.json()
    job = Job.objects.get(pk=data["id"])
    assert (data["kind"], data["state"], data["project"], data["result"]) == (
        "export_dataset",
        "queued",
        world.demo.project.pk,
        None,
    )
    assert job.params == body and job.created_by == world.manager and job.task_result_id


def test_it_takes_the_defaults_for_what_is_not_given(world: World) -> None:
    response = post(world.owner, world, {})
    assert response.status_code == 201, response.content
    assert Job.objects.get(pk=response.json()["id"]).params == {
        "format": "coco",
        "polygons": False,
        "include_images": False,
        "only": "all",
        "include_proposed": False,
    }


def test_it_refuses_bad_options_per_field(world: World) -> None:
    response = post(world.manager, world, {"format": "voc", "only": "done", "polygons": "perhaps"})
    assert response.status_code == 400
    assert set(response.json()) == {"format", "only", "polygons"}
    assert not Job.objects.filter(kind="export_dataset").exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_members_below_manager(world: World, who: str) -> None:
    assert post(getattr(world, who), world, {}).status_code == 403
    assert not Job.objects.filter(kind="export_dataset").exists()


def test_it_answers_404_to_another_organisation(world: World) -> None:
    assert post(world.outsider, world, {}).status_code == 404
    assert post(world.outsider, world, {}, org_slug="other-lab").status_code == 404
    assert not Job.objects.filter(kind="export_dataset").exists()


def test_it_is_documented_in_the_schema(world: World) -> None:
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(world.manager)
    schema = client.get(reverse("api_schema"), {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/o/{org_slug}/projects/{project_id}/export/"]["post"]
    assert operation["operationId"] == "projects_export"
    assert set(operation["responses"]) >= {"201", "400"}
    reference = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = schema["components"]["schemas"][reference.rsplit("/", 1)[-1]]["properties"]
    assert set(fields) == {"format", "polygons", "include_images", "only", "include_proposed", "split", "subset"}
