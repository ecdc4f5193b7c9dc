"""The annotator-scope rule: an annotator reaches only the items of their own tasks. Another
annotator of the same organisation gets the same 404 as for a missing item on every page, file,
API answer and list that serves an item; reviewers, managers and owners reach every item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.models import MediaItem, Task
from platform_core.models import Role
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import MembershipFactory, make_image


@dataclass
class Scope:
    mine: MediaItem  # the second annotator's own item, in their own task
    theirs: MediaItem  # the first annotator's item (the world's task)
    loose: MediaItem  # an item in no task
    my_task: Task
    their_task: Task
    second: Any  # the second annotator


@pytest.fixture
def scope(world: World) -> Scope:
    second = MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR, user__username="annotator2").user
    my_task = Task.objects.create(project=world.demo.project, name="Task 2", assignee=second)
    mine = make_image(world.demo.project, name="mine.png")
    mine.task = my_task
    mine.save(update_fields=["task"])
    loose = make_image(world.demo.project, name="loose.png")
    return Scope(
        mine=mine, theirs=world.demo.media, loose=loose, my_task=my_task, their_task=world.demo.task, second=second
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(name: str, **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": "demo-lab", **kwargs})


def item_pages(world: World, item: MediaItem) -> list[str]:
    """Every page that serves one item, outside any task."""
    return [
        page("media_detail", project_id=world.demo.project.pk, media_id=item.pk),
        page("media_file", media_id=item.pk),
        page("media_thumbnail", media_id=item.pk),
    ]


# --- the second annotator -------------------------------------------------------------------------


def test_it_serves_an_annotator_the_items_of_their_own_task(world: World, scope: Scope) -> None:
    client = client_for(scope.second)
    for url in [*item_pages(world, scope.mine), page("task_item", task_id=scope.my_task.pk, media_id=scope.mine.pk)]:
        assert client.get(url).status_code == 200, url
    assert client.get(page("task_open", task_id=scope.my_task.pk)).status_code == 302
    response = token_client(scope.second).get(api_url("api_media_detail", media_id=scope.mine.pk))
    assert response.status_code == 200
    assert response.json()["id"] == scope.mine.pk


@pytest.mark.parametrize("which", ["theirs", "loose"])
def test_it_answers_404_for_items_outside_the_annotators_tasks(world: World, scope: Scope, which: str) -> None:
    item = getattr(scope, which)
    client = client_for(scope.second)
    for url in item_pages(world, item):
        assert client.get(url).status_code == 404, url
    # The item is not reached through the annotator's own task either.
    assert client.get(page("task_item", task_id=scope.my_task.pk, media_id=item.pk)).status_code == 404
    assert token_client(scope.second).get(api_url("api_media_detail", media_id=item.pk)).status_code == 404


def test_it_answers_404_on_another_annotators_task_pages(world: World, scope: Scope) -> None:
    client = client_for(scope.second)
    their_item = page("task_item", task_id=scope.their_task.pk, media_id=scope.theirs.pk)
    assert client.get(page("task_open", task_id=scope.their_task.pk)).status_code == 404
    assert client.get(their_item).status_code == 404
    assert client.post(their_item).status_code == 404
    assert client.post(page("task_submit", task_id=scope.their_task.pk)).status_code == 404
    # Nothing was saved nor submitted on the first annotator's behalf.
    scope.theirs.refresh_from_db()
    scope.their_task.refresh_from_db()
    assert (scope.theirs.done_at, scope.their_task.state) == (None, Task.State.NEW)
    api = token_client(scope.second)
    assert api.get(api_url("api_task_detail", task_id=scope.their_task.pk)).status_code == 404
    assert (
        api.patch(
            api_url("api_task_detail", task_id=scope.their_task.pk), {"state": "submitted"}, format="json"
        ).status_code
        == 404
    )


def test_it_keeps_another_annotators_items_out_of_the_gallery(world: World, scope: Scope) -> None:
    client = client_for(scope.second)
    url = page("project_detail", project_id=world.demo.project.pk)
    for response in (client.get(url), client.get(url, headers={"HX-Request": "true"})):
        assert response.status_code == 200
        body = response.content.decode()
        assert page("media_thumbnail", media_id=scope.mine.pk) in body
        assert page("media_thumbnail", media_id=scope.theirs.pk) not in body
        assert page("media_thumbnail", media_id=scope.loose.pk) not in body
    # Filters do not open a way round the rule.
    for query in (
        {"task": str(scope.their_task.pk)},
        {"assignee": str(world.annotator.pk)},
        {"task": "none"},
        {"done": "no", "assignee": "none"},
    ):
        body = client.get(url, query, headers={"HX-Request": "true"}).content.decode()
        assert "media_thumbnail" not in body and "/thumbnail" not in body, query


def test_it_keeps_another_annotators_items_out_of_the_api_list(world: World, scope: Scope) -> None:
    api = token_client(scope.second)
    url = api_url("api_media_list", project_id=world.demo.project.pk)
    assert [item["id"] for item in api.get(url).json()["results"]] == [scope.mine.pk]
    for query in ({"task": scope.their_task.pk}, {"assignee": world.annotator.pk}, {"task": "none"}):
        assert api.get(url, query).json()["results"] == [], query
    mine = api.get(api_url("api_my_tasks")).json()["results"]
    assert [task["id"] for task in mine] == [scope.my_task.pk]


def test_it_lists_only_their_own_tasks_in_the_projects_task_list_api(world: World, scope: Scope) -> None:
    url = api_url("api_task_list", project_id=world.demo.project.pk)
    listed = token_client(scope.second).get(url).json()["results"]
    assert [task["id"] for task in listed] == [scope.my_task.pk]
    everything = token_client(world.reviewer).get(url).json()["results"]
    assert {task["id"] for task in everything} == {scope.my_task.pk, scope.their_task.pk}


def test_it_keeps_another_annotators_tasks_out_of_my_tasks(world: World, scope: Scope) -> None:
    body = client_for(scope.second).get(page("my_tasks")).content.decode()
    assert f'data-task-id="{scope.my_task.pk}"' in body
    assert f'data-task-id="{scope.their_task.pk}"' not in body


def test_it_takes_the_items_away_when_a_task_is_reassigned(world: World, scope: Scope) -> None:
    client = client_for(scope.second)
    file_url = page("media_file", media_id=scope.mine.pk)
    assert client.get(file_url).status_code == 200
    client_for(world.manager).post(page("task_assign", task_id=scope.my_task.pk), {"assignee": world.annotator.pk})
    assert client.get(file_url).status_code == 404
    assert client.get(page("task_open", task_id=scope.my_task.pk)).status_code == 404
    assert client_for(world.annotator).get(file_url).status_code == 200


# --- every route that names an item ---------------------------------------------------------------


def _item_routes() -> dict[str, set[str]]:
    """Every URL (pages and API) whose pattern carries a ``media_id``: its name and its parameters."""
    found: dict[str, set[str]] = {}

    def walk(patterns: list[Any]) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns)
            elif isinstance(entry, URLPattern) and "media_id" in entry.pattern.converters and entry.name:
                found[entry.name] = set(entry.pattern.converters)

    walk(get_resolver().url_patterns)
    return found


ITEM_ROUTES = _item_routes()


def test_the_walk_finds_every_known_item_route() -> None:
    assert {"media_detail", "media_file", "media_thumbnail", "task_item", "api_media_detail"} <= set(ITEM_ROUTES)


@pytest.mark.parametrize("name", sorted(ITEM_ROUTES))
def test_it_answers_404_on_every_item_route_for_another_annotators_item(world: World, scope: Scope, name: str) -> None:
    kwargs = {"media_id": scope.theirs.pk}
    if "project_id" in ITEM_ROUTES[name]:
        kwargs["project_id"] = world.demo.project.pk
    if "task_id" in ITEM_ROUTES[name]:
        kwargs["task_id"] = scope.their_task.pk
    if "annotation_id" in ITEM_ROUTES[name]:
        kwargs["annotation_id"] = world.demo.annotation.pk
    url = page(name, **kwargs)
    client = token_client(scope.second) if name.startswith("api_") else client_for(scope.second)
    response = client.get(url)
    if response.status_code == 405:
        response = client.post(url)
    assert response.status_code == 404, (url, response.status_code)
    # The owner reaches the same URL: the 404 is the rule, not a broken route.
    owner = token_client(world.owner) if name.startswith("api_") else client_for(world.owner)
    assert owner.get(url).status_code in (200, 302, 405)


# --- reviewers and above --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["reviewer", "manager", "owner"])
def test_it_serves_every_item_to_reviewers_and_above(world: World, scope: Scope, role: str) -> None:
    user = getattr(world, role)
    client = client_for(user)
    for item in (scope.mine, scope.theirs, scope.loose):
        for url in item_pages(world, item):
            assert client.get(url).status_code == 200, url
        assert token_client(user).get(api_url("api_media_detail", media_id=item.pk)).status_code == 200
    for task, item in ((scope.my_task, scope.mine), (scope.their_task, scope.theirs)):
        assert client.get(page("task_item", task_id=task.pk, media_id=item.pk)).status_code == 200
    listed = token_client(user).get(api_url("api_media_list", project_id=world.demo.project.pk)).json()["results"]
    assert [item["id"] for item in listed] == sorted([scope.mine.pk, scope.theirs.pk, scope.loose.pk])
    body = client.get(page("project_detail", project_id=world.demo.project.pk)).content.decode()
    for item in (scope.mine, scope.theirs, scope.loose):
        assert page("media_thumbnail", media_id=item.pk) in body


def test_it_still_answers_404_for_another_organisations_item(world: World, scope: Scope) -> None:
    for url in item_pages(world, world.other.media):
        assert client_for(world.owner).get(url).status_code == 404, url
    assert token_client(world.owner).get(api_url("api_media_detail", media_id=world.other.media.pk)).status_code == 404
