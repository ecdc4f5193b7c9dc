"""The studio over its websocket, on the README's demo served by daphne in its own process: the page
opens the studio socket and saves through it, and two pages on the same item see each other's
changes as they happen."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_demo_server import demo_server, sign_in  # noqa: F401 - the fixture, shared

pytestmark = pytest.mark.browser

STUDIO = "import('/static/js/studio/studio.js').then((m) => m.ready)"


def at(page: Any, x: float, y: float) -> tuple[float, float]:
    return tuple(
        page.evaluate(
            f"""([x, y]) => {STUDIO}.then((s) => {{
              const rect = s.viewer.canvas.getBoundingClientRect();
              const [dx, dy] = s.viewer.toDisplay(x, y);
              return [rect.left + dx, rect.top + dy];
            }})""",
            [x, y],
        )
    )


def open_first_item(page: Any, base: str) -> str:
    """The annotator's first task, its first item, in the studio; the studio's address."""
    page.goto(base + "/o/demo-lab/tasks/")
    page.get_by_role("link", name=re.compile("Start|Continue")).first.click()
    page.get_by_role("link", name="Open in the studio").click()
    page.wait_for_url(re.compile(r"/studio/$"))
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    return page.url


def objects(page: Any) -> list[dict]:
    return page.evaluate(
        f"{STUDIO}.then((s) => s.store.ordered().map((o) => ({{id: o.id, version: o.version, label: o.label}})))"
    )


def test_it_saves_over_the_studio_socket_and_shows_each_page_the_others_changes(demo_server: str, page: Any) -> None:  # noqa: F811
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, demo_server, "annotator")
    page.wait_for_url(demo_server + "/o/demo-lab/")
    url = open_first_item(page, demo_server)
    expect(page.get_by_test_id("studio-transport")).to_have_text("Live")

    # A second page on the same item (another browser session of the same annotator).
    other_context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    other = other_context.new_page()
    other.set_default_timeout(15_000)
    try:
        sign_in(other, demo_server, "annotator")
        other.wait_for_url(demo_server + "/o/demo-lab/")
        other.goto(url)
        assert other.evaluate(f"{STUDIO}.then((s) => s !== null)")
        expect(other.get_by_test_id("studio-transport")).to_have_text("Live")
        before = len(objects(page))
        assert len(objects(other)) == before

        # A box drawn on the first page is saved over the socket and appears on the second.
        page.keyboard.press("r")
        page.mouse.move(*at(page, 20, 20))
        page.mouse.down()
        page.mouse.move(*at(page, 120, 90), steps=4)
        page.mouse.up()
        page.evaluate(f"{STUDIO}.then((s) => s.store.whenIdle())")
        expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")
        mine = objects(page)
        assert len(mine) == before + 1 and mine[-1]["id"] is not None and mine[-1]["version"] == 1
        expect(other.get_by_test_id("object-count")).to_have_text(str(before + 1))
        assert objects(other)[-1] == mine[-1]

        # Relabelled on the second page: the first sees the new version.
        other.locator(f".object-row[data-id='{mine[-1]['id']}'] .object-pick").click()
        other.keyboard.press("2")
        other.evaluate(f"{STUDIO}.then((s) => s.store.whenIdle())")
        page.wait_for_function(
            f"([id]) => {STUDIO}.then((s) => s.store.byId(id)?.version === 2)", arg=[mine[-1]["id"]], timeout=10_000
        )
        assert objects(page)[-1] == objects(other)[-1]

        # Deleted on the first page: gone from the second.
        page.keyboard.press("Escape")
        page.locator(f".object-row[data-id='{mine[-1]['id']}'] [data-action=delete]").click()
        expect(other.get_by_test_id("object-count")).to_have_text(str(before))

        # Nothing was lost: a reload shows what is stored.
        page.reload()
        assert len(page.evaluate(f"{STUDIO}.then((s) => s.store.ordered())")) == before
    finally:
        other_context.close()
    assert errors == []
