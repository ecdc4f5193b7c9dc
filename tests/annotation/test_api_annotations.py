"""REST API: an item's annotations, listed, created, read, changed and deleted with versions (a stale
write is a 409 carrying the stored annotation); RLE, label and answers checked; the annotator-scope
rule and other organisations answered with 404."""

from __future__ import annotations

from typing import Any

import pytest

from annotation.annotations.payloads import annotation_payload
from annotation.masks import box_to_rle, mask_decode
from annotation.models import Annotation, Label, MediaItem
from platform_core.models import Role
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import LabelFactory, MembershipFactory, ProjectFactory, make_image

PAYLOAD_KEYS = {
    "id",
    "media",
    "label",
    "frame",
    "track",
    "rle",
    "bbox",
    "area",
    "drawn",
    "answers",
    "source",
    "source_detail",
    "proposed",
    "author",
    "z_order",
    "version",
    "updated_at",
}


def list_url(media: MediaItem, org_slug: str = "demo-lab") -> str:
    return api_url("api_annotation_list", org_slug=org_slug, media_id=media.pk)


def detail_url(annotation: Annotation, media: MediaItem | None = None, org_slug: str = "demo-lab") -> str:
    media_id = (media or annotation.media).pk
    return api_url("api_annotation_detail", org_slug=org_slug, media_id=media_id, annotation_id=annotation.pk)


def box(corners: list[int]) -> dict:
    return box_to_rle(corners, height=48, width=64)  # the fixture's images are 64 × 48


def stored(world: World) -> list[Annotation]:
    return list(Annotation.objects.filter(media=world.demo.media).order_by("id"))


@pytest.fixture
def second(world: World) -> Any:
    """Another annotator of Demo Lab, with a task of their own: the fixture's item is not theirs."""
    user = MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR, user__username="annotator2").user
    task = world.demo.project.tasks.create(name="Task 2", assignee=user)
    mine = make_image(world.demo.project, name="mine.png")
    mine.task = task
    mine.save(update_fields=["task"])
    return user


# --- list ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["annotator", "reviewer", "manager", "owner"])
def test_it_lists_the_items_annotations_to_members(world: World, role: str) -> None:
    response = token_client(getattr(world, role)).get(list_url(world.demo.media))
    assert response.status_code == 200
    [item] = response.json()["results"]
    assert set(item) == PAYLOAD_KEYS
    annotation = world.demo.annotation
    annotation.refresh_from_db()
    assert item == annotation_payload(annotation)
    assert item["rle"] == {"size": [48, 64], "counts": box([8, 6, 24, 20])["counts"]}
    assert (item["label"], item["frame"], item["version"], item["author"]) == (
        world.demo.label.pk,
        None,
        1,
        "annotator",
    )
    assert item["bbox"] == [8.0, 6.0, 16.0, 14.0]


def test_it_lists_bottom_to_top(world: World) -> None:
    top = Annotation.objects.create(media=world.demo.media, label=world.demo.label, rle=box([0, 0, 5, 5]), z_order=5)
    bottom = Annotation.objects.create(
        media=world.demo.media, label=world.demo.label, rle=box([0, 0, 5, 5]), z_order=-1
    )
    ids = [item["id"] for item in token_client(world.annotator).get(list_url(world.demo.media)).json()["results"]]
    assert ids == [bottom.pk, world.demo.annotation.pk, top.pk]


def test_it_refuses_a_malformed_frame_filter(world: World) -> None:
    client = token_client(world.annotator)
    assert client.get(list_url(world.demo.media), {"frame": "0"}).json()["results"] == []  # images have no frame
    response = client.get(list_url(world.demo.media), {"frame": "first"})
    assert response.status_code == 400
    assert response.json()["frame"]


