"""Mask tasks: the worker outlines the label on each item as polygons; the server rasterises them
with pycocotools, refuses unusable drawings with a clear message (saving nothing), scores gold masks
by IoU against the project's threshold, and scores mask qualification tests the same way."""

from __future__ import annotations

import html as html_text
import json
import re
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from annotation.masks import box_to_rle, mask_decode, polygon_to_rle, rle_iou
from crowd import services
from crowd.models import CrowdAssignment, CrowdWorker, QualificationAttempt
from crowd.scoring import mask_from_drawing
from tests.crowd.helpers import (
    GOLD_BOX,
    RecordingClient,
    box_polygon,
    drawing,
    link_url,
    mask_crowd_setup,
    mturk_url,
)

COMPLETE = "https://app.prolific.com/submissions/complete?cc="
GOOD = box_polygon(GOLD_BOX)  # exactly the gold box
CLOSE = box_polygon([11, 8, 40, 32])  # IoU ≈ 0.97 with the gold box
FAR = box_polygon([30, 20, 60, 46])  # IoU ≈ 0.16


def _task_url(client: Any, batch: Any, session: str = "s1") -> str:
    response = client.get(link_url(batch, session=session))
    assert response.status_code == 302 and response["Location"].startswith("/crowd/task/"), response
    return response["Location"]


# --- the page -------------------------------------------------------------------------------
def test_it_shows_a_simplified_studio_with_the_label(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, with_test=False)
    client = Client()
    page = client.get(_task_url(client, crowd.batch)).content.decode()
    assert "Outline every cup in the picture" in page
    assert 'fill="#f58231"' in page and "The cup, not the saucer." in page  # colour and guidelines
    assert '<canvas class="crowd-canvas"' in page and 'data-colour="#f58231"' in page
    assert 'name="mask"' in page and 'src="/static/crowd/mask.js"' in page
    for action in ("close", "undo", "clear"):
        assert f'data-mask-action="{action}"' in page
    assert client.get("/static/crowd/mask.js").status_code == 200
    assert "{#" not in page and "comment" not in page  # template comments stay in the template


# --- submitting -----------------------------------------------------------------------------
def test_it_turns_the_polygons_into_the_mask(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, regular=1, hidden=0, with_test=False)
    client = Client()
    url = _task_url(client, crowd.batch)
    second = [[45, 30], [60, 30], [52, 44]]
    response = client.post(url, {"mask": drawing(GOOD, second)})
    assert response["Location"] == COMPLETE + "C0MPL3TE"
    assignment = CrowdAssignment.objects.get()
    assert (assignment.state, assignment.answer) == ("submitted", "")
    expected = mask_decode(polygon_to_rle(GOOD, height=48, width=64)) | mask_decode(
        polygon_to_rle(second, height=48, width=64)
    )
    assert (mask_decode(assignment.answer_rle) == expected).all()
    assert assignment.answer_rle["size"] == [48, 64] and isinstance(assignment.answer_rle["counts"], str)


BAD_DRAWINGS = [
    ("", "Draw the outline of the object before submitting."),
    ("{not json", "could not be read"),
    (json.dumps({"polygons": [GOOD]}), "does not say the size"),
    (json.dumps({"size": [48, 64], "polygons": []}), "Draw the outline of the object before submitting."),
    (drawing([[1, 1], [20, 1]]), "Shape 1 needs at least three points."),
    (drawing(GOOD, [[1, 1], ["a", 2], [3, 3]]), "Shape 2 has a point that is not a pair of numbers."),
    (drawing([[1, 1], [70, 1], [20, 20]]), "Shape 1 has a point outside the picture (70, 1)"),
    (drawing([[1, -2], [10, 1], [5, 5]]), "outside the picture"),
    (drawing(GOOD, size=(96, 128)), "made on a picture of 96×128 pixels but the picture is 48×64"),
    (drawing([[5, 5], [5, 5], [5, 5]]), "The outline covers no pixel of the picture"),
]


