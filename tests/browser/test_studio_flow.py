"""An annotator's round in the studio, served by daphne on the test database so the page saves over
its websocket: a polygon, a brush mask with part of it erased, a box; a per-object and a per-item
answer; undo and redo; Enter (save and next) and >> (next unannotated); back on the item, everything
is there. A second browser on the same item sees each change as it happens, and every stored RLE is,
pixel for pixel, what pycocotools makes of the geometry the page says it drew."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect
from pycocotools import mask as coco_mask

from annotation.models import Annotation, MediaItem, Question
from tests.browser.conftest import in_own_thread
from tests.browser.test_hardening import watch
from tests.browser.test_studio import (
    STUDIO,
    H,
    W,
    at,
    coco_counts,
    decode,
    drag,
    expected_mask,
    idle,
    items,  # noqa: F401 - the fixture, shared
)
from tests.browser.test_workspace_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEEN = (
    f"{STUDIO}.then((s) => s.store.ordered().map((o) => "
    "({id: o.id, version: o.version, label: o.label, rle: o.rle, drawn: o.drawn, answers: o.answers})))"
)
# Points inside the polygon, on the brush stroke (away from the eraser), inside the box, and one the
# eraser took back from the brush stroke (inside no object).
IN_POLYGON, IN_BRUSH, IN_BOX, ERASED = (110, 90), (60, 208), (250, 70), (87, 218.8)


@pytest.fixture
def dense(world: Any) -> Question:
    """A per-item question of the project (the world's own question is about objects of its label)."""
    return Question.objects.create(project=world.demo.project, text="Dense scene", choices=["yes", "no"])


def rows(item: MediaItem) -> list[dict[str, Any]]:
    """The item's stored annotations, bottom to top, as the page holds them."""
    return in_own_thread(
        lambda: [
            {
                "id": a.pk,
                "version": a.version,
                "label": a.label_id,
                "rle": a.rle,
                "drawn": a.drawn,
                "answers": a.answers,
            }
            for a in Annotation.objects.filter(media=item).order_by("z_order", "id")
        ]
    )


def seen(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(SEEN)


def sees(page: Any, expected: list[dict[str, Any]]) -> None:
    """Wait until the page holds the ids and versions of ``expected`` (without reloading), then
    compare everything."""
    want = [[o["id"], o["version"]] for o in expected]
    # Polled from here: wait_for_function takes a promise for a truthy value and would not wait.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if page.evaluate(f"{STUDIO}.then((s) => s.store.ordered().map((o) => [o.id, o.version]))") == want:
            break
        page.wait_for_timeout(50)
    assert seen(page) == expected


def hit(page: Any, point: tuple[float, float]) -> int | None:
    return page.evaluate(f"([x, y]) => {STUDIO}.then((s) => s.masks.hit(x, y)?.id ?? null)", list(point))


def live(page: Any) -> None:
    """The studio came up over its websocket, not the REST fallback."""
    assert page.evaluate(f"{STUDIO}.then((s) => s.store.transport.kind)") == "socket"
    expect(page.get_by_test_id("studio-transport")).to_have_text("Live")


def test_it_takes_an_annotator_through_an_item_over_the_socket_with_a_second_page_watching(
    world: Any,
    items: list[MediaItem],  # noqa: F811
    dense: Question,
    daphne_server: str,
    page: Any,
) -> None:
    first, second, third = items
    in_own_thread(lambda: MediaItem.objects.filter(pk=third.pk).update(done_at="2026-01-01T00:00:00Z"))
    label, quality = world.demo.label, world.demo.question
    url = f"{daphne_server}/o/demo-lab/tasks/{world.demo.task.pk}/items/{first.pk}/studio/"
    errors = watch(page)
    rest_calls: list[str] = []
    page.context.on("request", lambda r: rest_calls.append(r.url) if "/annotations/" in r.url else None)
    sign_in(page, daphne_server, "annotator")
    page.goto(url)
    live(page)
    expect(page.get_by_test_id("task-position")).to_have_text("Item 2 of 4")
    expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")

    # The same annotator in a second browser (its own cookies), on the same item.
    other_context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    other_context.on("request", lambda r: rest_calls.append(r.url) if "/annotations/" in r.url else None)
    other = other_context.new_page()
    other.set_default_timeout(15_000)
    other_errors = watch(other)
    try:
        sign_in(other, daphne_server, "annotator")
        other.goto(url)
        live(other)
        assert seen(other) == []

        # A polygon, closed on its first vertex.
        page.keyboard.press("p")
        for point in [(60.4, 40.2), (150.7, 52.1), (170.3, 120.8), (90.2, 140.6)]:
            page.mouse.click(*at(page, *point))
        page.mouse.click(*at(page, 60.4, 40.2))
        idle(page)
        # A brush stroke (a new object, away from the polygon), then the eraser across it, smaller.
        page.keyboard.press("Escape")
        page.keyboard.press("b")
        drag(page, [(40, 200), (90, 220), (150, 250)])
        idle(page)
        page.keyboard.press("e")
        page.keyboard.press("[")
        drag(page, [(80, 190), (95, 240)])
        idle(page)
        # A box.
        page.keyboard.press("r")
        drag(page, [(210.3, 30.6), (260, 60), (290.8, 110.2)])
        idle(page)

        drawn = rows(first)
        assert [o["drawn"]["tool"] for o in drawn] == ["polygon", "brush", "box"]
        assert [[s["mode"] for s in o["drawn"].get("strokes", [])] for o in drawn] == [[], ["paint", "erase"], []]
        assert [o["version"] for o in drawn] == [1, 2, 1]  # the eraser changed the brush object
        assert {o["label"] for o in drawn} == {label.pk}
        polygon, brush, box = (o["id"] for o in drawn)
        assert seen(page) == drawn
        # The second page saw the new objects arrive and the erased stroke, and draws them.
        sees(other, drawn)
        assert [hit(other, p) for p in (IN_POLYGON, IN_BRUSH, IN_BOX, ERASED)] == [polygon, brush, box, None]

        # The box is selected: its label's question, answered in the panel.
        questions = page.locator(f"[data-object-questions='{label.pk}']")
        expect(questions).to_be_visible()
        questions.get_by_label("partially visible").check()
        idle(page)
        answered = rows(first)
        assert answered[2]["id"] == box and answered[2]["answers"] == {str(quality.pk): "partially visible"}
        assert answered[2]["version"] == 2
        sees(other, answered)

        # Undo the answer (written back as a new version), then the box itself (deleted); the
        # second page follows each step.
        page.keyboard.press("Control+z")
        idle(page)
        unanswered = rows(first)
        assert (unanswered[2]["answers"], unanswered[2]["version"]) == ({}, 3)
        sees(other, unanswered)
        page.keyboard.press("Control+z")
        idle(page)
        assert [o["id"] for o in rows(first)] == [polygon, brush]
        sees(other, unanswered[:2])
        expect(other.get_by_test_id("object-count")).to_have_text("2")
        assert hit(other, IN_BOX) is None
        # Redo both: the box comes back (a new row) with its answer.
        page.keyboard.press("Control+y")
        page.keyboard.press("Control+y")
        idle(page)
        redone = rows(first)
        assert [o["id"] for o in redone[:2]] == [polygon, brush] and redone[2]["id"] not in (polygon, brush, box)
        assert redone[2]["drawn"] == answered[2]["drawn"] and redone[2]["rle"] == answered[2]["rle"]
        assert (redone[2]["answers"], redone[2]["version"]) == ({str(quality.pk): "partially visible"}, 2)
        assert seen(page) == redone
        sees(other, redone)
        box = redone[2]["id"]
        assert hit(other, IN_BOX) == box

        # The item's own question, then Enter: saved, marked done, on to the next unannotated item.
        page.get_by_test_id("item-form").get_by_label("yes").check()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf"/items/{second.pk}/studio/$"))
        live(page)
        expect(page.get_by_test_id("task-position")).to_have_text("Item 3 of 4")
        done = in_own_thread(lambda: MediaItem.objects.get(pk=first.pk))
        assert done.done_at is not None and done.answers == {str(dense.pk): "yes"}

        # >> skips the finished third item and wraps round to the first of the task.
        page.keyboard.press(">")
        page.keyboard.press(">")
        page.wait_for_url(re.compile(rf"/items/{world.demo.media.pk}/studio/$"))
        live(page)
        expect(page.get_by_test_id("task-position")).to_have_text("Item 1 of 4")

        # Back on the item, from the server: every object, version and answer, drawn where it was.
        page.goto(url)
        live(page)
        expect(page.get_by_test_id("object-count")).to_have_text("3")
        assert seen(page) == redone == rows(first)
        assert [hit(page, p) for p in (IN_POLYGON, IN_BRUSH, IN_BOX, ERASED)] == [polygon, brush, box, None]
        expect(page.get_by_test_id("item-form").get_by_label("yes")).to_be_checked()
        expect(page.get_by_test_id("task-nav")).to_contain_text("this item is done")
        assert seen(other) == redone
    finally:
        other_context.close()

    # Nothing went over the REST fallback; no page saw an error or a policy violation.
    assert rest_calls == []
    assert errors == [] and other_errors == []
    assert page.evaluate("window.__cspViolations") == []

    # Each stored mask is what pycocotools makes of the drawn geometry (the polygon with
    # frPyObjects, the box as [x, y, w, h], the strokes by the rule rle.js documents).
    for annotation in in_own_thread(lambda: list(Annotation.objects.filter(media=first).order_by("id"))):
        expected = expected_mask(annotation.drawn)
        tool = annotation.drawn["tool"]
        assert annotation.rle["size"] == [H, W], tool
        assert np.array_equal(decode(annotation.rle), expected), tool
        assert annotation.rle["counts"] == coco_counts(expected), tool
        rle = {"size": [H, W], "counts": annotation.rle["counts"].encode()}
        assert annotation.area == int(coco_mask.area(rle)) == expected.sum() > 0, tool
        assert annotation.bbox == pytest.approx(coco_mask.toBbox(rle).tolist()), tool
        assert annotation.author_id == world.annotator.pk and annotation.frame is None, tool
