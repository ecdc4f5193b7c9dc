"""In a real browser, as a manager runs a project from the admin: upload images on the project's
page (a refused file is named), split the items into tasks and assign them, with every page of it
under the strict Content-Security-Policy without a violation."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Count

from annotation.models import Task
from tests.browser.conftest import in_own_thread
from tests.browser.test_hardening import visit, watch
from tests.browser.test_sign_in import sign_in
from tests.factories import png_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def run_action(page: Any, base: str, changelist: str, label: str, action: str) -> None:
    page.goto(base + changelist)
    page.get_by_role("checkbox", name=label).check()
    page.select_option("select[name=action]", action)
    page.get_by_role("button", name="Go").click()


def test_it_runs_a_project_from_the_admin(world: Any, live_server: Any, page: Any) -> None:
    errors = watch(page)
    base = live_server.url
    project = world.demo.project
    sign_in(page, base, "manager")
    page.wait_for_url(f"{base}/o/demo-lab/")

    # Site → admin, then upload on the project's admin page.
    page.goto(f"{base}/o/demo-lab/projects/{project.pk}/")
    page.get_by_test_id("project-admin-link").click()
    page.wait_for_url(f"{base}/admin/annotation/project/{project.pk}/change/")
    page.get_by_label("Add images").set_input_files(
        [
            {"name": "one.png", "mimeType": "image/png", "buffer": png_bytes(40, 30)},
            {"name": "two.png", "mimeType": "image/png", "buffer": png_bytes(30, 40)},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"},
        ]
    )
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(f"{base}/admin/annotation/project/{project.pk}/change/")
    messages = page.locator("ul.messagelist").inner_text()
    assert "Stored 2 images." in messages
    assert "“notes.txt” was not stored:" in messages
    assert "2 in no task yet" in page.locator("#media-upload").inner_text()

    # Split the project's pool into tasks of one item, on the action's own page.
    run_action(
        page,
        base,
        "/admin/annotation/project/",
        "Select this object for an action - " + project.name,
        "split_into_tasks",
    )
    assert "Split into tasks" in page.locator("h1").inner_text()
    page.get_by_label("Items per task").fill("1")
    page.get_by_role("button", name="Split").click()
    page.wait_for_url(f"{base}/admin/annotation/project/")
    assert f"{project.name}: made 2 tasks." in page.locator("ul.messagelist").inner_text()
    new_tasks = in_own_thread(
        lambda: list(
            Task.objects.filter(project=project)
            .exclude(pk=world.demo.task.pk)
            .annotate(item_count=Count("items"))
            .order_by("id")
        )
    )
    assert [task.item_count for task in new_tasks] == [1, 1]

    # Assign one of them to the reviewer: only Demo Lab's people are offered.
    run_action(
        page,
        base,
        "/admin/annotation/task/",
        f"Select this object for an action - {new_tasks[0].name}",
        "assign_to_members",
    )
    choices = page.locator("#id_assignees").inner_text()
    assert "reviewer" in choices and "outsider" not in choices
    page.get_by_label("reviewer").check()
    page.get_by_role("button", name="Assign").click()
    page.wait_for_url(f"{base}/admin/annotation/task/")
    assert in_own_thread(lambda: Task.objects.get(pk=new_tasks[0].pk).assignee_id) == world.reviewer.pk

    # Admin → site from the task's page.
    page.goto(f"{base}/admin/annotation/task/{new_tasks[0].pk}/change/")
    assert (
        page.get_by_role("link", name="View on site").get_attribute("href") == f"/o/demo-lab/tasks/{new_tasks[0].pk}/"
    )

    urls = [
        "/admin/annotation/task/",
        f"/admin/annotation/task/{new_tasks[0].pk}/change/",
        "/admin/annotation/question/",
        "/admin/annotation/question/add/",
        f"/admin/annotation/question/{world.demo.question.pk}/change/",
        "/admin/platform_core/invitation/",
        "/admin/platform_core/invitation/add/",
        f"/admin/platform_core/invitation/{world.demo.invitation.pk}/change/",
        "/admin/platform_core/job/",
        f"/admin/annotation/mediaitem/{world.demo.media.pk}/change/",
    ]
    violations = [v for url in urls for v in visit(page, base + url, errors)]
    assert violations == [], "\n".join(violations)
