"""Video evaluation (annotation.datasets.video_scores): DAVIS' J, F and J&F per object and overall,
on a constructed pair of annotation sets whose figures are worked out here: another project's tracks
paired by best mean IoU, one project's pre-annotations paired by track number on finished videos;
videos matched by name, skipped when their frame counts differ; the statistics page (and its
downloads) and ``manage.py dataset_stats`` (json, csv, latex), other organisations: 404."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.annotations.services import annotation_create
from annotation.datasets.evaluation import OBJECTS, PREANNOTATIONS, AnnotationSet, Comparison, evaluate
from annotation.datasets.video_evaluation import boundary_f
from annotation.datasets.video_scores import evaluate_videos
from annotation.masks import mask_encode
from annotation.models import Annotation, Label, MediaItem, Project
from annotation.video_services import media_create_video
from platform_core.tenancy import resolve_tenant
from tests.annotation.test_dataset_video_export import box_mask
from tests.annotation.test_video_files import make_clip
from tests.conftest import World
from tests.factories import ProjectFactory

H, W = 48, 64
A = box_mask(H, W, 10, 10, 30, 30)  # 400 pixels
B = box_mask(H, W, 15, 10, 35, 30)  # A moved 5 pixels right: 300 in common, 500 in the union
SMALL = box_mask(H, W, 50, 5, 58, 13)
FAR = box_mask(H, W, 0, 40, 8, 48)


@dataclass
class Side:
    project: Project
    video: MediaItem
    label: Label


def side(world: World, name: str, *, frames: int = 5) -> Side:
    project = ProjectFactory(organization=world.demo.org, name=name, media_type=Project.MediaType.VIDEOS)
    label = Label.objects.create(project=project, name="car", color="#aa0000")
    video = media_create_video(project=project, name="drive.mp4", data=make_clip(frames=frames))
    return Side(project, video, label)


def draw(world: World, where: Side, frame: int, track: int | None, mask: np.ndarray, **extra: Any) -> Annotation:
    return annotation_create(
        tenant=resolve_tenant(world.manager, "demo-lab"),
        media=where.video,
        label=where.label,
        rle=mask_encode(mask),
        author=world.manager,
        frame=frame,
        track=track,
        **extra,
    )


@pytest.fixture
def truth(world: World) -> Side:
    """Track 1 on frames 0–2 (box A); track 2 on frame 4 only."""
    reference = side(world, "Reference")
    for frame in range(3):
        draw(world, reference, frame, 1, A)
    draw(world, reference, 4, 2, SMALL)
    return reference


@pytest.fixture
def prediction(world: World) -> Side:
    """Track 9: A on frame 0, B on frame 1, absent on 2, A on 3 (where the truth has nothing);
    track 4: far from everything on frame 4; numbers unlike the reference's."""
    annotator = side(world, "Annotator")
    draw(world, annotator, 0, 9, A)
    draw(world, annotator, 1, 9, B)
    draw(world, annotator, 3, 9, A)
    draw(world, annotator, 4, 4, FAR)
    return annotator


def expected_track_1() -> tuple[float, float]:
    # Frames 0–3 count (frame 4: neither set has the object): 1, 0.6, 0 (missed), 0 (spurious).
    j = (1.0 + 0.6 + 0.0 + 0.0) / 4
    f = (1.0 + boundary_f(B, A) + 0.0 + 0.0) / 4
    return j, f


def test_it_scores_another_projects_tracks_paired_by_best_mean_iou(prediction: Side, truth: Side) -> None:
    result = evaluate_videos(Comparison(AnnotationSet(prediction.project), AnnotationSet(truth.project)))
    assert result is not None and result.pairing == "best mean IoU"
    assert (result.videos_compared, result.videos_unmatched, result.videos_skipped) == (1, 0, {})
    assert (result.truth_objects, result.prediction_objects, result.unpaired_prediction_objects) == (2, 2, 1)

    first, second = result.objects
    j, f = expected_track_1()
    assert (first.video, first.track, first.label, first.prediction_track, first.frames) == (
        "drive.mp4",
        1,
        "car",
        9,
        4,
    )
    assert first.j == pytest.approx(j) and first.f == pytest.approx(f)
    assert first.jf == pytest.approx((j + f) / 2)
    # Track 2 overlaps nothing: unpaired, it scores 0 on its one frame.
    assert (second.track, second.prediction_track, second.frames, second.j, second.f) == (2, None, 1, 0.0, 0.0)

    assert result.j_mean == pytest.approx(j / 2) and result.f_mean == pytest.approx(f / 2)
    assert result.jf_mean == pytest.approx((j + f) / 4)
    assert 0 < boundary_f(B, A) < 1  # the boundary measure is neither trivial case here


def test_it_pairs_by_track_number_within_one_project(world: World, truth: Side) -> None:
    # A model's proposals on the reference's own video: track 1 on frames 0 and 1 (B on frame 1).
    draw(world, truth, 0, 1, A, proposed=True, source=Annotation.Source.MODEL)
    draw(world, truth, 1, 1, B, proposed=True, source=Annotation.Source.MODEL)
    comparison = Comparison(AnnotationSet(truth.project, PREANNOTATIONS), AnnotationSet(truth.project, OBJECTS))

    unfinished = evaluate_videos(comparison)
    assert unfinished is not None and unfinished.videos_compared == 0 and unfinished.objects == []

    MediaItem.objects.filter(pk=truth.video.pk).update(done_at=timezone.now())
    result = evaluate_videos(comparison)
    assert result is not None and result.pairing == "track number"
    first, second = result.objects
    # Frames 0, 1, 2: 1, 0.6 and 0 (the proposal stops after frame 1).
    assert (first.track, first.prediction_track, first.frames) == (1, 1, 3)
    assert first.j == pytest.approx(1.6 / 3) and first.f == pytest.approx((1 + boundary_f(B, A)) / 3)
    assert (second.track, second.prediction_track, second.j) == (2, None, 0.0)


