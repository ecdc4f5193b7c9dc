"""Evaluation of one annotation set against another: identical sets score 1, a known shift scores the
IoU and Dice worked out by hand (per class and overall, mean and pooled) and the AP COCOeval's
interpolation gives, an empty prediction set scores 0; images are matched by name across projects,
pre-annotations are compared with people's objects on finished images; the page's form and
downloads, and the command."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.annotations.services import annotation_accept, annotation_create
from annotation.datasets.evaluation import (
    OBJECTS,
    PREANNOTATIONS,
    SKIP_NAME,
    SKIP_SIZE,
    AnnotationSet,
    Comparison,
    evaluate,
)
from annotation.masks import mask_encode
from annotation.models import Annotation, Label, MediaItem, Project
from platform_core.tenancy import resolve_tenant
from tests.conftest import World
from tests.factories import ProjectFactory, make_image

WIDTH, HEIGHT = 120, 100


def rect(x: int, y: int, w: int, h: int) -> dict:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask_encode(mask)


def make_project(world: World, name: str, labels: tuple[str, ...] = ("cat", "dog")) -> Project:
    project = ProjectFactory(organization=world.demo.org, name=name)
    for order, label in enumerate(labels):
        Label.objects.create(project=project, name=label, order=order)
    return project


def image(project: Project, name: str, *, width: int = WIDTH, height: int = HEIGHT) -> MediaItem:
    return make_image(project, name=name, width=width, height=height)


def draw(world: World, item: MediaItem, label: str, rle: dict, **extra: Any) -> Annotation:
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    return annotation_create(
        tenant=tenant,
        media=item,
        label=Label.objects.get(project=item.project, name=label),
        rle=rle,
        author=world.manager,
        **extra,
    )


def against(prediction: Project, truth: Project, selection: str = OBJECTS) -> Comparison:
    return Comparison(AnnotationSet(prediction, selection), AnnotationSet(truth, OBJECTS))


def figures_of(result: Any, name: str) -> Any:
    return next(f for f in result.classes if f.name == name)


def test_it_scores_identical_sets_one(world: World) -> None:
    truth, prediction = make_project(world, "Reference"), make_project(world, "Copy")
    for project in (truth, prediction):
        one, two = image(project, "one.png"), image(project, "two.png")
        draw(world, one, "cat", rect(10, 10, 40, 30))
        draw(world, one, "cat", rect(60, 50, 20, 20))  # two cats: the class's masks are united
        draw(world, one, "dog", rect(0, 70, 100, 30))
        draw(world, two, "dog", rect(5, 5, 100, 95))
    result = evaluate(against(prediction, truth))
    assert (result.items_compared, result.items_unmatched, result.items_skipped) == (2, 0, {})
    assert (result.prediction_objects, result.truth_objects) == (4, 4)
    for figures in result.classes:
        assert (figures.mean_iou, figures.mean_dice, figures.pooled_iou, figures.pooled_dice) == (1.0, 1.0, 1.0, 1.0)
    assert (figures_of(result, "cat").items, figures_of(result, "dog").items) == (1, 2)
    assert (result.mean_iou, result.mean_dice, result.pooled_iou, result.pooled_dice) == (1.0, 1.0, 1.0, 1.0)
    for iou_type in ("segm", "bbox"):
        coco = result.coco[iou_type]
        assert (coco["AP"], coco["AP50"], coco["AP75"]) == (1.0, 1.0, 1.0)
        # Every size class is present: a 400 px cat (small), 1200 and 3000 px (medium), 9500 px (large).
        assert (coco["APs"], coco["APm"], coco["APl"]) == pytest.approx((1.0, 1.0, 1.0))
    # Within one project, its objects against themselves: the same.
    same = evaluate(against(truth, truth))
    assert same.mean_iou == 1.0 and same.coco["segm"]["AP"] == 1.0


def test_it_scores_a_known_shift(world: World) -> None:
    truth, prediction = make_project(world, "Reference"), make_project(world, "Shifted")
    # One: a 10×10 square shifted 5 px: |P∩G| = 50, |P∪G| = 150: IoU 1/3, Dice 100/200 = 0.5.
    # Two: shifted 2 px: |P∩G| = 80, |P∪G| = 120: IoU 2/3, Dice 160/200 = 0.8.
    t1, t2 = image(truth, "one.png"), image(truth, "two.png")
    p1, p2 = image(prediction, "one.png"), image(prediction, "two.png")
    draw(world, t1, "cat", rect(20, 20, 10, 10))
    draw(world, t2, "cat", rect(20, 20, 10, 10))
    model = {"source": Annotation.Source.MODEL}
    draw(world, p1, "cat", rect(25, 20, 10, 10), source_detail={"score": 0.8}, **model)
    draw(world, p2, "cat", rect(22, 20, 10, 10), source_detail={"score": 0.9}, **model)
    result = evaluate(against(prediction, truth))
    cat = figures_of(result, "cat")
    assert cat.items == 2 and (cat.intersection, cat.union) == (130, 270)
    assert cat.mean_iou == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert cat.mean_dice == pytest.approx((0.5 + 0.8) / 2)
    assert cat.pooled_iou == pytest.approx(130 / 270)
    assert cat.pooled_dice == pytest.approx(2 * 130 / 400)
    # The dog label holds nothing in either set: no figure, and no part in the overall means.
    dog = figures_of(result, "dog")
    assert dog.items == 0 and dog.mean_iou is None
    assert result.mean_iou == pytest.approx(0.5) and result.pooled_iou == pytest.approx(130 / 270)
    # At IoU .5 the better-scored prediction (0.9, IoU 2/3) is a hit, the other (0.8, 1/3) a miss:
    # precision 1 up to recall 1/2, then nothing; COCO's 101-point interpolation gives 51/101.
    for iou_type in ("segm", "bbox"):
        coco = result.coco[iou_type]
        assert coco["AP50"] == pytest.approx(51 / 101)
        assert coco["AP75"] == 0.0  # no prediction overlaps by 3/4
        assert coco["APs"] == pytest.approx(coco["AP"]) and coco["APm"] is None and coco["APl"] is None
    # Scores swapped: the miss comes first, so precision at recall 1/2 is 1/2: AP50 = 51/101 × 1/2.
    Annotation.objects.filter(media=p1).update(source_detail={"score": 0.95})
    assert evaluate(against(prediction, truth)).coco["segm"]["AP50"] == pytest.approx(51 / 101 / 2)


def test_it_scores_an_empty_prediction_set_zero(world: World) -> None:
    truth, prediction = make_project(world, "Reference"), make_project(world, "Nothing drawn")
    draw(world, image(truth, "one.png"), "cat", rect(0, 0, 10, 10))
    draw(world, image(truth, "two.png"), "dog", rect(0, 0, 50, 50))
    image(prediction, "one.png")
    image(prediction, "two.png")
    result = evaluate(against(prediction, truth))
    assert (result.items_compared, result.prediction_objects, result.truth_objects) == (2, 0, 2)
    assert (result.mean_iou, result.mean_dice, result.pooled_iou, result.pooled_dice) == (0.0, 0.0, 0.0, 0.0)
    for iou_type in ("segm", "bbox"):
        coco = result.coco[iou_type]
        # COCOeval's own answer with ground truth and no detection is 0; with no ground truth in a
        # size class (nothing large here) it defines nothing: None.
        assert (coco["AP"], coco["AP50"], coco["AP75"], coco["APs"], coco["APm"]) == (0.0, 0.0, 0.0, 0.0, 0.0)
        assert coco["APl"] is None


def test_it_defines_nothing_without_ground_truth(world: World) -> None:
    truth, prediction = make_project(world, "Empty reference"), make_project(world, "Drawn")
    image(truth, "one.png")
    draw(world, image(prediction, "one.png"), "cat", rect(0, 0, 10, 10))
    result = evaluate(against(prediction, truth))
    assert result.mean_iou == 0.0  # the cat is on the image in one set only
    assert set(result.coco["segm"].values()) == {None}


def test_it_matches_images_by_name_and_skips_what_it_cannot_pair(world: World) -> None:
    truth, prediction = make_project(world, "Reference"), make_project(world, "Work")
    for project in (truth, prediction):
        draw(world, image(project, "same.png"), "cat", rect(0, 0, 10, 10))
    image(truth, "twice.png")
    image(truth, "twice.png")
    image(prediction, "twice.png")
    image(truth, "sized.png", width=60, height=40)
    draw(world, image(prediction, "sized.png"), "cat", rect(0, 0, 10, 10))
    image(prediction, "only-here.png")
    result = evaluate(against(prediction, truth))
    assert result.items_compared == 1
    assert result.items_unmatched == 1
    assert result.items_skipped == {SKIP_NAME: 1, SKIP_SIZE: 1}
    assert result.mean_iou == 1.0 and result.prediction_objects == 1


def test_it_compares_pre_annotations_with_peoples_objects_on_finished_images(world: World) -> None:
    project = make_project(world, "Pre-annotated")
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    done, open_ = image(project, "done.png"), image(project, "open.png")
    proposal = {"source": Annotation.Source.MODEL, "source_detail": {"method": "automatic", "score": 0.7}}
    # On the finished image: a person's cat, a proposal shifted 5 px from it (IoU 1/3), an accepted
    # proposal (in both sets: a hit) and a smart-tool dog (a person's prompt: ground truth only).
    draw(world, done, "cat", rect(20, 20, 10, 10))
    draw(world, done, "cat", rect(25, 20, 10, 10), proposed=True, **proposal)
    accepted = draw(world, done, "dog", rect(60, 60, 20, 20), proposed=True, **proposal)
    annotation_accept(tenant=tenant, annotation=accepted, expected_version=1, actor=world.manager)
    draw(
        world,
        done,
        "dog",
        rect(0, 60, 10, 10),
        source=Annotation.Source.MODEL,
        drawn={"tool": "smart", "points": [[5, 65]]},
        source_detail={"model": "tiny", "score": 0.9},
    )
    MediaItem.objects.filter(pk=done.pk).update(done_at=timezone.now(), done_by=world.annotator)
    # On the unfinished image a proposal says nothing yet.
    draw(world, open_, "cat", rect(0, 0, 30, 30), proposed=True, **proposal)
    result = evaluate(against(project, project, PREANNOTATIONS))
    assert result.finished_only and result.items_compared == 1
    assert (result.prediction_objects, result.truth_objects) == (2, 3)
    cat, dog = figures_of(result, "cat"), figures_of(result, "dog")
    assert cat.mean_iou == pytest.approx(1 / 3)
    # Dogs: the accepted 20×20 against it and the 10×10 smart-tool dog: 400 / 500.
    assert (dog.intersection, dog.union) == (400, 500)
    # COCOeval averages over classes: cats 0 (the one proposal misses at IoU .5), dogs 51/101 (one
    # of two found, first).
    assert result.coco["segm"]["AP50"] == pytest.approx(51 / 101 / 2)


def test_it_takes_peoples_objects_as_ground_truth_only(world: World) -> None:
    project = make_project(world, "P")
    with pytest.raises(ValidationError):
        Comparison(AnnotationSet(project, OBJECTS), AnnotationSet(project, PREANNOTATIONS))
    with pytest.raises(ValidationError):
        AnnotationSet(project, "everything")


# --- the page and the command --------------------------------------------------------------------------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stats_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_statistics", kwargs={"org_slug": org_slug, "project_id": project.pk})


def shifted_pair(world: World) -> tuple[Project, Project]:
    truth, prediction = make_project(world, "Reference"), make_project(world, "Shifted")
    draw(world, image(truth, "one.png"), "cat", rect(20, 20, 10, 10))
    draw(world, image(prediction, "one.png"), "cat", rect(25, 20, 10, 10))
    return truth, prediction


def test_it_evaluates_from_the_statistics_page(world: World) -> None:
    truth, prediction = shifted_pair(world)
    client = client_for(world.reviewer)
    page = client.get(stats_url(prediction)).content.decode()
    assert 'data-testid="evaluation-form"' in page and f'<option value="{truth.pk}">Objects of Reference' in page
    query = {"prediction": "objects", "truth": str(truth.pk)}
    full = client.get(stats_url(prediction), query).content.decode()
    assert 'data-testid="evaluation-result"' in full and 'data-testid="table-labels"' in full
    assert "0.333" in full and 'aria-labelledby="chart-evaluation-title"' in full
    fragment = client.get(stats_url(prediction), query, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert 'data-testid="evaluation-result"' in body and 'data-testid="table-labels"' not in body
    assert "<html" not in body and "HX-Request" in fragment["Vary"]


def test_it_downloads_the_evaluation_with_the_statistics(world: World) -> None:
    truth, prediction = shifted_pair(world)
    client = client_for(world.manager)
    query = {"prediction": "objects", "truth": str(truth.pk)}
    data = json.loads(client.get(stats_url(prediction), {**query, "format": "json"}).content)
    assert data["evaluation"]["mean_iou"] == pytest.approx(1 / 3)
    assert data["evaluation"]["coco"]["segm"]["AP75"] == 0.0 and data["evaluation"]["coco"]["segm"]["APl"] is None
    archive = zipfile.ZipFile(io.BytesIO(client.get(stats_url(prediction), {**query, "format": "csv"}).content))
    assert {"evaluation.csv", "evaluation_classes.csv", "evaluation_coco.csv", "labels.csv"} <= set(archive.namelist())
    coco = archive.read("evaluation_coco.csv").decode().splitlines()
    assert coco[0] == "Metric,segm,bbox" and coco[6] == "APl,,"
    latex = client.get(stats_url(prediction), {**query, "format": "latex", "table": "evaluation_classes"})
    assert r"cat & 1 & 1 & 1 & 0.333 & 0.500 & 0.333 & 0.500 \\" in latex.content.decode()


def test_it_refuses_a_reference_project_of_another_organisation(world: World) -> None:
    _, prediction = shifted_pair(world)
    client = client_for(world.manager)
    foreign = {"prediction": "objects", "truth": str(world.other.project.pk)}
    assert client.get(stats_url(prediction), foreign).status_code == 404
    assert client.get(stats_url(prediction), {**foreign, "format": "json"}).status_code == 404


def test_it_explains_a_bad_choice(world: World) -> None:
    _, prediction = shifted_pair(world)
    client = client_for(world.manager)
    page = client.get(stats_url(prediction), {"prediction": "everything", "truth": "this"}).content.decode()
    assert 'data-testid="evaluation-error"' in page and "Choose what to evaluate" in page
    assert client.get(stats_url(prediction), {"prediction": "everything", "format": "json"}).status_code == 400


def test_it_evaluates_from_the_command(world: World) -> None:
    truth, prediction = shifted_pair(world)
    out = io.StringIO()
    call_command(
        "dataset_stats",
        "--project",
        str(prediction.pk),
        "--evaluate-against",
        str(truth.pk),
        "--format",
        "json",
        stdout=out,
    )
    evaluation = json.loads(out.getvalue())["evaluation"]
    assert evaluation["items_compared"] == 1 and evaluation["classes"][0]["mean_dice"] == pytest.approx(0.5)
    out = io.StringIO()
    call_command(
        "dataset_stats",
        "--project",
        str(prediction.pk),
        "--evaluate-preannotations",
        "--table",
        "evaluation",
        stdout=out,
    )
    assert "Images compared & 0" in out.getvalue()  # nothing finished yet
    with pytest.raises(CommandError, match="another organisation"):
        call_command(
            "dataset_stats", "--project", str(prediction.pk), "--evaluate-against", str(world.other.project.pk)
        )