@pytest.mark.parametrize(("posted", "message"), BAD_DRAWINGS, ids=[m[:30] for _, m in BAD_DRAWINGS])
def test_it_refuses_an_unusable_drawing_and_saves_nothing(world: Any, posted: str, message: str) -> None:
    crowd = mask_crowd_setup(world.demo, regular=1, hidden=0, with_test=False)
    client = Client()
    url = _task_url(client, crowd.batch)
    response = client.post(url, {"mask": posted})
    assert response.status_code == 400
    html = response.content.decode()
    alert = re.search(r'<p class="error" role="alert">(.*?)</p>', html).group(1)
    assert message in html_text.unescape(alert), alert
    assignment = CrowdAssignment.objects.get()
    assert (assignment.state, assignment.answer_rle, assignment.submitted_at) == ("assigned", {}, None)
    # The same link still works, with the drawing kept in the form for the page to restore.
    kept = re.search(r'name="mask" value="([^"]*)"', html).group(1)
    assert html_text.unescape(kept) == posted
    assert client.post(url, {"mask": drawing(GOOD)}).status_code == 302


def test_it_refuses_a_drawing_too_large_to_read(world: Any) -> None:
    with pytest.raises(ValidationError, match="too large"):
        mask_from_drawing("x" * (600 * 1024), height=48, width=64)
    many = drawing(*([[[1, 1], [2, 1], [2, 2]]] * 101))
    with pytest.raises(ValidationError, match="at most 100 shapes"):
        mask_from_drawing(many, height=48, width=64)


def test_it_hands_a_mask_back_to_mturk_without_the_mask(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, provider="mturk", regular=1, hidden=0, with_test=False)
    client = Client()
    entry = client.get(mturk_url(crowd.batch, assignment="A-M"))
    done = client.post(entry["Location"], {"mask": drawing(GOOD)})
    html = done.content.decode()
    assert 'name="assignmentId" value="A-M"' in html and 'name="answer" value="mask"' in html
    assert "counts" not in html


def test_it_previews_a_mask_task_without_the_tool(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, provider="mturk", with_test=False)
    client = Client()
    html = client.get(mturk_url(crowd.batch, assignment="ASSIGNMENT_ID_NOT_AVAILABLE")).content.decode()
    assert "Outline every cup" in html and "<form" not in html and "<canvas" not in html
    image = re.search(r'<img class="crowd-image" src="([^"]+)"', html).group(1)
    assert client.get(image).status_code == 200
    assert not CrowdWorker.objects.exists()


# --- gold -----------------------------------------------------------------------------------
def _gold_assignment(world: Any, monkeypatch: pytest.MonkeyPatch, **setup: Any) -> tuple[Any, str]:
    crowd = mask_crowd_setup(world.demo, regular=2, hidden=1, gold_rate=1.0, **setup)
    monkeypatch.setattr(services, "_draw", lambda: 0.0)
    worker = services.worker_enter(batch=crowd.batch, external_id="p")
    assignment = services.assignment_next(batch=crowd.batch, worker=worker, context={"session_id": "s"})
    assert assignment.is_gold
    return assignment, crowd


@pytest.mark.parametrize(("polygon", "correct"), [(GOOD, True), (CLOSE, True), (FAR, False)])
def test_it_scores_a_gold_mask_by_iou(world: Any, monkeypatch: pytest.MonkeyPatch, polygon: Any, correct: bool) -> None:
    assignment, _ = _gold_assignment(world, monkeypatch, with_test=False)
    done = services.assignment_submit(assignment=assignment, mask=drawing(polygon))
    expected = rle_iou(polygon_to_rle(polygon, height=48, width=64), box_to_rle(GOLD_BOX, height=48, width=64))
    assert done.gold_score == pytest.approx(expected)
    assert done.gold_correct is correct  # 0.7 without a qualification test


