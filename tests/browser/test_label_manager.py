"""In a real browser: the label manager's colour picker and hex field stay in step, changes are
saved through htmx without a page load, a bad colour is shown in place, and labels move up and down."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from annotation.models import Label
from tests.browser.conftest import in_own_thread
from tests.browser.test_sign_in import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_label_manager(page: Any, base: str, world: Any) -> str:
    sign_in(page, base, "manager")
    page.wait_for_url(f"{base}/o/demo-lab/")
    address = f"{base}/o/demo-lab/projects/{world.demo.project.pk}/labels/"
    page.goto(address)
    page.wait_for_function("typeof window.htmx === 'object'")
    # A marker that a full page load would wipe: every change below must keep it.
    page.evaluate("window.__samePage = true")
    return address


def test_it_keeps_the_colour_picker_and_the_hex_field_in_step(world: Any, live_server: Any, page: Any) -> None:
    open_label_manager(page, live_server.url, world)
    label = world.demo.label
    picker = page.get_by_label(f"Colour of {label.name}", exact=True)
    hex_field = page.get_by_label(f"Hex colour of {label.name}")

    picker.fill("#2ca02c")
    expect(hex_field).to_have_value("#2ca02c")
    hex_field.fill("#D62728")
    expect(picker).to_have_value("#d62728")

    hex_field.locator("xpath=ancestor::form").get_by_role("button", name="Save").click()
    expect(page.get_by_label(f"Hex colour of {label.name}")).to_have_value("#d62728")
    assert page.evaluate("window.__samePage") is True
    assert in_own_thread(lambda: Label.objects.get(pk=label.pk).color) == "#d62728"


def test_it_adds_labels_shows_a_bad_colour_and_reorders(world: Any, live_server: Any, page: Any) -> None:
    open_label_manager(page, live_server.url, world)
    first = world.demo.label
    add = page.locator("form.label-add")

    add.get_by_label("Name").fill("person")
    add.get_by_label("Hex colour").fill("red")
    add.get_by_role("button", name="Add label").click()
    expect(page.get_by_text("Use a colour like #1f77b4.")).to_be_visible()
    assert not in_own_thread(lambda: Label.objects.filter(name="person").exists())

    add = page.locator("form.label-add")
    add.get_by_label("Name").fill("person")
    add.get_by_label("Colour", exact=True).fill("#9467bd")
    expect(add.get_by_label("Hex colour")).to_have_value("#9467bd")
    add.get_by_role("button", name="Add label").click()
    rows = page.get_by_test_id("label-list").locator("li.label-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1).locator(".shortcut")).to_have_text("2")

    page.get_by_role("button", name="Move person up").click()
    expect(rows.nth(0).get_by_label("Name of person")).to_be_visible()
    expect(rows.nth(0).locator(".shortcut")).to_have_text("1")
    expect(page.get_by_role("button", name="Move person up")).to_be_disabled()
    assert page.evaluate("window.__samePage") is True
    project = world.demo.project
    assert in_own_thread(lambda: list(project.labels.order_by("order").values_list("name", "color"))) == [
        ("person", "#9467bd"),
        (first.name, first.color),
    ]