def test_it_skips_videos_of_another_frame_count_and_counts_those_without_a_match(world: World, truth: Side) -> None:
    other = side(world, "Longer", frames=6)
    draw(world, other, 0, 1, A)
    result = evaluate_videos(Comparison(AnnotationSet(other.project), AnnotationSet(truth.project)))
    assert result is not None
    assert (result.videos_compared, result.videos_skipped) == (0, {"different video size or frame count": 1})
    assert result.j_mean is None and result.jf_mean is None

    MediaItem.objects.filter(pk=other.video.pk).update(original_name="elsewhere.mp4")
    result = evaluate_videos(Comparison(AnnotationSet(other.project), AnnotationSet(truth.project)))
    assert result is not None and (result.videos_compared, result.videos_unmatched) == (0, 1)


def test_it_leaves_video_figures_out_where_there_are_no_videos(world: World) -> None:
    evaluation = evaluate(Comparison(AnnotationSet(world.demo.project), AnnotationSet(world.demo.project)))
    assert evaluation.videos is None
    assert [table.key for table in evaluation.tables()] == ["evaluation", "evaluation_classes", "evaluation_coco"]
    assert evaluation.as_dict()["videos"] is None


def test_evaluate_gives_the_video_tables_of_a_video_project(prediction: Side, truth: Side) -> None:
    evaluation = evaluate(Comparison(AnnotationSet(prediction.project), AnnotationSet(truth.project)))
    assert [table.key for table in evaluation.tables()] == ["evaluation_videos", "evaluation_video_objects"]
    j, f = expected_track_1()
    assert evaluation.as_dict()["videos"]["JF_mean"] == pytest.approx((j + f) / 4)


# --- the command ----------------------------------------------------------------------------------------


def stats(*args: str) -> str:
    out = io.StringIO()
    call_command("dataset_stats", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_j_and_f_as_json_csv_and_latex(prediction: Side, truth: Side) -> None:
    base = ("--project", str(prediction.project.pk), "--evaluate-against", str(truth.project.pk))
    j, f = expected_track_1()

    videos = json.loads(stats(*base, "--format", "json"))["evaluation"]["videos"]
    assert videos["videos_compared"] == 1 and videos["pairing"] == "best mean IoU"
    assert [(o["track"], o["prediction_track"]) for o in videos["objects"]] == [(1, 9), (2, None)]
    assert videos["objects"][0]["J_mean"] == pytest.approx(j) and videos["objects"][0]["F_mean"] == pytest.approx(f)
    assert videos["J_mean"] == pytest.approx(j / 2)

    rows = list(csv.reader(io.StringIO(stats(*base, "--format", "csv", "--table", "evaluation_video_objects"))))
    assert rows[0] == ["Video", "Track", "Label", "Predicted track", "Frames", "J", "F", "J&F"]
    assert rows[1][:5] == ["drive.mp4", "1", "car", "9", "4"] and float(rows[1][5]) == pytest.approx(j, abs=1e-6)
    assert rows[2][:5] == ["drive.mp4", "2", "car", "", "1"]
    assert rows[3][0] == "All objects" and float(rows[3][7]) == pytest.approx((j + f) / 4, abs=1e-6)

    latex = stats(*base, "--format", "latex")
    assert r"\caption{J and F per object." in latex and r"J\&F mean" in latex
    assert f"{j:.3f}" in latex


# --- the page ------------------------------------------------------------------------------------------


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_statistics", kwargs={"org_slug": org_slug, "project_id": project.pk})


def test_the_statistics_page_shows_j_and_f(world: World, prediction: Side, truth: Side) -> None:
    query = {"prediction": "objects", "truth": str(truth.project.pk)}
    page = client_for(world.reviewer).get(page_url(prediction.project), query).content.decode()
    assert "J and F per object" in page and 'data-testid="video-evaluation-chart"' in page
    j, f = expected_track_1()
    assert f"{(j + f) / 2:.3f}" in page

    fragment = client_for(world.manager).get(page_url(prediction.project), query, HTTP_HX_REQUEST="true")
    assert "J and F per object" in fragment.content.decode() and "<html" not in fragment.content.decode()

    download = client_for(world.manager).get(
        page_url(prediction.project), {**query, "format": "csv", "table": "evaluation_videos"}
    )
    assert download.status_code == 200 and "J&F mean" in download.content.decode()


def test_the_statistics_page_answers_404_to_other_organisations(world: World, prediction: Side, truth: Side) -> None:
    query = {"prediction": "objects", "truth": str(truth.project.pk)}
    outsider = client_for(world.outsider)
    assert outsider.get(page_url(prediction.project), query).status_code == 404
    assert outsider.get(page_url(prediction.project, "other-lab"), query).status_code == 404
    # Another organisation's project as the ground truth: no such project.
    foreign = {"prediction": "objects", "truth": str(world.other.project.pk)}
    assert client_for(world.manager).get(page_url(prediction.project), foreign).status_code == 404