@pytest.mark.parametrize("extra", [0, 30])
def test_it_lists_in_a_constant_number_of_queries(world: World, django_assert_num_queries: Any, extra: int) -> None:
    author = world.annotator
    for n in range(extra):
        label = world.demo.label if n % 2 else LabelFactory(project=world.demo.project)
        Annotation.objects.create(media=world.demo.media, label=label, rle=box([0, 0, n + 1, 5]), author=author)
    client = token_client(world.annotator)
    # Token, tenant (its member known already), item, page count and the page (with its authors).
    with django_assert_num_queries(5):
        response = client.get(list_url(world.demo.media))
    assert response.json()["count"] == extra + 1
    assert all(item["author"] == "annotator" for item in response.json()["results"])


def test_it_answers_404_to_the_list_of_an_item_outside_the_annotators_tasks(world: World, second: Any) -> None:
    response = token_client(second).get(list_url(world.demo.media))
    assert response.status_code == 404


def test_it_answers_404_to_the_list_for_another_organisation(world: World) -> None:
    outsider = token_client(world.outsider)
    assert outsider.get(list_url(world.demo.media)).status_code == 404
    # In the outsider's own organisation, Demo Lab's item id is no item at all.
    assert outsider.get(list_url(world.demo.media, org_slug="other-lab")).status_code == 404
    assert outsider.get(list_url(world.other.media, org_slug="other-lab")).status_code == 200


# --- create -----------------------------------------------------------------------------------------


def test_it_creates_an_annotation(world: World) -> None:
    question = str(world.demo.question.pk)
    body = {
        "label": world.demo.label.pk,
        "rle": box([10, 10, 30, 20]),
        "drawn": {"box": [10, 10, 30, 20]},
        "answers": {question: "good"},
    }
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert set(created) == PAYLOAD_KEYS
    annotation = Annotation.objects.get(pk=created["id"])
    assert created == annotation_payload(annotation)
    assert (created["version"], created["area"], created["bbox"]) == (1, 200, [10.0, 10.0, 20.0, 10.0])
    assert (created["author"], created["source"], created["z_order"]) == ("annotator", "manual", 1)
    assert annotation.answers == {question: "good"}
    assert annotation.drawn == {"box": [10, 10, 30, 20]}


def test_it_stores_uncompressed_counts_compressed(world: World) -> None:
    mask = mask_decode(box([0, 0, 3, 2]))
    assert mask.sum() == 6
    # Column-major runs: each of the first three columns has two set pixels then 46 clear ones.
    counts = [0, 2, 46, 2, 46, 2, 46 + 48 * 61]
    body = {"label": world.demo.label.pk, "rle": {"size": [48, 64], "counts": counts}}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["rle"] == box([0, 0, 3, 2])
    assert response.json()["area"] == 6


def test_it_takes_a_models_annotation_with_its_prompts(world: World) -> None:
    body = {
        "label": world.demo.label.pk,
        "rle": box([1, 1, 9, 9]),
        "source": "model",
        "source_detail": {"model": "sam2.1_hiera_tiny", "points": [[4, 4, 1]]},
        "z_order": -2,
    }
    response = token_client(world.reviewer).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["source"], response.json()["z_order"]) == ("model", -2)
    assert response.json()["source_detail"]["model"] == "sam2.1_hiera_tiny"


@pytest.mark.parametrize(
    ("rle", "words"),
    [
        ("0<", 'Give the mask as an RLE object: {"size": [height, width], "counts": "…"}.'),
        ({"size": [48, 64]}, "The RLE has no 'counts'."),
        ({"counts": "0<"}, "The RLE has no 'size'."),
        ({"size": [48], "counts": "0<"}, "The RLE's size must be [height, width], two whole numbers of at least 1."),
        ({"size": [48, 64], "counts": 3072}, "The RLE's counts must be COCO's compressed string"),
        ({"size": [48, 64], "counts": ""}, "The RLE's counts are empty"),
        ({"size": [48, 64], "counts": "0P"}, "The RLE's counts end in the middle of a number."),
        ({"size": [48, 64], "counts": "0<{"}, "The RLE's counts hold characters that are not part of COCO's encoding."),
        ({"size": [48, 64], "counts": "9999"}, "The RLE's runs cover 45 pixels but its size 48×64 has 3072"),
        ({"size": [48, 64], "counts": [100, -4, 2976]}, "The RLE's counts hold a negative run"),
        ({"size": [48, 64], "counts": [100, "4", 2968]}, "The RLE's counts must be whole numbers."),
        ({"size": [64, 48], "counts": "0<"}, "The mask is 64×48 (height × width) but the item is 48×64"),
        ({"size": [48, 64], "counts": [3072]}, "The mask is empty: it has no pixel set."),
        ({"size": [48, 64], "counts": "PP3"}, "The mask is empty: it has no pixel set."),
    ],
)
def test_it_refuses_malformed_rle_with_a_clear_message(world: World, rle: Any, words: str) -> None:
    body = {"label": world.demo.label.pk, "rle": rle}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 400
    [message] = response.json()["rle"]
    assert words in message
    assert len(stored(world)) == 1


