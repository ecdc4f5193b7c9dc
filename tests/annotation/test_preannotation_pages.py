"""The pre-annotation pages: the form on the project page and on its own page, starting a job for
the whole project or for the gallery's selection, the errors people see, who may, and the gallery's
filter for items with proposals awaiting review."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from annotation.masks import box_to_rle, rle_area, rle_bbox
from annotation.models import Annotation, Label
from platform_core.models import Job
from tests.conftest import World
from tests.factories import LabelFactory, make_image


@pytest.fixture(autouse=True)
def checkpoints(settings: Any, sam2_checkpoint_dir: Path) -> None:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_url(world: World, org_slug: str = "demo-lab") -> str:
    return reverse("preannotate", kwargs={"org_slug": org_slug, "project_id": world.demo.project.pk})


def project_url(world: World) -> str:
    return reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": world.demo.project.pk})


def form_data(world: World, **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "method": "automatic", "label": world.demo.label.pk, "scope": "all", **extra}


def test_it_offers_the_form_on_the_project_page_to_managers_only(world: World) -> None:
    page = client_for(world.manager).get(project_url(world)).content.decode()
    assert 'data-testid="preannotate-form"' in page
    assert f'action="{page_url(world)}"' in page
    assert "Pre-annotate selected" in page
    assert '<option value="tiny">' in page and '<option value="opencv">' in page
    for user in (world.annotator, world.reviewer):
        assert 'data-testid="preannotate-form"' not in client_for(user).get(project_url(world)).content.decode()


def test_it_starts_a_job_for_the_whole_project_and_goes_on_to_its_page(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(world.manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            page_url(world), form_data(world, points_per_side=8, max_objects=4, items=[world.demo.media.pk])
        )
    job = Job.objects.get(kind="preannotate")
    assert response.status_code == 302
    assert response["Location"] == reverse("job_detail", kwargs={"org_slug": "demo-lab", "job_id": job.pk})
    # Scope "all": items that came along are not a selection.
    assert (job.params["items"], job.params["options"]["points_per_side"], job.params["options"]["max_objects"]) == (
        None,
        8,
        4,
    )
    assert job.params["options"]["pred_iou_thresh"] == 0.8  # left empty: the default
    followed = client.get(response["Location"])
    assert "Pre-annotating the whole project in the background." in followed.content.decode()


def test_it_shows_the_form_for_the_gallerys_selection_then_starts_on_those_items(world: World) -> None:
    second = make_image(world.demo.project, name="second.png")
    client = client_for(world.manager)
    chosen = client.post(page_url(world), {"step": "choose", "items": [world.demo.media.pk, second.pk]})
    page = chosen.content.decode()
    assert chosen.status_code == 200
    assert "Pre-annotate 2 selected items" in page
    assert f'<input type="hidden" name="items" value="{second.pk}">' in page
    assert '<input type="hidden" name="scope" value="selected">' in page
    assert not Job.objects.filter(kind="preannotate").exists()

    started = client.post(page_url(world), form_data(world, scope="selected", items=[second.pk]))
    assert started.status_code == 302
    assert Job.objects.get(kind="preannotate").params["items"] == [second.pk]


def test_it_sends_an_empty_selection_back_to_the_gallery(world: World) -> None:
    response = client_for(world.manager).post(page_url(world), {"step": "choose"}, follow=True)
    assert response.redirect_chain == [(project_url(world), 302)]
    assert "Select at least one item first." in response.content.decode()
    refused = client_for(world.manager).post(page_url(world), form_data(world, scope="selected"))
    assert refused.status_code == 400
    assert "Select at least one item." in refused.content.decode()
    assert not Job.objects.filter(kind="preannotate").exists()


def test_it_shows_what_is_wrong_with_the_inputs(world: World) -> None:
    client = client_for(world.manager)
    fallback = client.post(page_url(world), form_data(world, model="opencv"))
    assert fallback.status_code == 400
    assert "automatic pre-annotation needs a SAM 2 model" in fallback.content.decode()
    target = LabelFactory(project=world.demo.project, name="mask", kind=Label.Kind.MASK)
    same = client.post(page_url(world), form_data(world, method="boxes", label=target.pk, source_label=target.pk))
    assert same.status_code == 400
    assert "Choose another label than the one the new masks go to." in same.content.decode()
    foreign = client.post(page_url(world), form_data(world, label=world.other.label.pk))
    assert foreign.status_code == 400  # not one of the choices the page offers
    assert not Job.objects.filter(kind="preannotate").exists()


def test_it_refuses_members_below_manager_and_other_organisations(world: World) -> None:
    for user in (world.annotator, world.reviewer):
        assert client_for(user).get(page_url(world)).status_code == 403
        assert client_for(user).post(page_url(world), form_data(world)).status_code == 403
    outsider = client_for(world.outsider)
    assert outsider.get(page_url(world)).status_code == 404
    assert outsider.post(page_url(world), form_data(world)).status_code == 404
    assert outsider.post(page_url(world, "other-lab"), form_data(world)).status_code == 404
    assert not Job.objects.filter(kind="preannotate").exists()


def test_it_filters_the_gallery_by_proposals_awaiting_review(world: World) -> None:
    proposed_item = make_image(world.demo.project, name="has-proposals.png")
    rle = box_to_rle([2, 2, 10, 10], height=48, width=64)
    Annotation.objects.create(
        media=proposed_item,
        label=world.demo.label,
        rle=rle,
        bbox=rle_bbox(rle),
        area=rle_area(rle),
        source=Annotation.Source.MODEL,
        proposed=True,
    )
    client = client_for(world.manager)
    with_proposals = client.get(project_url(world), {"proposed": "yes"}, HTTP_HX_REQUEST="true").content.decode()
    assert "has-proposals.png" in with_proposals and world.demo.media.original_name not in with_proposals
    without = client.get(project_url(world), {"proposed": "no"}, HTTP_HX_REQUEST="true").content.decode()
    assert "has-proposals.png" not in without and world.demo.media.original_name in without
