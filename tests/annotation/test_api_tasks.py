"""REST API: tasks (split, assign, submit, review, delete) and the caller's own tasks."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.models import MediaItem, Task
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import make_image


def tasks_url(world: World) -> str:
    return api_url("api_task_list", project_id=world.demo.project.pk)


def task_url(task: Task) -> str:
    return api_url("api_task_detail", task_id=task.pk)


def pool(world: World, count: int) -> list[MediaItem]:
    """Items in no task yet."""
    return [make_image(world.demo.project, name=f"pool{n}.png") for n in range(count)]


def test_it_lists_a_projects_tasks_with_progress(world: World) -> None:
    world.demo.media.done_at = timezone.now()
    world.demo.media.save(update_fields=["done_at"])
    response = token_client(world.reviewer).get(tasks_url(world))
    assert response.status_code == 200
    [task] = response.json()["results"]
    assert task["id"] == world.demo.task.pk
    assert (task["assignee"], task["assignee_username"], task["state"]) == (world.annotator.pk, "annotator", "new")
    assert (task["item_count"], task["done_count"]) == (1, 1)


def test_it_splits_the_pool_by_size(world: World) -> None:
    items = pool(world, 5)
    response = token_client(world.manager).post(tasks_url(world), {"size": 2}, format="json")
    assert response.status_code == 201, response.json()
    tasks = response.json()["tasks"]
    assert [(t["name"], t["item_count"], t["assignee"]) for t in tasks] == [
        ("Task 2", 2, None),
        ("Task 3", 2, None),
        ("Task 4", 1, None),
    ]
    assert list(MediaItem.objects.filter(pk__in=[i.pk for i in items]).values_list("task_id", flat=True)) == [
        tasks[0]["id"],
        tasks[0]["id"],
        tasks[1]["id"],
        tasks[1]["id"],
        tasks[2]["id"],
    ]
    # The item already in a task stays there.
    world.demo.media.refresh_from_db()
    assert world.demo.media.task == world.demo.task


def test_it_splits_a_selection_into_one_task_and_assigns_round_robin(world: World) -> None:
    first, second, third = pool(world, 3)
    response = token_client(world.manager).post(
        tasks_url(world),
        {"items": [first.pk, third.pk], "size": 1, "assignees": [world.annotator.pk, world.reviewer.pk]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    tasks = response.json()["tasks"]
    assert [(t["item_count"], t["assignee"]) for t in tasks] == [(1, world.annotator.pk), (1, world.reviewer.pk)]
    second.refresh_from_db()
    assert second.task is None

    response = token_client(world.manager).post(tasks_url(world), {"items": [second.pk]}, format="json")
    assert response.status_code == 201
    assert [t["item_count"] for t in response.json()["tasks"]] == [1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": -3}, "size"),
        ({"size": "many"}, "size"),
        ({}, "non_field_errors"),
        ({"items": []}, "items"),
    ],
)
def test_it_refuses_a_bad_split_and_stores_nothing(world: World, body: dict, field: str) -> None:
    items = pool(world, 2)
    response = token_client(world.manager).post(tasks_url(world), body, format="json")
    assert response.status_code == 400
    assert response.json()[field]
    assert Task.objects.for_org(world.demo.org).count() == 1
    assert not MediaItem.objects.filter(pk__in=[i.pk for i in items], task__isnull=False).exists()


def test_it_says_when_there_is_nothing_to_split(world: World) -> None:
    response = token_client(world.manager).post(tasks_url(world), {"size": 10}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "nothing"


@pytest.mark.parametrize("which", ["other organisation", "missing"])
def test_it_refuses_foreign_items_in_a_split(world: World, which: str) -> None:
    [mine] = pool(world, 1)
    foreign = world.other.media.pk if which == "other organisation" else 999_999
    response = token_client(world.manager).post(tasks_url(world), {"items": [mine.pk, foreign]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"items": [f"No item with id {foreign} in this project."]}
    mine.refresh_from_db()
    assert mine.task is None
    assert Task.objects.for_org(world.demo.org).count() == 1
    world.other.media.refresh_from_db()
    assert world.other.media.task == world.other.task


def test_it_refuses_an_assignee_of_another_organisation_and_stores_nothing(world: World) -> None:
    items = pool(world, 2)
    response = token_client(world.manager).post(
        tasks_url(world), {"size": 1, "assignees": [world.annotator.pk, world.outsider.pk]}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"assignees": [f"No member with id {world.outsider.pk}."]}
    assert Task.objects.for_org(world.demo.org).count() == 1
    assert not MediaItem.objects.filter(pk__in=[i.pk for i in items], task__isnull=False).exists()


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_splits_below_manager(world: World, role: str) -> None:
    pool(world, 2)
    response = token_client(getattr(world, role)).post(tasks_url(world), {"size": 1}, format="json")
    assert response.status_code == 403
    assert Task.objects.for_org(world.demo.org).count() == 1


def test_it_reassigns_and_unassigns_a_task(world: World) -> None:
    client = token_client(world.manager)
    response = client.patch(task_url(world.demo.task), {"assignee": world.reviewer.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["assignee"] == world.reviewer.pk
    response = client.patch(task_url(world.demo.task), {"assignee": None}, format="json")
    assert response.status_code == 200
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee is None


@pytest.mark.parametrize("who", ["outsider", "missing"])
def test_it_refuses_an_assignee_who_is_not_a_member(world: World, who: str) -> None:
    user_id = world.outsider.pk if who == "outsider" else 999_999
    response = token_client(world.manager).patch(task_url(world.demo.task), {"assignee": user_id}, format="json")
    assert response.status_code == 400
    assert response.json() == {"assignee": [f"No member with id {user_id}."]}
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.annotator


def test_it_refuses_assignment_below_manager(world: World) -> None:
    response = token_client(world.reviewer).patch(
        task_url(world.demo.task), {"assignee": world.reviewer.pk}, format="json"
    )
    assert response.status_code == 403
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.annotator


def test_it_refuses_an_empty_or_bad_change(world: World) -> None:
    client = token_client(world.manager)
    response = client.patch(task_url(world.demo.task), {}, format="json")
    assert response.status_code == 400
    assert response.json()["non_field_errors"] == ["Give `assignee`, `state` or both."]
    response = client.patch(task_url(world.demo.task), {"state": "new"}, format="json")
    assert response.status_code == 400
    assert response.json()["state"]


def test_it_lets_the_annotator_submit_a_finished_task_and_a_reviewer_review_it(world: World) -> None:
    annotator = token_client(world.annotator)
    response = annotator.patch(task_url(world.demo.task), {"state": "submitted"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "1 item still to do.", "code": "unfinished"}

    world.demo.media.done_at = timezone.now()
    world.demo.media.save(update_fields=["done_at"])
    response = annotator.patch(task_url(world.demo.task), {"state": "submitted"}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "submitted"

    response = annotator.patch(task_url(world.demo.task), {"state": "accepted"}, format="json")
    assert response.status_code == 403
    response = token_client(world.reviewer).patch(task_url(world.demo.task), {"state": "rejected"}, format="json")
    assert response.status_code == 200
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == "rejected"


def test_it_applies_both_changes_or_neither(world: World) -> None:
    # Reassigning works for a manager, accepting a task that is not submitted does not: neither is kept.
    response = token_client(world.manager).patch(
        task_url(world.demo.task), {"assignee": world.reviewer.pk, "state": "accepted"}, format="json"
    )
    assert response.status_code == 400
    world.demo.task.refresh_from_db()
    assert (world.demo.task.assignee, world.demo.task.state) == (world.annotator, "new")


def test_it_hides_other_annotators_tasks_from_an_annotator(world: World) -> None:
    others = Task.objects.create(project=world.demo.project, name="Task 2", assignee=world.reviewer)
    annotator = token_client(world.annotator)
    assert annotator.get(task_url(world.demo.task)).status_code == 200
    assert annotator.get(task_url(others)).status_code == 404
    assert annotator.patch(task_url(others), {"state": "submitted"}, format="json").status_code == 404
    assert token_client(world.reviewer).get(task_url(others)).status_code == 200


def test_it_deletes_a_task_and_returns_its_items_to_the_pool(world: World) -> None:
    response = token_client(world.manager).delete(task_url(world.demo.task))
    assert response.status_code == 204
    assert not Task.objects.filter(pk=world.demo.task.pk).exists()
    world.demo.media.refresh_from_db()
    assert world.demo.media.task is None


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_refuses_deletion_below_manager(world: World, role: str) -> None:
    response = token_client(getattr(world, role)).delete(task_url(world.demo.task))
    assert response.status_code == 403
    assert Task.objects.filter(pk=world.demo.task.pk).exists()


def test_it_lists_the_callers_own_tasks(world: World) -> None:
    Task.objects.create(project=world.demo.project, name="Task 2", assignee=world.reviewer)
    response = token_client(world.annotator).get(api_url("api_my_tasks"))
    assert response.status_code == 200
    assert [(t["id"], t["item_count"], t["done_count"]) for t in response.json()["results"]] == [
        (world.demo.task.pk, 1, 0)
    ]
    assert token_client(world.manager).get(api_url("api_my_tasks")).json()["results"] == []


def test_it_answers_404_for_another_organisations_task(world: World) -> None:
    client = token_client(world.outsider)
    url = api_url("api_task_detail", org_slug="other-lab", task_id=world.demo.task.pk)
    assert client.get(url).status_code == 404
    assert client.patch(url, {"assignee": world.outsider.pk}, format="json").status_code == 404
    assert client.delete(url).status_code == 404
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.annotator
