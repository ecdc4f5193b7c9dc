"""REST API: starting a pre-annotation job on a project. Managers and owners only; every input
checked against the project with a readable 400 per field; other organisations get a 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from annotation.models import Label
from platform_core.models import Job
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import LabelFactory, ProjectFactory, make_image


@pytest.fixture(autouse=True)
def checkpoints(settings: Any, sam2_checkpoint_dir: Path) -> None:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir  # tiny is available


def url(world: World, org_slug: str = "demo-lab", project_id: int | None = None) -> str:
    return api_url("api_project_preannotate", org_slug=org_slug, project_id=project_id or world.demo.project.pk)


def automatic(world: World, **extra: Any) -> dict[str, Any]:
    return {"model": "tiny", "method": "automatic", "label": world.demo.label.pk, **extra}


def boxes(world: World, **extra: Any) -> dict[str, Any]:
    target = LabelFactory(project=world.demo.project, name="mask", kind=Label.Kind.MASK)
    return {"model": "opencv", "method": "boxes", "label": target.pk, "source_label": world.demo.label.pk, **extra}


def post(user: Any, world: World, body: dict[str, Any], **kwargs: Any) -> Any:
    return token_client(user).post(url(world, **kwargs), body, format="json")


def test_it_starts_the_job_and_answers_with_it(world: World, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(world.manager, world, automatic(world, items=[world.demo.media.pk], options={"max_objects": 3}))
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert response.json()["kind"] == "preannotate" and response.json()["state"] == "queued"
    assert (job.organization, job.project, job.created_by) == (world.demo.org, world.demo.project, world.manager)
    assert job.params == {
        "model": "tiny",
        "method": "automatic",
        "label": world.demo.label.pk,
        "source_label": None,
        "items": [world.demo.media.pk],
        "replace": False,
        "options": {
            "points_per_side": 16,
            "pred_iou_thresh": 0.8,
            "stability_score_thresh": 0.92,
            "box_nms_thresh": 0.7,
            "min_mask_region_area": 0,
            "max_objects": 3,
        },
    }
    assert DBTaskResult.objects.get(id=job.task_result_id).queue_name == "gpu"


def test_it_starts_a_boxes_job_on_the_whole_project_with_the_fallback(world: World) -> None:
    body = boxes(world, replace=True)
    response = post(world.owner, world, body)
    assert response.status_code == 201, response.content
    params = Job.objects.get(pk=response.json()["id"]).params
    assert (params["model"], params["source_label"], params["items"], params["replace"], params["options"]) == (
        "opencv",
        world.demo.label.pk,
        None,
        True,
        {},
    )


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_members_below_manager(world: World, role: str) -> None:
    response = post(getattr(world, role), world, automatic(world))
    assert response.status_code == 403
    assert not Job.objects.filter(kind="preannotate").exists()


def test_it_answers_404_to_other_organisations(world: World) -> None:
    assert post(world.outsider, world, automatic(world)).status_code == 404
    # Their own organisation with Demo Lab's project, and Demo Lab's labels on their own project.
    assert post(world.outsider, world, automatic(world), org_slug="other-lab").status_code == 404
    own = post(world.outsider, world, automatic(world), org_slug="other-lab", project_id=world.other.project.pk)
    assert own.status_code == 400
    assert own.json() == {"label": [f"No label with id {world.demo.label.pk} in this project."]}
    assert not Job.objects.filter(kind="preannotate").exists()


def errors(world: World, body: dict[str, Any]) -> dict[str, Any]:
    response = post(world.manager, world, body)
    assert response.status_code == 400, response.content
    assert not Job.objects.filter(kind="preannotate").exists()
    return response.json()


def test_it_names_an_unknown_or_unusable_model(world: World, settings: Any, tmp_path: Path) -> None:
    assert errors(world, automatic(world, model="huge")) == {"model": ["Unknown model 'huge': use one of tiny."]}
    assert "needs a SAM 2 model" in errors(world, automatic(world, model="opencv"))["model"][0]
    assert errors(world, boxes(world, model="huge")) == {"model": ["Unknown model 'huge': use one of tiny, opencv."]}
    settings.SAM2_CHECKPOINT_DIR = tmp_path  # no checkpoints at all
    assert errors(world, automatic(world, model="small")) == {
        "model": ["Model 'small' has no checkpoint on this server: no SAM 2 checkpoint is installed."]
    }


def test_it_refuses_labels_of_other_projects_and_the_wrong_kinds(world: World) -> None:
    elsewhere = LabelFactory(project=ProjectFactory(organization=world.demo.org))
    expected = {"label": [f"No label with id {elsewhere.pk} in this project."]}
    assert errors(world, automatic(world, label=elsewhere.pk)) == expected
    foreign = world.other.label.pk
    assert errors(world, automatic(world, label=foreign)) == {"label": [f"No label with id {foreign} in this project."]}
    box = LabelFactory(project=world.demo.project, name="box", kind=Label.Kind.BOX)
    assert "the new masks need a mask label" in errors(world, automatic(world, label=box.pk))["label"][0]
    body = boxes(world)
    assert "Choose the label" in errors(world, {**body, "source_label": None})["source_label"][0]
    same = errors(world, {**body, "source_label": body["label"]})
    assert same == {"source_label": ["Choose another label than the one the new masks go to."]}
    classification = LabelFactory(project=world.demo.project, name="scene", kind=Label.Kind.CLASSIFICATION)
    assert "no objects" in errors(world, {**body, "source_label": classification.pk})["source_label"][0]
    other_source = errors(world, {**body, "source_label": foreign})
    assert other_source == {"source_label": [f"No label with id {foreign} in this project."]}


def test_it_refuses_an_empty_or_foreign_selection(world: World) -> None:
    assert errors(world, automatic(world, items=[])) == {"items": ["Select at least one item."]}
    other_project = make_image(ProjectFactory(organization=world.demo.org))
    for item in (other_project.pk, world.other.media.pk):
        assert errors(world, automatic(world, items=[world.demo.media.pk, item])) == {
            "items": [f"No item {item} in this project."]
        }
    empty_project = ProjectFactory(organization=world.demo.org)
    label = LabelFactory(project=empty_project)
    response = post(world.manager, world, automatic(world, label=label.pk), project_id=empty_project.pk)
    assert response.status_code == 400
    assert response.json() == {"items": ["The project has no items to pre-annotate yet."]}


def test_it_refuses_options_out_of_range_and_bad_methods(world: World) -> None:
    assert errors(world, automatic(world, options={"points_per_side": 0})) == {
        "options": ["points_per_side must be between 1 and 64."]
    }
    assert errors(world, automatic(world, options={"pred_iou_thresh": 1.5})) == {
        "options": ["pred_iou_thresh must be between 0.0 and 1.0."]
    }
    assert "method" in errors(world, automatic(world, method="everything"))
