"""The project page's gallery: progress, filters, paging for infinite scroll, the htmx fragment,
multi-select actions (delete, a task from the selection), the zip import form, who sees which items,
and other organisations' projects and items answering 404."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation.models import Annotation, MediaItem, Project, Task
from annotation.projects import gallery
from platform_core.models import Job
from tests.conftest import World
from tests.factories import LabelFactory, MembershipFactory, ProjectFactory, make_image, png_bytes

HTMX = {"HX-Request": "true"}


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, org: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org, **kwargs})


def detail_url(world: World, org: str = "demo-lab") -> str:
    return url("project_detail", org=org, project_id=world.demo.project.pk)


def text_of(response: Any) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def shown(response: Any) -> list[str]:
    """The names of the gallery's items on the page or fragment, in order."""
    return re.findall(r'<img src="[^"]*/thumbnail/?[^"]*" alt="([^"]*)"', response.content.decode())


@pytest.fixture
def stocked(world: World) -> dict[str, Any]:
    """Demo Lab's project with five items: a.png (the fixture's, in the annotator's Task 1), b.png
    also in Task 1 and done, c.png in the reviewer's Task 2, d.png and e.png in no task; "car"
    objects on a (the fixture's box), b and c, a "person" on d."""
    project = world.demo.project
    items = {"a.png": world.demo.media}
    MediaItem.objects.filter(pk=world.demo.media.pk).update(original_name="a.png")
    for name in ("b.png", "c.png", "d.png", "e.png"):
        items[name] = make_image(project, name=name)
    task2 = Task.objects.create(project=project, name="Task 2", assignee=world.reviewer)
    MediaItem.objects.filter(pk=items["b.png"].pk).update(task=world.demo.task, done_at=timezone.now())
    MediaItem.objects.filter(pk=items["c.png"].pk).update(task=task2)
    car = world.demo.label
    person = LabelFactory(project=project, name="person", order=1)
    Annotation.objects.create(media=items["b.png"], label=car)
    Annotation.objects.create(media=items["c.png"], label=car)
    Annotation.objects.create(media=items["d.png"], label=person)
    return {"items": items, "task1": world.demo.task, "task2": task2, "car": car, "person": person}


# --- the page ------------------------------------------------------------------------------------------


def test_it_shows_progress_and_objects_per_label(world: World, stocked: dict[str, Any]) -> None:
    page = text_of(client_for(world.manager).get(detail_url(world)))
    assert "1 of 5 items done · Images" in page
    assert f"{stocked['car'].name}: 3 objects · person: 1 object" in page


def test_it_renders_the_gallery_alone_for_htmx_and_varies_on_it(world: World, stocked: dict[str, Any]) -> None:
    client = client_for(world.manager)
    full = client.get(detail_url(world))
    fragment = client.get(detail_url(world), headers=HTMX)
    for response in (full, fragment):
        assert response.status_code == 200
        assert "HX-Request" in response["Vary"]
        assert "a.png" in response.content.decode()
    assert "<html" in full.content.decode() and 'id="gallery"' in full.content.decode()
    assert "<html" not in fragment.content.decode() and 'id="gallery"' not in fragment.content.decode()
    assert fragment.content.decode().lstrip().startswith("<li")


def test_it_keeps_the_selection_boxes_on_gallery_pages_loaded_by_htmx(world: World, stocked: dict[str, Any]) -> None:
    fragment = client_for(world.manager).get(detail_url(world), {"done": "no"}, headers=HTMX).content.decode()
    boxes = re.findall(r'<input type="checkbox" name="items" value="(\d+)"', fragment)
    expected = {str(item.pk) for name, item in stocked["items"].items() if name != "b.png"}
    assert set(boxes) == expected


def test_it_offers_no_selection_or_upload_to_annotators_and_reviewers(world: World, stocked: dict[str, Any]) -> None:
    for user in (world.reviewer, world.annotator):
        client = client_for(user)
        for response in (client.get(detail_url(world)), client.get(detail_url(world), headers=HTMX)):
            page = response.content.decode()
            assert 'name="items"' not in page
            assert 'name="archive"' not in page
            assert "Delete selected" not in page


