"""A new team's first hour, in a real browser: the manager sets up a project (labels with colours and
a question), drops three photographs on the page, splits them into a task for the annotator; the
annotator finds it in My tasks at 0/3, opens it on its first item and moves with <, > and >>."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROJECT = "Harbour survey"
PHOTOS = [
    ("quay.png", (90, 60), (20, 90, 160)),
    ("boat.png", (60, 90), (200, 200, 40)),
    ("crane.png", (80, 80), (5, 5, 5)),
]

# Drops files on an element the way a browser does on a real drag and drop: a DataTransfer holding
# File objects, sent with dragenter, dragover and drop.
DROP_FILES = """
([selector, files]) => {
  const transfer = new DataTransfer();
  for (const file of files) {
    const bytes = Uint8Array.from(atob(file.data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], file.name, { type: file.type }));
  }
  const zone = document.querySelector(selector);
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }
}
"""


def png_file(name: str, size: tuple[int, int], colour: tuple[int, int, int]) -> dict[str, str]:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return {"name": name, "type": "image/png", "data": base64.b64encode(buffer.getvalue()).decode()}


def press(page: Any, key: str) -> None:
    # The keys are handled by a deferred script: let the page finish loading first.
    page.wait_for_load_state("load")
    page.keyboard.press(key)


def sign_in(page: Any, base_url: str, username: str) -> None:
    page.context.clear_cookies()
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/o/demo-lab/")


def test_it_takes_a_manager_from_a_new_project_to_an_annotator_working_through_a_task(
    world: Any, live_server: Any, page: Any
) -> None:
    base = live_server.url
    sign_in(page, base, "manager")

    # A new project; creating it leads to its labels.
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill(PROJECT)
    page.get_by_label("Media type").select_option("images")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Labels and questions")).to_be_visible()

    # Two labels, each with its colour typed in the hex field next to the picker.
    for name, colour in [("boat", "#1f77b4"), ("person", "#e6194b")]:
        add_label = page.locator("form.label-add")
        add_label.get_by_label("Name").fill(name)
        add_label.get_by_label("Hex colour").fill(colour)
        add_label.get_by_role("button", name="Add label").click()
        expect(page.locator(f".label-row input.hex[value='{colour}']")).to_have_count(1)
    rows = page.get_by_test_id("label-list").locator(".label-row")
    expect(rows).to_have_count(2)
    boat = rows.nth(0)
    # The picker shows the same colour as the hex field.
    assert boat.locator("input.colour-picker").input_value() == "#1f77b4"

    # A question about each boat, with its answers and a default.
    boat.get_by_text("Add a question about each boat").click()
    question = boat.locator("form.question-add")
    question.get_by_label("Question").fill("Quality")
    question.get_by_label("Answers, one a line").fill("good\npartially visible\nbarely visible")
    question.get_by_label("Default").fill("good")
    question.get_by_role("button", name="Add question").click()
    expect(page.get_by_test_id("label-list").locator(".label-row").nth(0)).to_contain_text(
        "Quality: good / partially visible / barely visible"
    )

    # Three photographs dropped on the project page, each with its progress bar.
    page.get_by_role("link", name=PROJECT).click()
    page.wait_for_url(re.compile(r"/projects/\d+/$"))
    page.wait_for_load_state("load")  # upload.js is a deferred script
    page.evaluate(DROP_FILES, ["#dropzone", [png_file(*photo) for photo in PHOTOS]])
    expect(page.locator("#upload-summary")).to_have_text("3 of 3 files · 3 stored")
    files = page.locator("#upload-files li")
    expect(files).to_have_count(3)
    for index in range(3):
        expect(files.nth(index)).to_have_class(re.compile(r"\bok\b"))
        bar = files.nth(index).locator("progress")
        assert bar.evaluate("bar => bar.value === bar.max && bar.max > 0")
    overall = page.locator("#upload-overall")
    assert overall.evaluate("bar => bar.value === bar.max && bar.max > 1")
    expect(page.locator("#gallery img")).to_have_count(3)  # the gallery reloads with the new thumbnails

    # Split into one task of three items, assigned to the annotator.
    page.get_by_role("link", name="Tasks").click()
    page.get_by_label("Items per task").fill("3")
    page.locator(".split-form").get_by_label("annotator").check()
    page.get_by_role("button", name="Split into tasks").click()
    table = page.get_by_test_id("task-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    row = table.locator("tbody tr").first
    expect(row).to_contain_text("0/3")
    assert row.get_by_label(re.compile("Assignee of")).input_value() == str(world.annotator.pk)

    # The annotator's My tasks: the new task at 0/3, next to the one they already had.
    sign_in(page, base, "annotator")
    page.get_by_role("link", name="My tasks").first.click()
    card = page.locator(".task-card", has_text=PROJECT)
    expect(card.get_by_test_id("task-progress")).to_have_text("0/3")
    card.get_by_role("link", name="Start").click()

    position = page.get_by_test_id("task-position")
    image = page.get_by_test_id("task-image")
    expect(position).to_have_text("Item 1 of 3")
    first = image.get_attribute("data-media-id")

    press(page, ">")
    expect(position).to_have_text("Item 2 of 3")
    second = image.get_attribute("data-media-id")
    assert second != first
    press(page, "<")
    expect(position).to_have_text("Item 1 of 3")
    assert image.get_attribute("data-media-id") == first

    # On item 2, Enter saves it and goes on to the next unannotated item, 3.
    press(page, ">")
    expect(position).to_have_text("Item 2 of 3")
    press(page, "Enter")
    expect(position).to_have_text("Item 3 of 3")
    expect(page.get_by_test_id("task-nav")).to_contain_text("1/3 done")
    third = image.get_attribute("data-media-id")
    assert third not in (first, second)

    # Back to item 1; >> jumps over the finished item 2 straight to item 3.
    press(page, "<")
    expect(position).to_have_text("Item 2 of 3")
    press(page, "<")
    expect(position).to_have_text("Item 1 of 3")
    press(page, ">")
    press(page, ">")
    expect(position).to_have_text("Item 3 of 3")
    assert image.get_attribute("data-media-id") == third

    page.get_by_role("link", name="My tasks").first.click()
    expect(page.locator(".task-card", has_text=PROJECT).get_by_test_id("task-progress")).to_have_text("1/3")
