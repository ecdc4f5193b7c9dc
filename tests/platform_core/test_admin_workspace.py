"""The workspace in the tenant-scoped admin: uploads on a project's page, the split and assign
actions with their intermediate pages, questions, tasks, jobs, members with invitations, and the
links between the admin and the site. Each is scoped: another organisation's objects are a 404,
its people are never offered, and ids smuggled into a page change nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import MediaItem, Question, Task
from platform_core.members import invitation_from_token
from platform_core.models import Invitation, Role
from tests.conftest import World
from tests.factories import MembershipFactory, make_image, png_bytes


@pytest.fixture
def manager(world: World) -> Client:
    client = Client()
    client.force_login(world.manager)
    return client


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def shown_messages(response: Any) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def changelist(model: str) -> str:
    return reverse(f"admin:{model}_changelist")


# --- uploads on the project's page -----------------------------------------------------------
def upload_url(project: Any) -> str:
    return reverse("admin:annotation_project_upload", args=[project.pk])


def test_it_offers_a_multi_file_upload_on_the_projects_page(world: World, manager: Client) -> None:
    response = manager.get(reverse("admin:annotation_project_change", args=[world.demo.project.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'action="{upload_url(world.demo.project)}"' in html
    assert 'enctype="multipart/form-data"' in html
    assert re.search(r'<input type="file" name="files"[^>]* multiple', html)


def test_it_stores_every_uploaded_image(world: World, manager: Client) -> None:
    files = [
        SimpleUploadedFile("a.png", png_bytes(40, 30), "image/png"),
        SimpleUploadedFile("b.png", png_bytes(30, 40), "image/png"),
    ]
    response = manager.post(upload_url(world.demo.project), {"files": files}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:annotation_project_change", args=[world.demo.project.pk])
    new = MediaItem.objects.filter(project=world.demo.project, original_name__in=["a.png", "b.png"])
    assert sorted((item.original_name, item.width, item.height) for item in new) == [
        ("a.png", 40, 30),
        ("b.png", 30, 40),
    ]
    assert {item.uploaded_by for item in new} == {world.manager}
    assert "Stored 2 images." in shown_messages(response)


def test_it_names_each_refused_file_and_stores_the_good_ones(world: World, manager: Client) -> None:
    before_files = stored_files()
    files = [
        SimpleUploadedFile("good.png", png_bytes(), "image/png"),
        SimpleUploadedFile("notes.txt", b"just words", "text/plain"),
        SimpleUploadedFile("page.jpg", b"<!doctype html><script>alert(1)</script>", "image/jpeg"),
        SimpleUploadedFile("empty.png", b"", "image/png"),
    ]
    response = manager.post(upload_url(world.demo.project), {"files": files}, follow=True)
    stored = MediaItem.objects.filter(project=world.demo.project).exclude(pk=world.demo.media.pk)
    assert [item.original_name for item in stored] == ["good.png"]
    # The good file and its thumbnail, nothing of the refused ones.
    assert stored_files() - before_files == {stored[0].file.name, stored[0].thumbnail.name}
    texts = shown_messages(response)
    assert "Stored 1 image." in texts
    refused = [text for text in texts if " was not stored: " in text]
    assert [text.split(" ")[0] for text in refused] == ["“notes.txt”", "“page.jpg”", "“empty.png”"]
    assert all(len(text.split(" was not stored: ")[1]) > 5 for text in refused)  # each with its reason


def test_it_stores_nothing_for_a_batch_of_bad_files(world: World, manager: Client) -> None:
    before_files = stored_files()
    response = manager.post(
        upload_url(world.demo.project),
        {"files": [SimpleUploadedFile("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml")]},
        follow=True,
    )
    assert MediaItem.objects.filter(project=world.demo.project).count() == 1
    assert stored_files() == before_files
    assert [text for text in shown_messages(response) if text.startswith("“drawing.svg” was not stored: ")]
    assert not [text for text in shown_messages(response) if text.startswith("Stored")]


def test_it_answers_404_to_uploads_into_another_organisations_project(world: World, manager: Client) -> None:
    response = manager.post(
        upload_url(world.other.project), {"files": [SimpleUploadedFile("a.png", png_bytes(), "image/png")]}
    )
    assert response.status_code == 404
    assert MediaItem.objects.filter(project=world.other.project).count() == 1


def test_it_takes_uploads_only_as_a_post(world: World, manager: Client) -> None:
    assert manager.get(upload_url(world.demo.project)).status_code == 405


@pytest.mark.parametrize("who", ["annotator", "reviewer"])
def test_it_refuses_uploads_to_members_who_do_not_manage(world: World, who: str) -> None:
    client = Client()
    client.force_login(getattr(world, who))
    response = client.post(
        upload_url(world.demo.project), {"files": [SimpleUploadedFile("a.png", png_bytes(), "image/png")]}
    )
    assert response.status_code in (302, 403)
    assert MediaItem.objects.filter(project=world.demo.project).count() == 1


# --- splitting into tasks ----------------------------------------------------------------------
def test_it_asks_for_the_task_size_before_splitting_a_project(world: World, manager: Client) -> None:
    make_image(world.demo.project, name="two.png")
    response = manager.post(
        changelist("annotation_project"), {"action": "split_into_tasks", "_selected_action": [world.demo.project.pk]}
    )
    assert response.status_code == 200
    assert response.templates[0].name == "admin/annotation/action_form.html"
    assert "size" in response.context["form"].fields
    assert list(response.context["queryset"]) == [world.demo.project]
    assert world.demo.project.tasks.count() == 1  # nothing split yet


def test_it_splits_a_projects_pool_into_tasks_of_the_given_size(world: World, manager: Client) -> None:
    pool = [make_image(world.demo.project, name=f"{n}.png") for n in range(3)]
    response = manager.post(
        changelist("annotation_project"),
        {"action": "split_into_tasks", "_selected_action": [world.demo.project.pk], "apply": "1", "size": "2"},
        follow=True,
    )
    assert response.status_code == 200
    new_tasks = list(world.demo.project.tasks.exclude(pk=world.demo.task.pk).order_by("id"))
    assert [[item.pk for item in task.items.order_by("id")] for task in new_tasks] == [
        [pool[0].pk, pool[1].pk],
        [pool[2].pk],
    ]
    assert {task.created_by for task in new_tasks} == {world.manager}
    assert f"{world.demo.project.name}: made 2 tasks." in shown_messages(response)


def test_it_refuses_a_bad_task_size_on_the_intermediate_page(world: World, manager: Client) -> None:
    make_image(world.demo.project, name="two.png")
    response = manager.post(
        changelist("annotation_project"),
        {"action": "split_into_tasks", "_selected_action": [world.demo.project.pk], "apply": "1", "size": "0"},
    )
    assert response.status_code == 400
    assert "size" in response.context["form"].errors
    assert world.demo.project.tasks.count() == 1


def test_it_says_when_a_project_has_nothing_to_split(world: World, manager: Client) -> None:
    response = manager.post(
        changelist("annotation_project"),
        {"action": "split_into_tasks", "_selected_action": [world.demo.project.pk], "apply": "1", "size": "5"},
        follow=True,
    )
    assert any("nothing to split" in text for text in shown_messages(response))
    assert world.demo.project.tasks.count() == 1


def test_it_does_not_split_another_organisations_project_fed_to_the_action(world: World, manager: Client) -> None:
    foreign_pool = make_image(world.other.project, name="theirs.png")
    make_image(world.demo.project, name="mine.png")
    for selected in ([world.other.project.pk], [world.demo.project.pk, world.other.project.pk]):
        manager.post(
            changelist("annotation_project"),
            {"action": "split_into_tasks", "_selected_action": selected, "apply": "1", "size": "1"},
        )
    assert world.other.project.tasks.count() == 1
    foreign_pool.refresh_from_db()
    assert foreign_pool.task is None
    assert world.demo.project.tasks.count() == 2  # the own project, split once


def test_it_splits_only_the_selected_media_items(world: World, manager: Client) -> None:
    items = [make_image(world.demo.project, name=f"{n}.png") for n in range(3)]
    foreign = make_image(world.other.project, name="theirs.png")
    response = manager.post(
        changelist("annotation_mediaitem"),
        {
            "action": "split_into_tasks",
            "_selected_action": [items[0].pk, items[2].pk, foreign.pk],
            "apply": "1",
            "size": "10",
        },
        follow=True,
    )
    assert response.status_code == 200
    [task] = world.demo.project.tasks.exclude(pk=world.demo.task.pk)
    assert {item.pk for item in task.items.all()} == {items[0].pk, items[2].pk}
    foreign.refresh_from_db()
    assert foreign.task is None
    assert world.other.project.tasks.count() == 1


# --- assigning tasks -----------------------------------------------------------------------------
def assign(client: Client, tasks: list[Task], **extra: Any) -> Any:
    data = {"action": "assign_to_members", "_selected_action": [task.pk for task in tasks], **extra}
    return client.post(changelist("annotation_task"), data)


def test_it_offers_only_members_of_the_tasks_organisation(world: World, manager: Client) -> None:
    response = assign(manager, [world.demo.task])
    assert response.status_code == 200
    offered = set(response.context["form"].fields["assignees"].queryset)
    assert offered == {world.owner, world.manager, world.reviewer, world.annotator}
    assert world.outsider.get_username() not in response.content.decode()


def test_it_assigns_tasks_round_robin_to_the_chosen_members(world: World, manager: Client) -> None:
    second = Task.objects.create(project=world.demo.project, name="Task 2")
    third = Task.objects.create(project=world.demo.project, name="Task 3")
    response = assign(
        manager, [world.demo.task, second, third], apply="1", assignees=[world.annotator.pk, world.reviewer.pk]
    )
    assert response.status_code == 302
    assignees = [Task.objects.get(pk=task.pk).assignee for task in (world.demo.task, second, third)]
    # Round robin over the chosen members in name order: annotator, reviewer, annotator.
    assert assignees == [world.annotator, world.reviewer, world.annotator]


def test_it_refuses_an_assignee_from_another_organisation(world: World, manager: Client) -> None:
    response = assign(manager, [world.demo.task], apply="1", assignees=[world.outsider.pk])
    assert response.status_code == 400
    assert "assignees" in response.context["form"].errors
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.annotator


def test_it_does_not_assign_another_organisations_task_fed_to_the_action(world: World, manager: Client) -> None:
    assign(manager, [world.demo.task, world.other.task], apply="1", assignees=[world.reviewer.pk])
    world.other.task.refresh_from_db()
    assert world.other.task.assignee == world.outsider
    world.demo.task.refresh_from_db()
    assert world.demo.task.assignee == world.reviewer


def test_it_assigns_tasks_of_one_organisation_at_a_time(world: World) -> None:
    MembershipFactory(user=world.manager, organization=world.other.org, role=Role.MANAGER)
    client = Client()
    client.force_login(world.manager)
    response = assign(client, [world.demo.task, world.other.task])
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert "Choose tasks of one organisation at a time." in shown_messages(response)


# --- the task and question pages -----------------------------------------------------------------
@pytest.mark.parametrize("model", ["annotation_task", "annotation_mediaitem"])
def test_it_lists_in_a_fixed_number_of_queries(world: World, manager: Client, model: str) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert manager.get(changelist(model)).status_code == 200
        return len(captured)

    before = queries()
    for n in range(4):
        item = make_image(world.demo.project, name=f"more-{n}.png")
        item.task = Task.objects.create(project=world.demo.project, name=f"More {n}", assignee=world.reviewer)
        item.save(update_fields=["task"])
    assert queries() == before


def test_it_lists_tasks_with_their_progress(world: World, manager: Client) -> None:
    response = manager.get(changelist("annotation_task"))
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [world.demo.task]
    assert '<progress max="1" value="0"></progress> 0 / 1' in response.content.decode()


def test_it_reassigns_a_task_on_its_page_among_its_organisations_members(world: World, manager: Client) -> None:
    url = reverse("admin:annotation_task_change", args=[world.demo.task.pk])
    form = manager.get(url).context["adminform"].form
    assert set(form.fields["assignee"].queryset) == {world.owner, world.manager, world.reviewer, world.annotator}
    response = manager.post(url, {"name": "Renamed", "assignee": world.outsider.pk})
    assert response.status_code == 200  # refused with a form error
    assert "assignee" in response.context["adminform"].form.errors
    assert manager.post(url, {"name": "Renamed", "assignee": world.reviewer.pk}).status_code == 302
    world.demo.task.refresh_from_db()
    assert (world.demo.task.name, world.demo.task.assignee) == ("Renamed", world.reviewer)


def test_it_deletes_a_task_and_returns_its_items_to_the_pool(world: World, manager: Client) -> None:
    url = reverse("admin:annotation_task_delete", args=[world.demo.task.pk])
    assert manager.post(url, {"post": "yes"}).status_code == 302
    assert not Task.objects.filter(pk=world.demo.task.pk).exists()
    world.demo.media.refresh_from_db()
    assert world.demo.media.task is None


def test_it_adds_a_question_with_one_choice_a_line(world: World, manager: Client) -> None:
    response = manager.post(
        reverse("admin:annotation_question_add"),
        {
            "project": world.demo.project.pk,
            "label": "",
            "text": "Dense scene",
            "choices": "yes\n\n no \n",
            "default": "no",
            "order": 0,
        },
    )
    assert response.status_code == 302
    question = Question.objects.get(text="Dense scene")
    assert (question.project, question.label, question.choices, question.default) == (
        world.demo.project,
        None,
        ["yes", "no"],
        "no",
    )
    form = manager.get(reverse("admin:annotation_question_change", args=[question.pk])).context["adminform"].form
    assert form.initial["choices"] == "yes\nno"


def test_it_refuses_a_question_on_another_organisations_label(world: World, manager: Client) -> None:
    response = manager.post(
        reverse("admin:annotation_question_add"),
        {"project": world.demo.project.pk, "label": world.other.label.pk, "text": "Smuggled", "choices": "a\nb"},
    )
    assert response.status_code == 200
    assert "label" in response.context["adminform"].form.errors
    assert not Question.objects.filter(text="Smuggled").exists()
    labels = set(response.context["adminform"].form.fields["label"].queryset)
    assert labels == {world.demo.label}


def test_it_refuses_a_question_whose_default_is_no_choice(world: World, manager: Client) -> None:
    response = manager.post(
        reverse("admin:annotation_question_add"),
        {"project": world.demo.project.pk, "text": "Quality 2", "choices": "good\nbad", "default": "fine", "order": 0},
    )
    assert response.status_code == 200
    assert "default" in response.context["adminform"].form.errors
    assert not Question.objects.filter(text="Quality 2").exists()


# --- jobs ----------------------------------------------------------------------------------------
def test_it_lists_jobs_with_state_and_progress(world: World, manager: Client) -> None:
    response = manager.get(changelist("platform_core_job"))
    html = response.content.decode()
    assert list(response.context["cl"].result_list) == [world.demo.job]
    assert '<span class="job-state job-state-succeeded">Succeeded</span>' in html
    assert '<progress max="1" value="1"></progress> 1 / 1' in html


# --- members and invitations ------------------------------------------------------------------------
def test_it_shows_open_invitations_under_the_members_list(world: World, manager: Client) -> None:
    response = manager.get(changelist("platform_core_membership"))
    assert response.status_code == 200
    assert list(response.context["open_invitations"]) == [world.demo.invitation]
    assert reverse("admin:platform_core_invitation_add") in response.content.decode()


def test_it_sends_an_invitation_by_email(
    world: World, manager: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(
            reverse("admin:platform_core_invitation_add"),
            {"organization": world.demo.org.pk, "email": "New@Example.org", "role": "annotator"},
        )
    assert response.status_code == 302
    invitation = Invitation.objects.get(email="new@example.org")
    assert (invitation.organization, invitation.role, invitation.invited_by) == (
        world.demo.org,
        "annotator",
        world.manager,
    )
    [message] = mail.outbox
    assert message.to == ["new@example.org"]
    token = re.search(r"/invitations/([^/\s]+)/", message.body).group(1)
    assert invitation_from_token(token) == invitation


def test_it_makes_an_invitation_link(world: World, manager: Client) -> None:
    response = manager.post(
        reverse("admin:platform_core_invitation_add"),
        {"organization": world.demo.org.pk, "email": "", "role": "reviewer"},
    )
    assert response.status_code == 200
    invitation = Invitation.objects.exclude(pk=world.demo.invitation.pk).get(organization=world.demo.org)
    assert (invitation.email, invitation.role) == ("", "reviewer")
    link = response.context["new_link"]
    assert link.startswith("http://testserver/invitations/")
    assert invitation_from_token(link.rstrip("/").rsplit("/", 1)[1]) == invitation
    assert mail.outbox == []


def test_it_offers_a_manager_only_their_organisations_and_the_roles_below_theirs(world: World, manager: Client) -> None:
    form = manager.get(reverse("admin:platform_core_invitation_add")).context["form"]
    assert list(form.fields["organization"].queryset) == [world.demo.org]
    assert [value for value, _ in form.fields["role"].choices] == ["reviewer", "annotator"]


@pytest.mark.parametrize(
    "data",
    [
        {"organization": "other", "email": "x@example.org", "role": "annotator"},
        {"organization": "demo", "email": "x@example.org", "role": "owner"},
        {"organization": "demo", "email": "annotator@example.org", "role": "annotator"},
    ],
    ids=["other-organisation", "role-above-own", "already-a-member"],
)
def test_it_refuses_an_invitation_it_may_not_make(world: World, manager: Client, data: dict[str, str]) -> None:
    world.annotator.email = "annotator@example.org"
    world.annotator.save(update_fields=["email"])
    data = {**data, "organization": getattr(world, data["organization"]).org.pk}
    response = manager.post(reverse("admin:platform_core_invitation_add"), data)
    assert response.status_code == 400
    assert response.context["form"].errors
    assert not Invitation.objects.filter(email=data["email"]).exists()
    assert mail.outbox == []


def test_it_shows_an_open_invitations_link_and_revokes_it(world: World, manager: Client) -> None:
    invitation = world.demo.invitation
    response = manager.get(reverse("admin:platform_core_invitation_change", args=[invitation.pk]))
    link = response.context["invitation_link"]
    assert invitation_from_token(link.rstrip("/").rsplit("/", 1)[1]) == invitation
    assert link in response.content.decode()
    delete = reverse("admin:platform_core_invitation_delete", args=[invitation.pk])
    assert manager.post(delete, {"post": "yes"}).status_code == 302
    assert not Invitation.objects.filter(pk=invitation.pk).exists()


# --- view on site, both ways ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "url"),
    [
        ("project", lambda w: f"/o/demo-lab/projects/{w.demo.project.pk}/"),
        ("mediaitem", lambda w: f"/o/demo-lab/projects/{w.demo.project.pk}/media/{w.demo.media.pk}/"),
        ("task", lambda w: f"/o/demo-lab/tasks/{w.demo.task.pk}/"),
    ],
)
def test_it_links_each_admin_page_to_the_site(world: World, manager: Client, model: str, url: Any) -> None:
    obj = {"project": world.demo.project, "mediaitem": world.demo.media, "task": world.demo.task}[model]
    response = manager.get(reverse(f"admin:annotation_{model}_change", args=[obj.pk]))
    assert response.context["absolute_url"] == url(world)
    assert f'href="{url(world)}"' in response.content.decode()
    assert manager.get(url(world), follow=True).status_code == 200  # the site page opens for the manager


def test_it_scopes_the_view_on_site_redirect(world: World, manager: Client) -> None:
    content_type = ContentType.objects.get_for_model(world.demo.project)

    def redirect(project: Any) -> Any:
        kwargs = {"content_type_id": content_type.pk, "object_id": project.pk}
        return manager.get(reverse("admin:view_on_site", kwargs=kwargs))

    response = redirect(world.demo.project)
    assert response.status_code == 302
    assert response["Location"].endswith(world.demo.project.get_absolute_url())
    # Another organisation's object: no redirect naming its organisation, just a 404.
    assert redirect(world.other.project).status_code == 404


def test_it_links_the_project_page_to_the_admin_for_managers(world: World, manager: Client) -> None:
    page = reverse("project_detail", kwargs={"org_slug": "demo-lab", "project_id": world.demo.project.pk})
    admin_url = reverse("admin:annotation_project_change", args=[world.demo.project.pk])
    assert f'href="{admin_url}"' in manager.get(page).content.decode()
    annotator = Client()
    annotator.force_login(world.annotator)
    assert admin_url not in annotator.get(page).content.decode()


# --- styled like the site ------------------------------------------------------------------------
def test_it_styles_the_admin_like_the_site(world: World, manager: Client) -> None:
    html = manager.get(reverse("admin:index")).content.decode()
    assert '/static/css/admin.css"' in html
    assert 'class="brand" href="/"' in html
    assert "admin/css/dark_mode.css" not in html  # one light theme, as on the site
    assert "<style" not in html  # nothing the site's Content-Security-Policy would block