# --- filters and paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["a.png", "b.png", "c.png", "d.png", "e.png"]),
        ({"done": "yes"}, ["b.png"]),
        ({"done": "no"}, ["a.png", "c.png", "d.png", "e.png"]),
        ({"label": "car"}, ["a.png", "b.png", "c.png"]),
        ({"label": "person"}, ["d.png"]),
        ({"task": "task1"}, ["a.png", "b.png"]),
        ({"task": "task2"}, ["c.png"]),
        ({"task": "none"}, ["d.png", "e.png"]),
        ({"assignee": "annotator"}, ["a.png", "b.png"]),
        ({"assignee": "reviewer"}, ["c.png"]),
        ({"assignee": "none"}, ["d.png", "e.png"]),
        ({"done": "no", "label": "car", "assignee": "reviewer"}, ["c.png"]),
        ({"done": "no", "task": "task1"}, ["a.png"]),
        ({"done": "maybe", "label": "x", "task": "-1"}, ["a.png", "b.png", "c.png", "d.png", "e.png"]),
    ],
)
def test_it_filters_the_gallery(
    world: World, stocked: dict[str, Any], filters: dict[str, str], expected: list[str]
) -> None:
    ids = {
        "car": stocked["car"].pk,
        "person": stocked["person"].pk,
        "task1": stocked["task1"].pk,
        "task2": stocked["task2"].pk,
        "annotator": world.annotator.pk,
        "reviewer": world.reviewer.pk,
    }
    query = {key: str(ids.get(value, value)) for key, value in filters.items()}
    client = client_for(world.manager)
    assert shown(client.get(detail_url(world), query)) == expected
    fragment = client.get(detail_url(world), query, headers=HTMX)
    assert shown(fragment) == expected


def test_it_says_when_nothing_matches_the_filters(world: World, stocked: dict[str, Any]) -> None:
    response = client_for(world.manager).get(detail_url(world), {"done": "yes", "task": "none"}, headers=HTMX)
    assert shown(response) == []
    assert "No media matches these filters." in response.content.decode()


def test_it_pages_the_gallery_for_infinite_scroll_keeping_the_filters(
    world: World, stocked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery, "GALLERY_PAGE_SIZE", 2)
    client = client_for(world.manager)
    first = client.get(detail_url(world), {"done": "no"})
    assert shown(first) == ["a.png", "c.png"]
    more = re.search(r'<li class="more" hx-get="([^"]+)"', first.content.decode())
    assert more is not None
    next_url = more.group(1).replace("&amp;", "&")
    assert next_url == "?page=2&done=no"
    second = client.get(detail_url(world) + next_url, headers=HTMX)
    assert shown(second) == ["d.png", "e.png"]
    assert 'class="more"' not in second.content.decode()


def test_it_encodes_filter_values_in_the_next_page_link(
    world: World, stocked: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gallery, "GALLERY_PAGE_SIZE", 2)
    response = client_for(world.manager).get(detail_url(world), {"label": "1&page=9#x"}, headers=HTMX)
    more = re.search(r'hx-get="([^"]+)"', response.content.decode())
    assert more is not None
    assert more.group(1).replace("&amp;", "&") == "?page=2&label=1%26page%3D9%23x"


def test_it_lists_the_gallery_in_the_same_number_of_queries_however_many_items(
    world: World, stocked: dict[str, Any], django_assert_num_queries: Any
) -> None:
    client = client_for(world.manager)
    with CaptureQueriesContext(connection) as five:
        client.get(detail_url(world))
    task = Task.objects.create(project=world.demo.project, name="Task 3", assignee=world.manager)
    for n in range(4):
        make_image(world.demo.project, name=f"more{n}.png")
    world.demo.project.media.filter(task__isnull=True).update(task=task)
    with django_assert_num_queries(len(five.captured_queries)):
        response = client.get(detail_url(world))
    assert len(shown(response)) == 9


# --- who sees which items --------------------------------------------------------------------------------


def test_it_shows_an_annotator_only_the_items_of_their_own_tasks(world: World, stocked: dict[str, Any]) -> None:
    client = client_for(world.annotator)
    response = client.get(detail_url(world))
    assert shown(response) == ["a.png", "b.png"]
    assert "1 of 2 items done" in text_of(response)
    # Filters cannot widen the scope, and the task and assignee filters are not offered.
    assert shown(client.get(detail_url(world), {"task": stocked["task2"].pk}, headers=HTMX)) == []
    assert shown(client.get(detail_url(world), {"assignee": world.reviewer.pk})) == []
    assert shown(client.get(detail_url(world), {"task": "none"})) == []
    assert 'name="task"' not in response.content.decode() and 'name="assignee"' not in response.content.decode()


