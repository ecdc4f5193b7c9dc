"""Object units: a question about each object of a label (PartInventory's "one or many instances?"
about each part mask). The hand-out gives each object k times and never twice to one worker; hidden
gold objects are scored; the task page shows the object's mask drawn over its picture, in exactly
the same form for gold and regular objects."""

from __future__ import annotations

import io
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from annotation.masks import mask_decode
from crowd import services
from crowd.models import CrowdAssignment, CrowdWorker, GoldItem
from tests.crowd.helpers import RecordingClient, crowd_setup, link_url, mturk_url, object_crowd_setup

COMPLETE = "https://app.prolific.com/submissions/complete?cc="


def _drain(batch: Any, worker: Any, session: str, answer: str = "one") -> list[CrowdAssignment]:
    given = []
    while assignment := services.assignment_next(batch=batch, worker=worker, context={"session_id": session}):
        given.append(assignment)
        services.assignment_submit(assignment=assignment, answer=answer)
    return given


def _overlay_pixels(response: Any) -> tuple[np.ndarray, np.ndarray]:
    """The overlay PNG as (RGB, alpha) arrays."""
    rgba = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGBA"))
    return rgba[..., :3], rgba[..., 3]


# --- hand-out -------------------------------------------------------------------------------
def test_it_hands_out_each_object_k_times_and_never_twice_to_a_worker(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = object_crowd_setup(world.demo, objects=4, hidden=2, k=2, gold_rate=0.5, with_test=False)
    draws = iter([0.1, 0.9, 0.7, 0.2, 0.3] * 40)
    monkeypatch.setattr(services, "_draw", lambda: next(draws))
    workers = [services.worker_enter(batch=crowd.batch, external_id=f"p{n}") for n in range(4)]
    for worker in workers:
        for session in ("a", "b"):
            _drain(crowd.batch, worker, session)

    rows = list(CrowdAssignment.objects.select_related("annotation"))
    assert all(row.annotation is not None and row.media_id == row.annotation.media_id for row in rows)
    assert max(Counter((row.worker_id, row.annotation_id) for row in rows).values()) == 1
    regular = Counter(row.annotation_id for row in rows if not row.is_gold)
    assert regular == {obj.pk: 2 for obj in crowd.objects}
    gold = {row.annotation_id for row in rows if row.is_gold}
    assert gold and gold <= {g.annotation_id for g in crowd.hidden}
    # Never a proposed object, an object of another label, or a qualification item.
    assert {row.annotation.label_id for row in rows} == {crowd.label.pk}
    assert not any(row.annotation.proposed for row in rows)
    assert not {row.annotation_id for row in rows} & {g.annotation_id for g in crowd.qualification}


def test_it_hands_out_the_least_answered_object_first(world: Any) -> None:
    crowd = object_crowd_setup(world.demo, objects=3, hidden=0, with_test=False)
    first, second = (services.worker_enter(batch=crowd.batch, external_id=pid) for pid in ("p1", "p2"))
    given = services.assignment_next(batch=crowd.batch, worker=first, context={"session_id": "s"})
    assert given.annotation == crowd.objects[0]
    # Two objects share the first picture: the other worker gets the next object, not the same one.
    assert (
        services.assignment_next(batch=crowd.batch, worker=second, context={"session_id": "s"}).annotation
        == (crowd.objects[1])
    )


@pytest.mark.django_db(transaction=True)
def test_it_hands_out_objects_concurrently_without_going_past_k(world: Any) -> None:
    # Real row locks need PostgreSQL (SQLite has no SELECT … FOR UPDATE): the PostgreSQL pass runs it.
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("SELECT … FOR UPDATE SKIP LOCKED needs PostgreSQL")
    import threading

    from django.db import connections

    crowd = object_crowd_setup(world.demo, objects=3, hidden=0, k=2, with_test=False)
    workers = [services.worker_enter(batch=crowd.batch, external_id=f"p{n}") for n in range(6)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def work(worker: Any) -> None:
        try:
            start.wait()
            _drain(crowd.batch, worker, "s")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = CrowdAssignment.objects.all()
    assert Counter(a.annotation_id for a in rows) == {obj.pk: 2 for obj in crowd.objects}
    assert max(Counter((a.worker_id, a.annotation_id) for a in rows).values()) == 1


# --- hidden gold ----------------------------------------------------------------------------
def test_it_scores_gold_objects_and_blocks_a_worker_who_misses_them(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = object_crowd_setup(world.demo, objects=4, hidden=3, gold_rate=1.0, with_test=False)
    monkeypatch.setattr(services, "_draw", lambda: 0.0)
    wrong = services.worker_enter(batch=crowd.batch, external_id="wrong")
    _drain(crowd.batch, wrong, "s", answer="one")  # the gold objects are "many"
    wrong.refresh_from_db()
    assert wrong.blocked and "0%" in wrong.block_reason
    assert CrowdAssignment.objects.filter(worker=wrong, is_gold=True, gold_correct=False).count() == 3

    right = services.worker_enter(batch=crowd.batch, external_id="right")
    _drain(crowd.batch, right, "s", answer="many")
    right.refresh_from_db()
    assert not right.blocked
    assert CrowdAssignment.objects.filter(worker=right, is_gold=True, gold_correct=True).count() == 3


# --- pages ----------------------------------------------------------------------------------
def _token(url: str) -> str:
    return re.match(r"^/crowd/task/([^/]+)/$", url).group(1)


def _shape(token: str, page: Any, overlay: Any) -> tuple:
    headers = {k: v for k, v in page.items() if k != "Content-Length"}
    overlay_headers = {k: v for k, v in overlay.items() if k != "Content-Length"}
    return (page.status_code, page.content.decode().replace(token, "TOKEN"), headers, overlay_headers)


def test_it_shows_each_object_over_its_picture_the_same_way_for_gold(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crowd = object_crowd_setup(world.demo, objects=3, hidden=2, gold_rate=0.5)
    draws = iter([0.0, 0.9] * 10)  # gold, regular, gold, regular …
    monkeypatch.setattr(services, "_draw", lambda: next(draws))
    worker = RecordingClient()
    entry = worker.get(link_url(crowd.batch))
    test_page = worker.get(entry["Location"])
    # The qualification test shows each gold object over its picture too.
    overlays = re.findall(r'<img class="crowd-overlay" src="([^"]+)"', test_page.content.decode())
    assert len(overlays) == 2
    response = worker.post(entry["Location"], {"answer-0": "one", "answer-1": "one"})

    shapes, seen = set(), []
    while response.status_code == 302 and response["Location"].startswith("/crowd/task/"):
        url = response["Location"]
        token = _token(url)
        page = worker.get(url)
        html = page.content.decode()
        assert re.search(r'<img class="crowd-image" src="/crowd/task/[^/]+/image"', html)
        overlay_url = re.search(r'<img class="crowd-overlay" src="([^"]+)"', html).group(1)
        assert overlay_url == reverse("crowd_task_overlay", kwargs={"token": token})
        overlay = worker.get(overlay_url)
        image = worker.get(reverse("crowd_task_image", kwargs={"token": token}))
        shapes.add(repr(_shape(token, page, overlay)))
        seen.append((overlay, image))
        response = worker.post(url, {"answer": "many"})
    assert response["Location"] == COMPLETE + "C0MPL3TE"

    assignments = list(CrowdAssignment.objects.select_related("annotation__label").order_by("id"))
    assert [a.is_gold for a in assignments] == [True, False, True, False, False]
    assert len(shapes) == 1  # gold and regular pages are the same bytes, tokens aside
    for assignment, (overlay, image) in zip(assignments, seen, strict=True):
        rgb, alpha = _overlay_pixels(overlay)
        mask = mask_decode(assignment.annotation.rle)
        assert alpha.shape == mask.shape == Image.open(io.BytesIO(image.content)).size[::-1]
        assert np.array_equal(alpha > 0, mask)  # exactly the object's pixels, nothing else
        assert set(map(tuple, rgb[mask])) == {(0x3C, 0xB4, 0x4B)}  # in its label's colour
    for response in worker.seen:
        if response["Content-Type"].startswith("text/html"):
            text = response.content.decode().lower()
            assert "gold" not in text, text[max(0, text.find("gold") - 200) : text.find("gold") + 50]


def test_it_names_the_part_on_the_task_page(world: Any) -> None:
    crowd = object_crowd_setup(world.demo, objects=1, hidden=0, with_test=False)
    client = Client()
    page = client.get(client.get(link_url(crowd.batch))["Location"]).content.decode()
    assert "One or many instances?" in page
    assert "<strong>leg</strong>" in page and 'fill="#3cb44b"' in page
    assert "Every <strong>leg</strong> counts." in page  # the label's guidelines
    assert 'data-key="1"' in page and "<kbd>2</kbd> many" in page  # quick keys on the buttons


def test_it_previews_a_regular_object_on_mturk(world: Any) -> None:
    crowd = object_crowd_setup(world.demo, provider="mturk", objects=2, hidden=0, with_test=False)
    # The first object by id is made gold: the preview must pass it by.
    GoldItem.objects.create(
        project=crowd.batch.project,
        media=crowd.objects[0].media,
        annotation=crowd.objects[0],
        question=crowd.question,
        answer="one",
    )
    client = Client()
    preview = client.get(mturk_url(crowd.batch, assignment="ASSIGNMENT_ID_NOT_AVAILABLE"))
    html = preview.content.decode()
    assert "<form" not in html
    overlay = client.get(re.search(r'<img class="crowd-overlay" src="([^"]+)"', html).group(1))
    assert overlay.status_code == 200
    # Overlays are worker pages too: framed by MTurk only, never cached, no referrer.
    assert "frame-ancestors https://www.mturk.com" in overlay["Content-Security-Policy"]
    assert (overlay["Cache-Control"], overlay["Referrer-Policy"]) == ("no-store", "no-referrer")
    assert "X-Frame-Options" not in overlay
    assert np.array_equal(_overlay_pixels(overlay)[1] > 0, mask_decode(crowd.objects[1].rle))
    assert not CrowdWorker.objects.exists()


def test_it_has_no_overlay_for_an_item_question(world: Any) -> None:
    crowd = crowd_setup(world.demo, with_test=False)
    client = Client()
    url = client.get(link_url(crowd.batch))["Location"]
    assert "crowd-overlay" not in client.get(url).content.decode()
    assert client.get(reverse("crowd_task_overlay", kwargs={"token": _token(url)})).status_code == 404
