"""Merging projects into one: items copied with their files, answers and annotations; labels mapped
by name, by an explicit mapping, or created; what cannot be mapped reported; the job (retries do not
copy twice), the REST endpoint, the page and ``manage.py merge_datasets``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from annotation.datasets.merge import dataset_merge_run, dataset_merge_start
from annotation.masks import mask_decode
from annotation.models import Annotation, Label, MediaItem, Project, Question
from platform_core.jobs.core import run_job
from platform_core.jobs.services import job_retry
from platform_core.models import Job
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_project import DatasetProject, make_dataset_project, run_export
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import ProjectFactory


@pytest.fixture
def dataset(world: World) -> DatasetProject:
    return make_dataset_project(world)


class Into:
    """The target: images only, a mask label “CAT” (the source's “cat” by name) with the question
    “Pose” offering one of the source's two choices, and the per-item question “Light”."""

    def __init__(self, world: World) -> None:
        self.project = ProjectFactory(organization=world.demo.org, name="Into", media_type=Project.MediaType.IMAGES)
        self.cat = Label.objects.create(project=self.project, name="CAT", color="#123456")
        self.pose = Question.objects.create(
            project=self.project, label=self.cat, text="pose", choices=["sitting", "other"]
        )
        self.light = Question.objects.create(project=self.project, text="Light", choices=["day", "night"])
        self.tenant = resolve_tenant(world.manager, "demo-lab")
        self.world = world

    def annotations(self) -> Any:
        return Annotation.objects.filter(media__project=self.project)


@pytest.fixture
def into(world: World) -> Into:
    return Into(world)


def merge(into: Into, dataset: DatasetProject, **options: Any) -> dict[str, Any]:
    state = dataset_merge_run(
        tenant=into.tenant, project=into.project, sources=[dataset.project], actor=into.world.manager, **options
    )
    return state.report()


def test_it_copies_items_with_their_files_answers_and_annotations(into: Into, dataset: DatasetProject) -> None:
    report = merge(into, dataset)
    copies = {item.original_name: item for item in MediaItem.objects.filter(project=into.project)}
    assert set(copies) == {"street/photo 1.png", "photo 1.png", "scan.bmp"}  # not the video
    for source in (dataset.street, dataset.garden, dataset.scan):
        copy = copies[source.original_name]
        assert (copy.width, copy.height, copy.content_type, copy.kind) == (
            source.width,
            source.height,
            source.content_type,
            source.kind,
        )
        # The bytes stored again under the target's prefix.
        assert copy.file.name != source.file.name and copy.file.name.startswith(
            f"org-{into.project.organization_id}/project-{into.project.pk}/"
        )
        assert copy.file.read() == source.file.read()
        assert copy.thumbnail.name and copy.task is None and copy.done_at is None
    # Per-item answers by question text: “Light” exists here; the classification label does not.
    assert copies["street/photo 1.png"].answers == {str(into.light.pk): "night"}
    assert copies["photo 1.png"].answers == {str(into.light.pk): "day"}
    # Every cat object (and the proposal, still proposed), none of the sign's: no such label here.
    cats = Annotation.objects.filter(media__project=dataset.project, label=dataset.cat, media__kind="image")
    assert into.annotations().count() == cats.count() == 7
    for source in cats:
        copy = into.annotations().get(source_detail__merged_from__annotation=source.pk)
        assert copy.label == into.cat and copy.media == copies[source.media.original_name]
        assert np.array_equal(mask_decode(copy.rle), mask_decode(source.rle))
        assert (copy.z_order, copy.proposed, copy.source, copy.author) == (
            source.z_order,
            source.proposed,
            source.source,
            source.author,
        )
    sitting = into.annotations().get(source_detail__merged_from__annotation=dataset.objects["blob"].pk)
    assert sitting.answers == {str(into.pose.pk): "sitting"}
    assert (report["items"], report["annotations"]) == (3, 7)
    assert report["per_source"] == [
        {"project": dataset.project.pk, "name": "Pets & things", "items": 3, "annotations": 7}
    ]
    assert report["skipped_items"] == [
        {
            "project": "Pets & things",
            "item": dataset.video.pk,
            "name": "clip.mp4",
            "reason": "a video: the target takes images",
        }
    ]
    assert report["skipped_annotations"] == [
        {
            "annotation": dataset.objects["sign"].pk,
            "item": dataset.street.pk,
            "reason": "the label “sign” has no label in the target (map it, or create labels)",
        }
    ]
    unmapped = {(row["question"], row["answer"], row["reason"]) for row in report["unmapped_answers"]}
    assert unmapped == {
        ("Pose", "lying", "not one of the choices of the target's “pose”"),
        ("Where", "outdoor", "the target has no such question"),
    }
    # The source is as it was.
    assert MediaItem.objects.filter(project=dataset.project).count() == 4


def test_it_follows_an_explicit_mapping(into: Into, dataset: DatasetProject) -> None:
    report = merge(into, dataset, mapping={str(dataset.box.pk): into.cat.pk})
    assert report["skipped_annotations_count"] == 0 and report["annotations"] == 8
    sign = into.annotations().get(source_detail__merged_from__annotation=dataset.objects["sign"].pk)
    assert sign.label == into.cat and sign.drawn == {"box": [40, 20, 62, 44]}


def test_it_creates_the_labels_and_questions_the_target_lacks(into: Into, dataset: DatasetProject) -> None:
    report = merge(into, dataset, create_labels=True)
    assert report["labels_created"] == ["sign", "scene"]
    sign = into.project.labels.get(name="sign")
    assert (sign.kind, sign.color) == (Label.Kind.BOX, "#0044ff")
    scene = into.project.labels.get(name="scene")
    where = scene.questions.get(text="Where")
    street = MediaItem.objects.get(project=into.project, original_name="street/photo 1.png")
    assert street.answers == {str(into.light.pk): "night", str(where.pk): "outdoor"}
    assert report["skipped_annotations_count"] == 0 and report["annotations"] == 8


def test_it_copies_exports_that_load_like_the_sources(into: Into, dataset: DatasetProject, tmp_path: Path) -> None:
    merge(into, dataset, create_labels=True)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, before = run_export(dataset.project, tmp_path / "a", include_proposed=True)
    _, after = run_export(into.project, tmp_path / "b", include_proposed=True)
    first, second = json.loads(before.read_text()), json.loads(after.read_text())
    assert len(first["annotations"]) == len(second["annotations"]) == 8
    assert [a["segmentation"] for a in first["annotations"]] == [a["segmentation"] for a in second["annotations"]]


# --- the job ---------------------------------------------------------------------------------------


def start(into: Into, capture: Any, **options: Any) -> Job:
    with capture(execute=True):
        return dataset_merge_start(tenant=into.tenant, project=into.project, actor=into.world.manager, **options)


def test_it_runs_as_a_job_and_a_retry_copies_nothing_twice(
    into: Into, dataset: DatasetProject, django_capture_on_commit_callbacks: Any
) -> None:
    job = start(into, django_capture_on_commit_callbacks, sources=[dataset.project.pk], create_labels=True)
    assert (job.kind, job.params) == (
        "merge_datasets",
        {"sources": [dataset.project.pk], "mapping": {}, "create_labels": True},
    )
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert (job.report["items"], job.report["annotations"], job.progress_done, job.progress_total) == (3, 8, 4, 4)
    assert job.params["resume"]["cursor"] == {"project": dataset.project.pk, "item": dataset.video.pk}

    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)
    job_retry(job=Job.objects.get(pk=job.pk), actor=into.world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.report["items"] == 3
    assert MediaItem.objects.filter(project=into.project).count() == 3
    assert into.annotations().count() == 8


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"sources": []}, "sources", "Choose at least one project to merge in."),
        ({"sources": ["x"]}, "sources", "Give each project as its id, a whole number."),
        ({"sources": "self"}, "sources", "A project cannot be merged into itself."),
        ({"sources": "foreign"}, "sources", "No project {foreign} in this organisation."),
        ({"mapping": {"999999": "target"}}, "mapping", "No label 999999 in the projects to merge."),
        ({"mapping": {"cat": "foreign"}}, "mapping", "No label {foreign_label} in this project."),
        (
            {"mapping": {"scene": "target"}},
            "mapping",
            "“scene” and “CAT”: a classification label maps to a classification label only.",
        ),
    ],
)
def test_it_refuses_bad_inputs(
    into: Into, dataset: DatasetProject, world: World, options: dict[str, Any], field: str, message: str
) -> None:
    values = {"sources": [dataset.project.pk], **options}
    names = {"self": into.project.pk, "foreign": world.other.project.pk}
    if isinstance(values["sources"], str):
        values["sources"] = [names[values["sources"]]]
    labels = {"cat": dataset.cat.pk, "scene": dataset.scene.pk, "target": into.cat.pk, "foreign": world.other.label.pk}
    if "mapping" in options:
        values["mapping"] = {str(labels.get(k, k)): labels.get(v, v) for k, v in options["mapping"].items()}
    with pytest.raises(ValidationError) as info:
        dataset_merge_start(tenant=into.tenant, project=into.project, actor=into.world.manager, **values)
    expected = message.format(foreign=world.other.project.pk, foreign_label=world.other.label.pk)
    assert info.value.message_dict == {field: [expected]}
    assert not Job.objects.filter(kind="merge_datasets").exists()


