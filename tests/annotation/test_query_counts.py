"""Pages that list items or objects read a fixed number of queries however many annotations the
items hold: drawing the 500th object must not slow the gallery, My tasks or the studio down."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.annotations.services import annotation_create
from annotation.masks import box_to_rle
from platform_core.tenancy import resolve_tenant
from tests.conftest import World
from tests.factories import make_image


def add_annotations(world: World, count: int) -> None:
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    items = [world.demo.media, *(make_image(world.demo.project, name=f"more-{i}.png") for i in range(2))]
    for item in items[1:]:
        item.task = world.demo.task
        item.save(update_fields=["task"])
    for number in range(count):
        item = items[number % len(items)]
        box = [number % 20, number % 15, number % 20 + 10, number % 15 + 8]
        annotation_create(
            tenant=tenant,
            media=item,
            label=world.demo.label,
            rle=box_to_rle(box, height=item.height, width=item.width),
            author=world.manager,
        )


def queries_for(user: Any, url: str) -> int:
    client = Client()
    client.force_login(user)
    client.get(url)  # warm: session and content types are cached after the first request
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def page_urls(world: World) -> dict[str, str]:
    task = world.demo.task
    return {
        "gallery": reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": world.demo.project.pk}),
        "my_tasks": reverse("my_tasks", kwargs={"org_slug": "demo-lab"}),
        "task_item": reverse(
            "task_item", kwargs={"org_slug": "demo-lab", "task_id": task.pk, "media_id": world.demo.media.pk}
        ),
    }


@pytest.mark.parametrize("page", ["gallery", "my_tasks", "task_item"])
def test_it_reads_the_same_number_of_queries_with_many_more_annotations(world: World, page: str) -> None:
    url = page_urls(world)[page]
    add_annotations(world, 3)
    few = queries_for(world.annotator, url)
    add_annotations(world, 60)
    assert queries_for(world.annotator, url) == few
