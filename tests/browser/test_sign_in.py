"""What a person does: sign in, land on the organisation's dashboard, open the project."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from annotation.projects.gallery import GALLERY_PAGE_SIZE
from tests.factories import PASSWORD, make_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(base_url + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_it_signs_an_annotator_in_to_the_dashboard(world: Any, live_server: Any, page: Any) -> None:
    sign_in(page, live_server.url, "annotator")
    page.wait_for_url(f"{live_server.url}/o/demo-lab/")
    assert page.get_by_test_id("current-org").inner_text() == "Demo Lab"
    projects = page.get_by_test_id("project-list")
    assert world.demo.project.name in projects.inner_text()
    assert world.other.project.name not in page.content()

    page.get_by_role("link", name=world.demo.project.name).click()
    page.wait_for_url(f"{live_server.url}/o/demo-lab/projects/{world.demo.project.pk}/")
    image = page.locator("#gallery img").first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [64, 48]
    assert page.evaluate("typeof window.htmx") == "object"  # the vendored htmx loaded


def test_it_shows_an_outsider_not_found_for_another_organisation(world: Any, live_server: Any, page: Any) -> None:
    sign_in(page, live_server.url, "outsider")
    page.wait_for_url(f"{live_server.url}/o/other-lab/")
    response = page.goto(f"{live_server.url}/o/demo-lab/projects/{world.demo.project.pk}/")
    assert response.status == 404
    assert "Not found" in page.inner_text("h1")
    assert world.demo.project.name not in page.content()


@pytest.fixture
def full_gallery(world: Any) -> None:
    # Created before the page fixture starts Playwright: ORM calls made inside Playwright's
    # greenlet get a database connection of their own that nothing closes.
    for i in range(GALLERY_PAGE_SIZE):  # one page more than fits, with the world's own image
        make_image(world.demo.project, name=f"extra-{i:02d}.png")


def test_it_loads_more_of_the_gallery_in_place(world: Any, full_gallery: None, live_server: Any, page: Any) -> None:
    # The manager: an annotator's gallery holds only the items of their own tasks.
    sign_in(page, live_server.url, "manager")
    page.wait_for_url(f"{live_server.url}/o/demo-lab/")
    page.set_viewport_size({"width": 1000, "height": 500})
    page.goto(f"{live_server.url}/o/demo-lab/projects/{world.demo.project.pk}/")
    gallery = page.locator("#gallery img")
    more = page.get_by_role("button", name="Load more")
    # Below the fold: nothing more is fetched until the user scrolls there.
    assert more.evaluate("button => button.getBoundingClientRect().top > window.innerHeight")
    assert gallery.count() == GALLERY_PAGE_SIZE
    url_before = page.url
    page.mouse.wheel(0, 20_000)  # infinite scroll: reaching the end loads the next page
    expect(gallery).to_have_count(GALLERY_PAGE_SIZE + 1)
    assert page.url == url_before  # swapped in place by htmx, no navigation
    assert page.get_by_role("button", name="Load more").count() == 0
    names = page.locator("#gallery span").all_inner_texts()
    assert len(names) == len(set(names)) == GALLERY_PAGE_SIZE + 1