# --- REST, page, command -------------------------------------------------------------------------------


def merge_api(project: Project, org_slug: str = "demo-lab") -> str:
    return api_url("api_project_merge", org_slug=org_slug, project_id=project.pk)


def test_it_starts_the_merge_through_the_api(into: Into, dataset: DatasetProject, world: World) -> None:
    body = {"sources": [dataset.project.pk], "mapping": {str(dataset.box.pk): into.cat.pk}}
    response = token_client(world.manager).post(merge_api(into.project), body, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.params == {
        "sources": [dataset.project.pk],
        "mapping": {str(dataset.box.pk): into.cat.pk},
        "create_labels": False,
    }


def test_it_answers_400_for_a_project_of_another_organisation(into: Into, world: World) -> None:
    body = {"sources": [world.other.project.pk]}
    response = token_client(world.manager).post(merge_api(into.project), body, format="json")
    assert response.status_code == 400
    assert response.json() == {"sources": [f"No project {world.other.project.pk} in this organisation."]}


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_api_merges_below_manager(into: Into, dataset: DatasetProject, world: World, who: str) -> None:
    body = {"sources": [dataset.project.pk]}
    assert token_client(getattr(world, who)).post(merge_api(into.project), body, format="json").status_code == 403
    assert not Job.objects.filter(kind="merge_datasets").exists()


def test_it_answers_404_to_another_organisation(into: Into, dataset: DatasetProject, world: World) -> None:
    client = token_client(world.outsider)
    for org_slug in ("demo-lab", "other-lab"):
        body = {"sources": [dataset.project.pk]}
        assert client.post(merge_api(into.project, org_slug), body, format="json").status_code == 404
    assert not Job.objects.filter(kind="merge_datasets").exists()


def page_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_merge", kwargs={"org_slug": org_slug, "project_id": project.pk})


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_starts_the_merge_from_the_page(
    into: Into, dataset: DatasetProject, world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(world.manager)
    page = client.get(page_url(into.project)).content.decode()
    assert 'data-testid="merge-form"' in page and "Pets &amp; things" in page
    assert "Into</label>" not in page  # not itself
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page_url(into.project), {"sources": [dataset.project.pk], "create_labels": "on"})
    job = Job.objects.get(kind="merge_datasets")
    assert response.status_code == 302
    assert response["Location"] == reverse("job_detail", kwargs={"org_slug": "demo-lab", "job_id": job.pk})
    assert job.params["create_labels"] is True and job.params["sources"] == [dataset.project.pk]


@pytest.mark.parametrize("who", ["reviewer", "annotator"])
def test_it_refuses_the_page_below_manager(into: Into, dataset: DatasetProject, world: World, who: str) -> None:
    client = client_for(getattr(world, who))
    assert client.get(page_url(into.project)).status_code == 403
    assert client.post(page_url(into.project), {"sources": [dataset.project.pk]}).status_code == 403
    assert not Job.objects.filter(kind="merge_datasets").exists()


def test_it_answers_404_to_another_organisation_on_the_page(into: Into, dataset: DatasetProject, world: World) -> None:
    client = client_for(world.outsider)
    for org_slug in ("demo-lab", "other-lab"):
        assert client.get(page_url(into.project, org_slug)).status_code == 404
        assert client.post(page_url(into.project, org_slug), {"sources": [dataset.project.pk]}).status_code == 404
    assert not Job.objects.filter(kind="merge_datasets").exists()


def test_it_merges_projects_and_coco_files_from_the_command_line(
    into: Into, dataset: DatasetProject, tmp_path: Path
) -> None:
    second = ProjectFactory(organization=dataset.project.organization, name="Second")
    (tmp_path / "export").mkdir()
    _, zipped = run_export(dataset.project, tmp_path / "export", include_images=True)
    out = io.StringIO()
    call_command(
        "merge_datasets",
        "--into",
        str(into.project.pk),
        "--from",
        str(dataset.project.pk),
        "--from",
        str(second.pk),
        "--from-coco",
        str(zipped),
        "--map",
        f"{dataset.box.pk}={into.cat.pk}",
        stdout=out,
    )
    # Three items copied with 8 objects, then three images of the zip with the 6 cat objects (no proposal).
    assert "6 items and 14 annotations merged into 'Into'." in out.getvalue()
    assert MediaItem.objects.filter(project=into.project).count() == 6