def test_it_shows_another_annotator_none_of_the_first_annotators_items(world: World, stocked: dict[str, Any]) -> None:
    second = MembershipFactory(organization=world.demo.org, role="annotator").user
    response = client_for(second).get(detail_url(world))
    assert response.status_code == 200
    assert shown(response) == []


def test_it_shows_reviewers_and_managers_every_item(world: World, stocked: dict[str, Any]) -> None:
    for user in (world.reviewer, world.manager, world.owner):
        response = client_for(user).get(detail_url(world))
        assert shown(response) == ["a.png", "b.png", "c.png", "d.png", "e.png"]
        assert 'name="task"' in response.content.decode()


def test_it_answers_404_to_an_outsider_for_the_project_page(world: World) -> None:
    outsider = client_for(world.outsider)
    for target in (detail_url(world), detail_url(world, org="other-lab")):
        assert outsider.get(target).status_code == 404
        assert outsider.get(target, headers=HTMX).status_code == 404
    other = url("project_detail", project_id=world.other.project.pk)
    assert client_for(world.manager).get(other).status_code == 404


# --- multi-select actions ----------------------------------------------------------------------------------


def bulk_url(world: World, org: str = "demo-lab", project: Project | None = None) -> str:
    return url("media_bulk_action", org=org, project_id=(project or world.demo.project).pk)


def test_it_deletes_the_selected_items_only(world: World, stocked: dict[str, Any]) -> None:
    items = stocked["items"]
    picked = [items["c.png"].pk, items["d.png"].pk]
    response = client_for(world.manager).post(bulk_url(world), {"action": "delete", "items": picked}, follow=True)
    assert response.redirect_chain[-1][0] == detail_url(world)
    assert "Deleted 2 items." in response.content.decode()
    assert not MediaItem.objects.filter(pk__in=picked).exists()
    assert set(world.demo.project.media.values_list("original_name", flat=True)) == {"a.png", "b.png", "e.png"}
    assert not Annotation.objects.filter(media_id__in=picked).exists()


def test_it_ignores_selected_ids_of_other_projects_and_organisations(world: World, stocked: dict[str, Any]) -> None:
    sibling = make_image(ProjectFactory(organization=world.demo.org))
    picked = [stocked["items"]["e.png"].pk, world.other.media.pk, sibling.pk, "x"]
    response = client_for(world.owner).post(bulk_url(world), {"action": "delete", "items": picked}, follow=True)
    assert "Deleted 1 item." in response.content.decode()
    assert not MediaItem.objects.filter(pk=stocked["items"]["e.png"].pk).exists()
    assert MediaItem.objects.filter(pk__in=[world.other.media.pk, sibling.pk]).count() == 2


def test_it_asks_for_a_selection_and_a_known_action(world: World, stocked: dict[str, Any]) -> None:
    client = client_for(world.manager)
    response = client.post(bulk_url(world), {"action": "delete"}, follow=True)
    assert "Select at least one item first." in response.content.decode()
    pick = stocked["items"]["e.png"].pk
    response = client.post(bulk_url(world), {"action": "explode", "items": [pick]}, follow=True)
    assert "Unknown action." in response.content.decode()
    assert world.demo.project.media.count() == 5


def test_it_makes_a_task_of_the_selection(world: World, stocked: dict[str, Any]) -> None:
    items = stocked["items"]
    picked = [items["d.png"].pk, items["e.png"].pk]
    response = client_for(world.manager).post(bulk_url(world), {"action": "task", "items": picked}, follow=True)
    assert response.redirect_chain[-1][0] == url("project_tasks", project_id=world.demo.project.pk)
    task = Task.objects.get(project=world.demo.project, name="Task 3")
    assert "Made Task 3 from the selection." in response.content.decode()
    assert set(task.items.values_list("pk", flat=True)) == set(picked)
    assert task.created_by == world.manager


def test_it_leaves_items_already_in_a_task_where_they_are(world: World, stocked: dict[str, Any]) -> None:
    items = stocked["items"]
    picked = [items["a.png"].pk, items["c.png"].pk]
    response = client_for(world.manager).post(bulk_url(world), {"action": "task", "items": picked}, follow=True)
    assert "Every item is already in a task: there is nothing to split." in response.content.decode()
    assert world.demo.project.tasks.count() == 2
    assert MediaItem.objects.get(pk=items["c.png"].pk).task == stocked["task2"]


