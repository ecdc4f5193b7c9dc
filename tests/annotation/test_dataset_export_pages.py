"""The project page's Export form: shown to managers and owners, starting the export job and going
on to its page on the Jobs pages; refused to reviewers and annotators, a 404 to other organisations."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from platform_core.models import Job
from tests.conftest import World


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def export_url(world: World, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_export", kwargs={"org_slug": org_slug, "project_id": world.demo.project.pk})


def project_url(world: World) -> str:
    return reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": world.demo.project.pk})


def test_it_offers_the_form_on_the_project_page_to_managers_and_owners_only(world: World) -> None:
    for user in (world.manager, world.owner):
        page = client_for(user).get(project_url(world)).content.decode()
        assert 'data-testid="export-form"' in page and f'action="{export_url(world)}"' in page
        for name in ("format", "polygons", "include_images", "only_accepted", "include_proposed"):
            assert f'name="{name}"' in page
    for user in (world.reviewer, world.annotator):
        assert 'data-testid="export-form"' not in client_for(user).get(project_url(world)).content.decode()


def test_it_starts_the_job_and_goes_on_to_its_page(world: World, django_capture_on_commit_callbacks: Any) -> None:
    client = client_for(world.manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(export_url(world), {"format": "masks", "include_images": "on", "only_accepted": "on"})
    job = Job.objects.get(kind="export_dataset")
    assert response.status_code == 302
    assert response["Location"] == reverse("job_detail", kwargs={"org_slug": "demo-lab", "job_id": job.pk})
    assert (job.organization, job.project, job.created_by, job.state) == (
        world.demo.org,
        world.demo.project,
        world.manager,
        Job.State.QUEUED,
    )
    assert job.params == {
        "format": "masks",
        "polygons": False,
        "include_images": True,
        "only": "accepted",
        "include_proposed": False,
    }
    page = client.get(response["Location"]).content.decode()
    assert "Exporting" in page and "Dataset export" in page


def test_it_sends_a_bad_format_back_to_the_project_page(world: World) -> None:
    response = client_for(world.owner).post(export_url(world), {"format": "voc"}, follow=True)
    assert response.redirect_chain[-1][0] == project_url(world)
    assert "Choose a format to export" in response.content.decode()
    assert not Job.objects.filter(kind="export_dataset").exists()


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_members_below_manager(world: World, who: str) -> None:
    assert client_for(getattr(world, who)).post(export_url(world), {"format": "coco"}).status_code == 403
    assert not Job.objects.filter(kind="export_dataset").exists()


def test_it_answers_404_to_another_organisation(world: World) -> None:
    outsider = client_for(world.outsider)
    assert outsider.post(export_url(world), {"format": "coco"}).status_code == 404
    # Their own organisation in the URL, Demo Lab's project: still nothing.
    assert outsider.post(export_url(world, "other-lab"), {"format": "coco"}).status_code == 404
    assert client_for(world.manager).get(export_url(world)).status_code == 405
    assert not Job.objects.filter(kind="export_dataset").exists()
