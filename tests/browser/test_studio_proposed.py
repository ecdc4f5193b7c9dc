"""Pre-annotations in the studio, on daphne: a model's proposed objects are drawn faint with a
dashed box and a keypoint at their centroid and listed as proposed; the annotator accepts one with
A, fixes another with the brush (which makes it theirs), deletes the third, then accepts what a
second pass proposed with "Accept all"."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from annotation.annotations.services import annotation_create
from annotation.masks import box_to_rle
from annotation.models import Annotation, MediaItem
from platform_core.tenancy import resolve_tenant
from tests.browser.conftest import in_own_thread
from tests.browser.test_hardening import watch
from tests.browser.test_studio import STUDIO, H, W, decode, drag, idle, items  # noqa: F401 - the fixture
from tests.browser.test_studio_flow import live
from tests.browser.test_workspace_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BOXES = [(40, 40, 120, 100), (200, 60, 300, 140), (80, 180, 180, 260)]


def propose(world: Any, item: MediaItem, boxes: list[tuple[int, int, int, int]]) -> list[int]:
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    made = []
    for x0, y0, x1, y1 in boxes:
        annotation = annotation_create(
            tenant=tenant,
            media=item,
            label=world.demo.label,
            rle=box_to_rle([x0, y0, x1, y1], height=H, width=W),
            author=None,
            source=Annotation.Source.MODEL,
            source_detail={"model": "tiny", "method": "automatic"},
            proposed=True,
        )
        made.append(annotation.pk)
    return made


@pytest.fixture
def proposals(world: Any, items: list[MediaItem]) -> list[int]:  # noqa: F811
    return propose(world, items[0], BOXES)


@pytest.fixture
def manager_token(world: Any) -> str:
    return Token.objects.get_or_create(user=world.manager)[0].key


def post_proposal(base: str, token: str, item: MediaItem, label_id: int, box: tuple[int, int, int, int]) -> int:
    body = {"label": label_id, "rle": box_to_rle(list(box), height=H, width=W), "proposed": True}
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/o/demo-lab/media/{item.pk}/annotations/",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        created = json.loads(response.read())
    assert created["proposed"] is True
    return created["id"]


def state(item: MediaItem) -> dict[int, tuple[bool, int]]:
    return in_own_thread(
        lambda: {a.pk: (a.proposed, a.version) for a in Annotation.objects.filter(media=item).order_by("id")}
    )


def test_it_shows_proposed_objects_and_lets_the_annotator_accept_fix_and_delete_them(
    world: Any,
    items: list[MediaItem],  # noqa: F811
    proposals: list[int],
    manager_token: str,
    daphne_server: str,
    page: Any,
) -> None:
    item = items[0]
    first, second, third = proposals
    errors = watch(page)
    sign_in(page, daphne_server, "annotator")
    page.goto(f"{daphne_server}/o/demo-lab/tasks/{world.demo.task.pk}/items/{item.pk}/studio/")
    live(page)
    page.wait_for_load_state("load")

    rows = page.locator(".object-row.proposed")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("proposed by model")
    expect(page.get_by_test_id("accept-all")).to_have_text("Accept all 3 proposed")
    # Each is drawn with its box and the keypoint at its centroid.
    marks = page.evaluate(
        f"{STUDIO}.then((s) => s.store.proposed().map((o) => [o.id, s.masks.boxOf(o), s.masks.centroidOf(o)]))"
    )
    for (object_id, box, centre), (x0, y0, x1, y1), expected_id in zip(marks, BOXES, proposals, strict=True):
        assert object_id == expected_id
        assert box == [x0, y0, x1 - x0, y1 - y0]
        assert centre == [(x0 + x1) / 2, (y0 + y1) / 2]

    # A accepts the selected one as it is.
    page.locator(f".object-row[data-id='{first}'] .object-pick").click()
    page.keyboard.press("a")
    expect(page.locator(".object-row.proposed")).to_have_count(2)
    idle(page)
    assert state(item)[first] == (False, 2)
    accepted = in_own_thread(lambda: Annotation.objects.get(pk=first))
    assert accepted.author_id == world.annotator.pk

    # The brush on the second one fixes it: the person's object now.
    page.locator(f".object-row[data-id='{second}'] .object-pick").click()
    page.keyboard.press("b")
    drag(page, [(250, 100), (330, 110)])
    idle(page)
    assert state(item)[second] == (False, 2)
    fixed = in_own_thread(lambda: Annotation.objects.get(pk=second))
    assert decode(fixed.rle)[105, 320] and fixed.drawn["strokes"][0]["mode"] == "paint"

    # The third is wrong: deleted like any object.
    page.keyboard.press("v")
    page.locator(f".object-row[data-id='{third}'] .object-pick").click()
    page.keyboard.press("Delete")
    idle(page)
    assert third not in state(item)
    expect(page.get_by_test_id("accept-all")).to_be_hidden()

    # A pipeline proposes two more through the API; they arrive live, and "Accept all" takes both.
    more = [
        post_proposal(daphne_server, manager_token, item, world.demo.label.pk, box)
        for box in [(300, 200, 360, 280), (10, 250, 60, 290)]
    ]
    expect(page.get_by_test_id("accept-all")).to_have_text("Accept all 2 proposed")
    page.get_by_test_id("accept-all").click()
    expect(page.locator(".object-row.proposed")).to_have_count(0)
    assert [state(item)[pk] for pk in more] == [(False, 2), (False, 2)]
    assert page.evaluate(f"{STUDIO}.then((s) => s.store.ordered().map((o) => [o.id, o.version, o.proposed]))") == [
        [first, 2, False],
        [second, 2, False],
        [more[0], 2, False],
        [more[1], 2, False],
    ]
    assert np.count_nonzero(decode(in_own_thread(lambda: Annotation.objects.get(pk=more[1])).rle)) == 50 * 40
    assert page.evaluate("window.__cspViolations") == []
    assert errors == []