def test_it_scores_gold_masks_against_the_tests_threshold(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assignment, _ = _gold_assignment(world, monkeypatch, with_test=True, iou_threshold=0.99)
    done = services.assignment_submit(assignment=assignment, mask=drawing(CLOSE))
    assert 0.9 < done.gold_score < 0.99 and done.gold_correct is False


def test_it_blocks_a_worker_whose_masks_miss_the_gold(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crowd = mask_crowd_setup(world.demo, regular=4, hidden=3, gold_rate=1.0, with_test=False)
    monkeypatch.setattr(services, "_draw", lambda: 0.0)
    worker = RecordingClient()
    response = worker.get(link_url(crowd.batch))
    while response.status_code == 302 and response["Location"].startswith("/crowd/task/"):
        response = worker.post(response["Location"], {"mask": drawing(FAR)})
    person = CrowdWorker.objects.get()
    assert person.blocked and "0%" in person.block_reason
    assert CrowdAssignment.objects.filter(is_gold=True, gold_correct=False).count() == 3
    assert not CrowdAssignment.objects.filter(is_gold=False).exists()
    assert b"No more work" in response.content


def test_it_never_tells_gold_mask_tasks_from_regular_ones(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    crowd = mask_crowd_setup(world.demo, regular=2, hidden=2, gold_rate=0.5, with_test=False)
    draws = iter([0.0, 0.9] * 10)
    monkeypatch.setattr(services, "_draw", lambda: next(draws))
    worker = RecordingClient()
    response = worker.get(link_url(crowd.batch))
    pages = set()
    while response.status_code == 302 and response["Location"].startswith("/crowd/task/"):
        url = response["Location"]
        token = url.split("/")[3]
        page = worker.get(url)
        headers = {k: v for k, v in page.items() if k != "Content-Length"}
        pages.add(repr((page.content.decode().replace(token, "TOKEN"), headers)))
        response = worker.post(url, {"mask": drawing(GOOD)})
    assert [a.is_gold for a in CrowdAssignment.objects.order_by("id")] == [True, False, True, False]
    assert len(pages) == 1
    assert all(b"gold" not in r.content.lower() for r in worker.seen)


# --- qualification --------------------------------------------------------------------------
def _take_test(worker: Any, crowd: Any, polygons: list[Any]) -> tuple[Any, Any]:
    url = worker.get(link_url(crowd.batch))["Location"]
    page = worker.get(url)
    return url, page, worker.post(url, {f"answer-{n}": drawing(p) for n, p in enumerate(polygons)})


def test_it_passes_a_worker_whose_masks_reach_the_threshold(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, qualification=2, pass_mark=1.0)
    worker = RecordingClient()
    _, page, response = _take_test(worker, crowd, [GOOD, CLOSE])
    html = page.content.decode()
    assert html.count('<canvas class="crowd-canvas"') == 2 and 'name="answer-1"' in html
    assert response["Location"].startswith("/crowd/task/")
    attempt = QualificationAttempt.objects.get()
    assert (attempt.score, attempt.passed) == (1.0, True)
    assert [mask["size"] for mask in attempt.answers] == [[48, 64], [48, 64]]


def test_it_scores_a_mask_test_as_the_share_of_pictures_at_the_threshold(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, qualification=2, pass_mark=0.75)
    _, _, response = _take_test(RecordingClient(), crowd, [GOOD, FAR])
    assert response["Location"] == COMPLETE + "SCR33N"
    attempt = QualificationAttempt.objects.get()
    assert (attempt.score, attempt.passed) == (0.5, False)
    assert not CrowdAssignment.objects.exists()


def test_it_refuses_a_mask_test_with_an_unusable_picture(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, qualification=2)
    worker = RecordingClient()
    url, _, response = _take_test(worker, crowd, [GOOD, [[1, 1], [2, 2]]])
    assert response.status_code == 400
    assert "Picture 2: Shape 1 needs at least three points." in response.content.decode()
    assert QualificationAttempt.objects.get().finished_at is None
    # Both drawings are kept for the page to restore.
    kept = re.findall(r'name="answer-\d" value="([^"]*)"', response.content.decode())
    assert [html_text.unescape(value) for value in kept] == [drawing(GOOD), drawing([[1, 1], [2, 2]])]
    assert worker.post(url, {"answer-0": drawing(GOOD), "answer-1": drawing(GOOD)}).status_code == 302


def test_it_serves_the_test_pictures(world: Any) -> None:
    crowd = mask_crowd_setup(world.demo, qualification=2)
    client = Client()
    token = client.get(link_url(crowd.batch))["Location"].split("/")[3]
    assert client.get(reverse("crowd_qualification_image", kwargs={"token": token, "index": 1})).status_code == 200
    assert client.get(reverse("crowd_qualification_image", kwargs={"token": token, "index": 2})).status_code == 404
    # Mask tests have no object to draw over the picture.
    assert client.get(reverse("crowd_qualification_overlay", kwargs={"token": token, "index": 0})).status_code == 404