def test_it_forbids_annotators_and_reviewers_to_act_on_a_selection(world: World, stocked: dict[str, Any]) -> None:
    picked = [item.pk for item in stocked["items"].values()]
    for user in (world.annotator, world.reviewer):
        for action in ("delete", "task"):
            response = client_for(user).post(bulk_url(world), {"action": action, "items": picked})
            assert response.status_code == 403
    assert world.demo.project.media.count() == 5
    assert world.demo.project.tasks.count() == 2


def test_it_answers_404_to_an_outsider_acting_on_a_selection(world: World) -> None:
    outsider = client_for(world.outsider)
    mine = world.other.media.pk
    for target in (bulk_url(world), bulk_url(world, org="other-lab")):
        for action in ("delete", "task"):
            response = outsider.post(target, {"action": action, "items": [world.demo.media.pk, mine]})
            assert response.status_code == 404
    # Demo Lab's manager cannot reach Other Lab's project either.
    response = client_for(world.manager).post(
        bulk_url(world, project=world.other.project), {"action": "delete", "items": [mine]}
    )
    assert response.status_code == 404
    assert MediaItem.objects.filter(pk__in=[world.demo.media.pk, mine]).count() == 2


# --- zip import --------------------------------------------------------------------------------------------


def zip_upload(name: str = "photos.zip") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("one.png", png_bytes())
        archive.writestr("two.png", png_bytes(colour=(0, 90, 200)))
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def import_url(world: World, org: str = "demo-lab", project: Project | None = None) -> str:
    return url("media_import", org=org, project_id=(project or world.demo.project).pk)


def import_jobs(world: World) -> Any:
    return Job.objects.filter(kind="import_media", state=Job.State.QUEUED)


def test_it_offers_the_zip_import_form_to_managers(world: World) -> None:
    page = client_for(world.manager).get(detail_url(world)).content.decode()
    assert f'action="{import_url(world)}"' in page
    assert 'enctype="multipart/form-data"' in page and 'name="archive"' in page


def test_it_starts_an_import_job_for_an_uploaded_zip(world: World) -> None:
    client = client_for(world.manager)
    response = client.post(import_url(world), {"archive": zip_upload()})
    job = import_jobs(world).get()
    assert response.status_code == 302
    assert response["Location"] == url("job_detail", job_id=job.pk)
    assert (job.organization, job.project, job.created_by) == (world.demo.org, world.demo.project, world.manager)
    assert job.params["source"] == "upload" and job.params["label"] == "photos.zip"
    page = client.get(response["Location"]).content.decode()
    assert "Importing photos.zip in the background." in page


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("photos.zip", b"not a zip at all"), "The file is not a zip archive."),
        (SimpleUploadedFile("photo.png", png_bytes(), content_type="image/png"), "The file is not a zip archive."),
        (None, "Choose a zip file to import."),
    ],
)
def test_it_refuses_what_is_not_a_zip_with_a_clear_message(
    world: World, upload: SimpleUploadedFile | None, message: str
) -> None:
    data = {"archive": upload} if upload is not None else {}
    response = client_for(world.manager).post(import_url(world), data, follow=True)
    assert response.redirect_chain[-1][0] == detail_url(world)
    assert message in response.content.decode()
    assert not import_jobs(world).exists()


def test_it_starts_a_zip_import_into_a_videos_only_project(world: World) -> None:
    # Zips may hold videos too; each image in one is refused when the job meets it.
    videos = ProjectFactory(organization=world.demo.org, name="Clips", media_type=Project.MediaType.VIDEOS)
    response = client_for(world.manager).post(import_url(world, project=videos), {"archive": zip_upload()})
    assert response.status_code == 302
    assert import_jobs(world).get().project == videos


def test_it_forbids_annotators_and_reviewers_to_import(world: World) -> None:
    for user in (world.annotator, world.reviewer):
        assert client_for(user).post(import_url(world), {"archive": zip_upload()}).status_code == 403
    assert not import_jobs(world).exists()


def test_it_answers_404_to_an_outsider_importing_into_a_project_not_theirs(world: World) -> None:
    outsider = client_for(world.outsider)
    for target in (import_url(world), import_url(world, org="other-lab")):
        assert outsider.post(target, {"archive": zip_upload()}).status_code == 404
    manager = client_for(world.manager)
    assert manager.post(import_url(world, project=world.other.project), {"archive": zip_upload()}).status_code == 404
    assert not import_jobs(world).exists()
