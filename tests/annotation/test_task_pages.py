"""Task pages: a project's tasks (split, assign, reassign, delete, review), the task states,
"My tasks", and working through a task's items (< > >> and Enter)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import MediaItem, Question, Task
from platform_core.models import Role
from tests.conftest import World
from tests.factories import MembershipFactory, UserFactory, make_image


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(name: str, org_slug: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org_slug, **kwargs})


def flashes(response: Any) -> list[str]:
    """The messages this response added (not those left over from earlier requests)."""
    return [str(message) for message in get_messages(response.wsgi_request)._queued_messages]


def tasks_page(world: World) -> str:
    return page("project_tasks", project_id=world.demo.project.pk)


def pool(world: World, count: int) -> list[MediaItem]:
    """Items in no task yet, in upload order."""
    return [make_image(world.demo.project, name=f"pool{n}.png") for n in range(count)]


def task_with_items(world: World, count: int, assignee: Any = None) -> tuple[Task, list[MediaItem]]:
    task = Task.objects.create(project=world.demo.project, name="Batch", assignee=assignee or world.annotator)
    items = pool(world, count)
    MediaItem.objects.filter(pk__in=[i.pk for i in items]).update(task=task)
    for item in items:
        item.refresh_from_db()
    return task, items


def mark_done(*items: MediaItem, by: Any) -> None:
    MediaItem.objects.filter(pk__in=[i.pk for i in items]).update(done_at=timezone.now(), done_by=by)


def item_question(world: World, *, required: bool = True, default: str = "") -> Question:
    return Question.objects.create(
        project=world.demo.project, text="Dense scene", choices=["yes", "no"], required=required, default=default
    )


def second_annotator(world: World) -> Any:
    return MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR, user__username="annotator2").user


# --- splitting and assigning ----------------------------------------------------------------------


def test_it_splits_a_projects_items_into_tasks_by_size_in_upload_order(world: World) -> None:
    items = pool(world, 5)
    response = client_for(world.manager).post(tasks_page(world), {"size": 2})
    assert response.status_code == 302
    assert response["Location"] == tasks_page(world)
    assert flashes(response) == ["Made 3 tasks."]
    new = list(Task.objects.filter(project=world.demo.project).exclude(pk=world.demo.task.pk).order_by("id"))
    assert [(t.name, t.assignee, t.state, t.created_by) for t in new] == [
        ("Task 2", None, Task.State.NEW, world.manager),
        ("Task 3", None, Task.State.NEW, world.manager),
        ("Task 4", None, Task.State.NEW, world.manager),
    ]
    assigned = dict(MediaItem.objects.filter(pk__in=[i.pk for i in items]).values_list("pk", "task_id"))
    assert [assigned[i.pk] for i in items] == [new[0].pk, new[0].pk, new[1].pk, new[1].pk, new[2].pk]
    # The item already in a task stays where it was.
    world.demo.media.refresh_from_db()
    assert world.demo.media.task == world.demo.task


def test_it_assigns_new_tasks_round_robin_to_several_annotators(world: World) -> None:
    other = second_annotator(world)
    pool(world, 5)
    response = client_for(world.manager).post(
        tasks_page(world), {"size": 2, "assignees": [world.annotator.pk, other.pk]}
    )
    assert response.status_code == 302
    new = Task.objects.filter(project=world.demo.project).exclude(pk=world.demo.task.pk).order_by("id")
    assert [t.assignee for t in new] == [world.annotator, other, world.annotator]


def test_it_assigns_every_new_task_to_one_picked_member(world: World) -> None:
    pool(world, 3)
    response = client_for(world.owner).post(tasks_page(world), {"size": 1, "assignees": [world.reviewer.pk]})
    assert response.status_code == 302
    new = Task.objects.filter(project=world.demo.project).exclude(pk=world.demo.task.pk)
    assert [t.assignee for t in new] == [world.reviewer] * 3


@pytest.mark.parametrize("who", ["outsider", "stranger"])
def test_it_refuses_a_split_assignee_who_is_not_a_member(world: World, who: str) -> None:
    items = pool(world, 2)
    user = world.outsider if who == "outsider" else UserFactory(username="stranger")
    response = client_for(world.manager).post(tasks_page(world), {"size": 1, "assignees": [user.pk]})
    assert response.status_code == 400
    assert "is not one of the available choices" in response.content.decode()
    assert list(Task.objects.filter(project=world.demo.project)) == [world.demo.task]
    assert not MediaItem.objects.filter(pk__in=[i.pk for i in items], task__isnull=False).exists()


@pytest.mark.parametrize("size", ["0", "-2", "ten", "", "10001"])
def test_it_refuses_a_bad_task_size(world: World, size: str) -> None:
    pool(world, 2)
    response = client_for(world.manager).post(tasks_page(world), {"size": size})
    assert response.status_code == 400
    assert list(Task.objects.filter(project=world.demo.project)) == [world.demo.task]


def test_it_says_so_when_every_item_is_already_in_a_task(world: World) -> None:
    response = client_for(world.manager).post(tasks_page(world), {"size": 10})
    assert response.status_code == 400
    assert "Every item is already in a task: there is nothing to split." in response.content.decode()
    assert Task.objects.filter(project=world.demo.project).count() == 1


def test_it_reassigns_and_unassigns_a_task(world: World) -> None:
    client = client_for(world.manager)
    url = page("task_assign", task_id=world.demo.task.pk)
    response = client.post(url, {"assignee": world.reviewer.pk})
    assert response.status_code == 302
    assert response["Location"] == tasks_page(world)
    assert flashes(response) == ["Task 1 is assigned to reviewer."]
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.reviewer

    response = client.post(url, {"assignee": ""})
    assert flashes(response) == ["Task 1 is assigned to nobody."]
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee is None


@pytest.mark.parametrize("who", ["outsider", "stranger", "nonsense"])
def test_it_refuses_to_assign_a_task_to_someone_outside_the_organisation(world: World, who: str) -> None:
    value = {"outsider": lambda: world.outsider.pk, "stranger": lambda: UserFactory().pk, "nonsense": lambda: "x"}[who]
    response = client_for(world.manager).post(page("task_assign", task_id=world.demo.task.pk), {"assignee": value()})
    assert response.status_code == 302
    assert flashes(response) == ["Choose a member of this organisation."]
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.annotator


def test_it_deletes_a_task_and_puts_its_items_back_in_the_pool(world: World) -> None:
    response = client_for(world.manager).post(page("task_delete", task_id=world.demo.task.pk))
    assert response.status_code == 302
    assert flashes(response) == ["Task 1 removed; its items are back in the pool."]
    assert not Task.objects.filter(pk=world.demo.task.pk).exists()
    world.demo.media.refresh_from_db()
    assert world.demo.media.task is None


def test_it_shows_reviewers_the_task_list_with_progress_but_not_the_split_form(world: World) -> None:
    task, items = task_with_items(world, 3)
    mark_done(items[0], by=world.annotator)
    response = client_for(world.reviewer).get(tasks_page(world))
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-task-id="{world.demo.task.pk}"' in body
    assert f'data-task-id="{task.pk}"' in body
    assert "1/3" in body and "0/1" in body
    assert "Split into tasks" not in body
    assert 'class="inline assign-form"' not in body


def test_it_shows_managers_the_split_form_and_the_assignee_picker(world: World) -> None:
    response = client_for(world.manager).get(tasks_page(world))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Split into tasks" in body
    assert 'name="assignee"' in body
    assert f'<option value="{world.annotator.pk}" selected>' in body
    assert world.other.project.name not in body and "outsider" not in body


def test_it_refuses_a_split_by_a_reviewer(world: World) -> None:
    pool(world, 2)
    response = client_for(world.reviewer).post(tasks_page(world), {"size": 1})
    assert response.status_code == 403
    assert Task.objects.filter(project=world.demo.project).count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_refuses_the_project_task_list_to_an_annotator(world: World, method: str) -> None:
    response = getattr(client_for(world.annotator), method)(tasks_page(world), {"size": 1})
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
@pytest.mark.parametrize("name", ["task_assign", "task_delete"])
def test_it_refuses_assigning_and_deleting_below_manager(world: World, role: str, name: str) -> None:
    response = client_for(getattr(world, role)).post(page(name, task_id=world.demo.task.pk), {"assignee": ""})
    assert response.status_code == 403
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.annotator


def test_it_lists_a_projects_tasks_in_a_constant_number_of_queries(
    world: World, django_assert_max_num_queries: Any
) -> None:
    pool(world, 6)
    client_for(world.manager).post(tasks_page(world), {"size": 1})
    client = client_for(world.manager)
    client.get(tasks_page(world))
    with django_assert_max_num_queries(12):
        response = client.get(tasks_page(world))
    assert response.content.decode().count("data-task-id=") == 7


# --- outsiders and other organisations ---------------------------------------------------------------

TASK_ROUTES = [
    ("get", "project_tasks"),
    ("post", "project_tasks"),
    ("get", "my_tasks"),
    ("get", "task_open"),
    ("get", "task_item"),
    ("post", "task_item"),
    ("post", "task_submit"),
    ("post", "task_review"),
    ("post", "task_assign"),
    ("post", "task_delete"),
]


def route_kwargs(side: Any, name: str) -> dict[str, int]:
    return {
        "project_tasks": {"project_id": side.project.pk},
        "my_tasks": {},
        "task_item": {"task_id": side.task.pk, "media_id": side.media.pk},
    }.get(name, {"task_id": side.task.pk})


@pytest.mark.parametrize(("method", "name"), TASK_ROUTES)
def test_it_answers_404_to_an_outsider_on_every_task_route(world: World, method: str, name: str) -> None:
    response = getattr(client_for(world.outsider), method)(page(name, **route_kwargs(world.demo, name)))
    assert response.status_code == 404
    world.demo.task.refresh_from_db()
    assert (world.demo.task.assignee, world.demo.task.state) == (world.annotator, Task.State.NEW)


@pytest.mark.parametrize(("method", "name"), [r for r in TASK_ROUTES if r[1] != "my_tasks"])
def test_it_answers_404_for_another_organisations_task_in_ones_own(world: World, method: str, name: str) -> None:
    response = getattr(client_for(world.owner), method)(page(name, **route_kwargs(world.other, name)))
    assert response.status_code == 404
    world.other.task.refresh_from_db()
    assert world.other.task.assignee == world.outsider


def test_it_sends_anonymous_visitors_to_sign_in(world: World) -> None:
    response = Client().get(page("my_tasks"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- states ------------------------------------------------------------------------------------------


def test_it_moves_a_task_from_new_through_submitted_to_accepted(world: World) -> None:
    task, (first, second) = task_with_items(world, 2)
    annotator = client_for(world.annotator)
    assert task.state == Task.State.NEW

    annotator.post(page("task_item", task_id=task.pk, media_id=first.pk))
    task.refresh_from_db()
    assert task.state == Task.State.IN_PROGRESS

    annotator.post(page("task_item", task_id=task.pk, media_id=second.pk))
    response = annotator.post(page("task_submit", task_id=task.pk))
    assert response["Location"] == page("my_tasks")
    assert flashes(response) == ["Batch submitted for review."]
    task.refresh_from_db()
    assert task.state == Task.State.SUBMITTED

    response = client_for(world.reviewer).post(page("task_review", task_id=task.pk), {"decision": "accept"})
    assert response["Location"] == tasks_page(world)
    assert flashes(response) == ["Batch accepted."]
    task.refresh_from_db()
    assert task.state == Task.State.ACCEPTED
    # An accepted task is closed: its items are no longer changed.
    response = annotator.post(page("task_item", task_id=task.pk, media_id=first.pk))
    assert response.status_code == 400
    assert "This task is submitted; it can no longer be changed." in response.content.decode()


def test_it_sends_a_rejected_task_back_to_its_annotator(world: World) -> None:
    task, items = task_with_items(world, 2)
    mark_done(*items, by=world.annotator)
    Task.objects.filter(pk=task.pk).update(state=Task.State.SUBMITTED)
    response = client_for(world.manager).post(page("task_review", task_id=task.pk), {"decision": "reject"})
    assert flashes(response) == ["Batch rejected."]
    task.refresh_from_db()
    assert task.state == Task.State.REJECTED

    annotator = client_for(world.annotator)
    listing = annotator.get(page("my_tasks")).content.decode()
    assert "Rejected" in listing and "Submit for review" in listing
    # The annotator fixes an item and hands the task in again.
    response = annotator.post(page("task_item", task_id=task.pk, media_id=items[0].pk))
    assert response.status_code == 302
    annotator.post(page("task_submit", task_id=task.pk))
    task.refresh_from_db()
    assert task.state == Task.State.SUBMITTED


def test_it_refuses_to_submit_an_unfinished_task(world: World) -> None:
    task, items = task_with_items(world, 3)
    mark_done(items[0], by=world.annotator)
    response = client_for(world.annotator).post(page("task_submit", task_id=task.pk))
    assert response.status_code == 302
    assert flashes(response) == ["Batch: 2 items still to do."]
    task.refresh_from_db()
    assert task.state == Task.State.NEW


@pytest.mark.parametrize("role", ["reviewer", "manager", "owner"])
def test_it_lets_only_the_assignee_submit(world: World, role: str) -> None:
    mark_done(world.demo.media, by=world.annotator)
    response = client_for(getattr(world, role)).post(page("task_submit", task_id=world.demo.task.pk))
    assert response.status_code == 403
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == Task.State.NEW


def test_it_lets_only_reviewers_and_above_review(world: World) -> None:
    Task.objects.filter(pk=world.demo.task.pk).update(state=Task.State.SUBMITTED)
    response = client_for(world.annotator).post(page("task_review", task_id=world.demo.task.pk), {"decision": "accept"})
    assert response.status_code == 403
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == Task.State.SUBMITTED


def test_it_reviews_only_a_submitted_task(world: World) -> None:
    response = client_for(world.reviewer).post(page("task_review", task_id=world.demo.task.pk), {"decision": "accept"})
    assert flashes(response) == ["Task 1: Only a submitted task is accepted or rejected."]
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == Task.State.NEW


@pytest.mark.parametrize("decision", ["", "maybe", "ACCEPT"])
def test_it_refuses_a_review_without_a_clear_decision(world: World, decision: str) -> None:
    Task.objects.filter(pk=world.demo.task.pk).update(state=Task.State.SUBMITTED)
    response = client_for(world.reviewer).post(page("task_review", task_id=world.demo.task.pk), {"decision": decision})
    assert flashes(response) == ["Task 1: choose to accept or to reject it."]
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == Task.State.SUBMITTED


# --- My tasks ----------------------------------------------------------------------------------------


def test_it_lists_my_tasks_with_their_progress(world: World) -> None:
    task, _ = task_with_items(world, 3)
    task_with_items(world, 2, assignee=second_annotator(world))
    response = client_for(world.annotator).get(page("my_tasks"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.count('data-testid="task-progress"') == 2
    assert '<span data-testid="task-progress">0/3</span> items done' in body
    assert '<span data-testid="task-progress">0/1</span> item done' in body
    assert f'data-task-id="{task.pk}"' in body and f'data-task-id="{world.demo.task.pk}"' in body
    assert "Start" in body and "Submit for review" not in body


def test_it_shows_nothing_but_an_empty_list_to_a_member_without_tasks(world: World) -> None:
    body = client_for(world.reviewer).get(page("my_tasks")).content.decode()
    assert "No task is assigned to you yet." in body
    assert "data-task-id" not in body


def test_it_offers_to_submit_a_finished_task(world: World) -> None:
    mark_done(world.demo.media, by=world.annotator)
    body = client_for(world.annotator).get(page("my_tasks")).content.decode()
    assert '<span data-testid="task-progress">1/1</span>' in body
    assert page("task_submit", task_id=world.demo.task.pk) in body


def test_it_lists_my_tasks_in_a_constant_number_of_queries(world: World, django_assert_max_num_queries: Any) -> None:
    for _ in range(4):
        task_with_items(world, 2)
    client = client_for(world.annotator)
    client.get(page("my_tasks"))
    with django_assert_max_num_queries(8):
        response = client.get(page("my_tasks"))
    assert response.content.decode().count('data-testid="task-progress"') == 5


# --- working through a task --------------------------------------------------------------------------


def test_it_opens_a_task_on_its_first_unannotated_item(world: World) -> None:
    task, items = task_with_items(world, 4)
    mark_done(items[0], items[1], by=world.annotator)
    response = client_for(world.annotator).get(page("task_open", task_id=task.pk))
    assert response.status_code == 302
    assert response["Location"] == page("task_item", task_id=task.pk, media_id=items[2].pk)


def test_it_opens_a_finished_task_on_its_first_item(world: World) -> None:
    task, items = task_with_items(world, 2)
    mark_done(*items, by=world.annotator)
    response = client_for(world.annotator).get(page("task_open", task_id=task.pk))
    assert response["Location"] == page("task_item", task_id=task.pk, media_id=items[0].pk)


def test_it_sends_an_empty_task_back_to_my_tasks(world: World) -> None:
    task = Task.objects.create(project=world.demo.project, name="Empty", assignee=world.annotator)
    response = client_for(world.annotator).get(page("task_open", task_id=task.pk))
    assert response["Location"] == page("my_tasks")
    assert flashes(response) == ["Empty holds no items."]


def test_it_shows_the_position_and_the_links_to_move_on(world: World) -> None:
    task, items = task_with_items(world, 4)
    mark_done(items[1], by=world.annotator)
    client = client_for(world.annotator)

    def item_url(item: MediaItem) -> str:
        return page("task_item", task_id=task.pk, media_id=item.pk)

    response = client.get(item_url(items[0]))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<span data-testid="task-position">Item 1 of 4</span>' in body
    assert 'id="nav-previous"' not in body
    assert f'id="nav-next" href="{item_url(items[1])}"' in body
    # ">>" skips the done second item.
    assert f'id="nav-next-open" href="{item_url(items[2])}"' in body
    assert "1/4 done · this item is to do" in body

    body = client.get(item_url(items[2])).content.decode()
    assert '<span data-testid="task-position">Item 3 of 4</span>' in body
    assert f'id="nav-previous" href="{item_url(items[1])}"' in body
    assert f'id="nav-next" href="{item_url(items[3])}"' in body
    assert f'id="nav-next-open" href="{item_url(items[3])}"' in body

    body = client.get(item_url(items[3])).content.decode()
    assert '<span data-testid="task-position">Item 4 of 4</span>' in body
    assert 'id="nav-next"' not in body
    # At the end, ">>" wraps round to the first item still to do.
    assert f'id="nav-next-open" href="{item_url(items[0])}"' in body


def test_it_renders_the_item_with_its_questions_and_the_enter_form(world: World) -> None:
    question = item_question(world, required=False, default="no")
    response = client_for(world.annotator).get(
        page("task_item", task_id=world.demo.task.pk, media_id=world.demo.media.pk)
    )
    body = response.content.decode()
    assert page("media_file", media_id=world.demo.media.pk) in body
    assert '<form method="post" class="card item-questions" id="item-form">' in body
    assert '<button type="submit" id="save-next"' in body
    assert "js/task-navigation.js" in body
    assert f'name="q{question.pk}" value="no" checked' in body
    assert f'name="q{question.pk}" value="yes">' in body
    # A label's per-object question is asked in the studio, not here.
    assert f'name="q{world.demo.question.pk}"' not in body


def test_it_saves_the_answers_and_goes_on_to_the_next_unannotated_item(world: World) -> None:
    question = item_question(world)
    task, items = task_with_items(world, 3)
    mark_done(items[1], by=world.reviewer)
    response = client_for(world.annotator).post(
        page("task_item", task_id=task.pk, media_id=items[0].pk), {f"q{question.pk}": "yes"}
    )
    assert response.status_code == 302
    assert response["Location"] == page("task_item", task_id=task.pk, media_id=items[2].pk)
    items[0].refresh_from_db()
    assert items[0].answers == {str(question.pk): "yes"}
    assert items[0].done_by == world.annotator and items[0].done_at is not None


def test_it_refuses_an_item_without_a_required_answer_and_saves_nothing(world: World) -> None:
    question = item_question(world)
    response = client_for(world.annotator).post(
        page("task_item", task_id=world.demo.task.pk, media_id=world.demo.media.pk)
    )
    assert response.status_code == 400
    assert '<p class="error" role="alert">Dense scene: an answer is required.</p>' in response.content.decode()
    world.demo.media.refresh_from_db()
    assert (world.demo.media.done_at, world.demo.media.answers) == (None, {})
    world.demo.task.refresh_from_db()
    assert world.demo.task.state == Task.State.NEW
    assert question.required


def test_it_refuses_a_choice_that_is_not_offered(world: World) -> None:
    question = item_question(world, required=False)
    response = client_for(world.annotator).post(
        page("task_item", task_id=world.demo.task.pk, media_id=world.demo.media.pk), {f"q{question.pk}": "maybe"}
    )
    assert response.status_code == 400
    assert "Dense scene: &#x27;maybe&#x27; is not one of the choices." in response.content.decode()
    world.demo.media.refresh_from_db()
    assert (world.demo.media.done_at, world.demo.media.answers) == (None, {})


def test_it_sends_the_annotator_to_my_tasks_when_the_last_item_is_saved(world: World) -> None:
    response = client_for(world.annotator).post(
        page("task_item", task_id=world.demo.task.pk, media_id=world.demo.media.pk)
    )
    assert response["Location"] == page("my_tasks")
    assert flashes(response) == ["Every item of Task 1 is done: submit it when you are happy."]
    world.demo.media.refresh_from_db()
    assert world.demo.media.done_at is not None


def test_it_answers_404_for_an_item_of_another_task(world: World) -> None:
    task, (item,) = task_with_items(world, 1)
    (loose,) = pool(world, 1)
    for client in (client_for(world.annotator), client_for(world.owner)):
        for media_id in (item.pk, loose.pk):
            assert client.get(page("task_item", task_id=world.demo.task.pk, media_id=media_id)).status_code == 404
    assert (
        client_for(world.annotator).post(page("task_item", task_id=world.demo.task.pk, media_id=item.pk)).status_code
        == 404
    )
    item.refresh_from_db()
    assert item.done_at is None