def test_it_requires_the_rle_and_the_label(world: World) -> None:
    response = token_client(world.annotator).post(list_url(world.demo.media), {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"label", "rle"}


@pytest.mark.parametrize("which", ["other project", "other organisation", "missing"])
def test_it_refuses_a_label_of_another_project(world: World, which: str) -> None:
    label_id = {
        "other project": lambda: LabelFactory(project=ProjectFactory(organization=world.demo.org)).pk,
        "other organisation": lambda: world.other.label.pk,
        "missing": lambda: 987654,
    }[which]()
    body = {"label": label_id, "rle": box([1, 1, 5, 5])}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 400
    assert response.json() == {"label": [f"No label with id {label_id} in this item's project."]}
    assert len(stored(world)) == 1


def test_it_refuses_a_classification_label(world: World) -> None:
    dense = LabelFactory(project=world.demo.project, name="dense scene", kind=Label.Kind.CLASSIFICATION)
    body = {"label": dense.pk, "rle": box([1, 1, 5, 5])}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 400
    assert "classification label" in response.json()["label"][0]


@pytest.mark.parametrize(
    ("answers", "words"),
    [({"999999": "good"}, "No question 999999"), ({"QUESTION": "excellent"}, "'excellent' is not one of the choices")],
)
def test_it_checks_answers_against_the_labels_questions(world: World, answers: dict, words: str) -> None:
    answers = {str(world.demo.question.pk) if k == "QUESTION" else k: v for k, v in answers.items()}
    body = {"label": world.demo.label.pk, "rle": box([1, 1, 5, 5]), "answers": answers}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 400
    assert words in response.json()["answers"][0]


def test_it_refuses_a_frame_on_an_image(world: World) -> None:
    body = {"label": world.demo.label.pk, "rle": box([1, 1, 5, 5]), "frame": 2}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 400
    assert "no frames" in response.json()["frame"][0]


def test_it_answers_404_to_creating_on_an_item_outside_the_annotators_tasks(world: World, second: Any) -> None:
    body = {"label": world.demo.label.pk, "rle": box([1, 1, 5, 5])}
    assert token_client(second).post(list_url(world.demo.media), body, format="json").status_code == 404
    assert len(stored(world)) == 1


def test_it_answers_404_to_creating_for_another_organisation(world: World) -> None:
    outsider = token_client(world.outsider)
    body = {"label": world.demo.label.pk, "rle": box([1, 1, 5, 5])}
    assert outsider.post(list_url(world.demo.media), body, format="json").status_code == 404
    # With the outsider's own organisation and label, on Demo Lab's item: still no such item.
    body = {"label": world.other.label.pk, "rle": box([1, 1, 5, 5])}
    assert outsider.post(list_url(world.demo.media, org_slug="other-lab"), body, format="json").status_code == 404
    assert len(stored(world)) == 1


def test_it_refuses_changes_to_a_submitted_tasks_item_from_its_annotator(world: World) -> None:
    world.demo.task.state = "submitted"
    world.demo.task.save(update_fields=["state"])
    body = {"label": world.demo.label.pk, "rle": box([1, 1, 5, 5])}
    response = token_client(world.annotator).post(list_url(world.demo.media), body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "state"
    assert token_client(world.reviewer).post(list_url(world.demo.media), body, format="json").status_code == 201


# --- one annotation -------------------------------------------------------------------------------------


def test_it_reads_one_annotation(world: World) -> None:
    response = token_client(world.annotator).get(detail_url(world.demo.annotation))
    assert response.status_code == 200
    world.demo.annotation.refresh_from_db()
    assert response.json() == annotation_payload(world.demo.annotation)


def test_it_answers_404_for_another_items_annotation(world: World) -> None:
    other_item = make_image(world.demo.project, name="other.png")
    other_item.task = world.demo.task
    other_item.save(update_fields=["task"])
    elsewhere = Annotation.objects.create(media=other_item, label=world.demo.label, rle=box([1, 1, 5, 5]))
    client = token_client(world.annotator)
    assert client.get(detail_url(elsewhere, media=other_item)).status_code == 200
    url = detail_url(elsewhere, media=world.demo.media)
    assert client.get(url).status_code == 404
    assert client.patch(url, {"version": 1, "z_order": 3}, format="json").status_code == 404
    assert client.delete(url, {"version": 1}, format="json").status_code == 404
    assert Annotation.objects.get(pk=elsewhere.pk).version == 1


def test_it_answers_404_for_an_annotation_outside_the_annotators_tasks(world: World, second: Any) -> None:
    client = token_client(second)
    url = detail_url(world.demo.annotation)
    assert client.get(url).status_code == 404
    assert client.patch(url, {"version": 1, "z_order": 3}, format="json").status_code == 404
    assert client.delete(url, {"version": 1}, format="json").status_code == 404
    assert Annotation.objects.get(pk=world.demo.annotation.pk).version == 1


def test_it_answers_404_for_another_organisations_annotation(world: World) -> None:
    outsider = token_client(world.outsider)
    for url in (
        detail_url(world.demo.annotation),
        detail_url(world.demo.annotation, org_slug="other-lab"),
        detail_url(world.demo.annotation, media=world.other.media, org_slug="other-lab"),
        detail_url(world.other.annotation, media=world.demo.media, org_slug="other-lab"),
    ):
        assert outsider.get(url).status_code == 404, url
        assert outsider.patch(url, {"version": 1, "z_order": 3}, format="json").status_code == 404, url
        assert outsider.delete(url, {"version": 1}, format="json").status_code == 404, url
    assert Annotation.objects.get(pk=world.demo.annotation.pk).version == 1
    # A Demo Lab member asking for Other Lab's annotation under a Demo Lab item: no such annotation.
    assert token_client(world.owner).get(detail_url(world.other.annotation, media=world.demo.media)).status_code == 404


# --- change ------------------------------------------------------------------------------------------------


def test_it_changes_an_annotation_and_bumps_its_version(world: World) -> None:
    person = LabelFactory(project=world.demo.project, name="person")
    body = {"version": 1, "rle": box([0, 0, 4, 5]), "label": person.pk, "z_order": 3}
    response = token_client(world.annotator).patch(detail_url(world.demo.annotation), body, format="json")
    assert response.status_code == 200, response.json()
    changed = response.json()
    assert (changed["version"], changed["label"], changed["z_order"]) == (2, person.pk, 3)
    assert (changed["bbox"], changed["area"]) == ([0.0, 0.0, 4.0, 5.0], 20)
    stored_annotation = Annotation.objects.get(pk=world.demo.annotation.pk)
    assert changed == annotation_payload(stored_annotation)
    response = token_client(world.reviewer).patch(
        detail_url(world.demo.annotation), {"version": 2, "answers": {}}, format="json"
    )
    assert (response.status_code, response.json()["version"], response.json()["author"]) == (200, 3, "reviewer")


def test_it_refuses_a_stale_change_with_409_and_the_current_annotation(world: World) -> None:
    url = detail_url(world.demo.annotation)
    token_client(world.reviewer).patch(url, {"version": 1, "z_order": 8}, format="json")
    response = token_client(world.annotator).patch(url, {"version": 1, "rle": box([0, 0, 4, 5])}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert set(body) == {"code", "detail", "current"}
    assert body["code"] == "conflict"
    assert "version 2" in body["detail"]
    current = Annotation.objects.get(pk=world.demo.annotation.pk)
    assert body["current"] == annotation_payload(current)
    assert (current.version, current.z_order, current.rle) == (2, 8, box([8, 6, 24, 20]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"z_order": 3}, "version"),
        ({"version": "one", "z_order": 3}, "version"),
        ({"version": 0, "z_order": 3}, "version"),
        ({"version": 1}, "non_field_errors"),
        ({"version": 1, "rle": {"size": [48, 64], "counts": [3072]}}, "rle"),
        ({"version": 1, "label": 987654}, "label"),
        ({"version": 1, "answers": {"999999": "good"}}, "answers"),
        ({"version": 1, "z_order": 2**40}, "z_order"),
    ],
)
def test_it_refuses_a_bad_change(world: World, body: dict, field: str) -> None:
    response = token_client(world.annotator).patch(detail_url(world.demo.annotation), body, format="json")
    assert response.status_code == 400
    assert response.json()[field]
    assert Annotation.objects.get(pk=world.demo.annotation.pk).version == 1


def test_it_refuses_a_change_to_a_label_of_another_project(world: World) -> None:
    for label in (LabelFactory(project=ProjectFactory(organization=world.demo.org)), world.other.label):
        response = token_client(world.owner).patch(
            detail_url(world.demo.annotation), {"version": 1, "label": label.pk}, format="json"
        )
        assert response.status_code == 400
        assert list(response.json()) == ["label"]
    assert Annotation.objects.get(pk=world.demo.annotation.pk).label == world.demo.label


# --- delete ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["body", "query"])
def test_it_deletes_an_annotation_at_its_version(world: World, where: str) -> None:
    client = token_client(world.annotator)
    url = detail_url(world.demo.annotation)
    if where == "body":
        response = client.delete(url, {"version": 1}, format="json")
    else:
        response = client.delete(url + "?version=1")
    assert response.status_code == 204
    assert stored(world) == []
    assert client.get(url).status_code == 404


def test_it_refuses_a_stale_delete_with_409_and_the_current_annotation(world: World) -> None:
    url = detail_url(world.demo.annotation)
    token_client(world.reviewer).patch(url, {"version": 1, "z_order": 8}, format="json")
    response = token_client(world.annotator).delete(url + "?version=1")
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert response.json()["current"]["version"] == 2
    assert response.json()["current"] == annotation_payload(Annotation.objects.get(pk=world.demo.annotation.pk))


@pytest.mark.parametrize("query", ["", "?version=", "?version=two"])
def test_it_refuses_a_delete_without_a_version(world: World, query: str) -> None:
    response = token_client(world.annotator).delete(detail_url(world.demo.annotation) + query)
    assert response.status_code == 400
    assert response.json()["version"]
    assert len(stored(world)) == 1


def test_it_starts_a_new_track_for_a_video_mask_without_one(world: World) -> None:
    from annotation.models import Project
    from annotation.video_services import media_create_video
    from tests.annotation.test_video_files import HEIGHT, WIDTH, make_clip

    Project.objects.filter(pk=world.demo.project.pk).update(media_type=Project.MediaType.BOTH)
    world.demo.project.refresh_from_db()
    video = media_create_video(project=world.demo.project, name="clip.mp4", data=make_clip(), uploaded_by=world.owner)
    client = token_client(world.manager)
    rle = box_to_rle([2, 2, 10, 10], height=HEIGHT, width=WIDTH)

    def create(**fields: Any) -> dict:
        body = {"label": world.demo.label.pk, "rle": rle, **fields}
        response = client.post(list_url(video), body, format="json")
        assert response.status_code == 201, response.json()
        return response.json()

    first = create(frame=0)
    second_object = create(frame=0)
    same_track = create(frame=1, track=first["track"])
    assert (first["track"], second_object["track"], same_track["track"]) == (1, 2, 1)
    # A video mask needs its frame.
    response = client.post(list_url(video), {"label": world.demo.label.pk, "rle": rle}, format="json")
    assert response.status_code == 400 and "frame" in response.json()
