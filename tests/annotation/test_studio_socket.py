"""The studio socket of one item, through the real ASGI stack: list, create, change and delete
annotations with versions, live updates between two people on the item (and from the REST API),
and an error frame, with the socket still open, for every bad message."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async

from annotation.annotations.payloads import annotation_payload
from annotation.masks import box_to_rle, mask_decode, mask_encode
from annotation.models import Annotation, Task
from platform_core.models import Role
from platform_core.websockets import CLOSE_NOT_FOUND
from tests.api_client import api_url, token_client
from tests.factories import LabelFactory, MembershipFactory, make_image
from tests.platform_core.test_websockets import communicator, layer, session_cookie

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
__all__ = ["layer"]  # the channel-layer fixture (in memory, and Redis when REDIS_URL is set)


def studio_path(world: Any, media_id: int | None = None) -> str:
    return f"/ws/o/{world.demo.org.slug}/studio/{media_id or world.demo.media.pk}/"


async def open_studio(world: Any, user: Any, media_id: int | None = None) -> Any:
    cookie = await database_sync_to_async(session_cookie)(user)
    ws = communicator("", cookie=cookie, path=studio_path(world, media_id))
    connected, code = await ws.connect()
    assert connected, code
    return ws


def a_box(world: Any, box: tuple[int, int, int, int] = (4, 6, 30, 20)) -> dict:
    media = world.demo.media
    return box_to_rle(list(box), height=media.height, width=media.width)


async def ask(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json_to(message)
    return await ws.receive_json_from(timeout=5)


async def test_it_lists_the_items_annotations(world: Any, layer: str) -> None:
    ws = await open_studio(world, world.annotator)
    reply = await ask(ws, {"type": "list", "request_id": "l1"})
    expected = await database_sync_to_async(
        lambda: annotation_payload(Annotation.objects.get(pk=world.demo.annotation.pk))
    )()
    assert reply == {"type": "annotations", "request_id": "l1", "annotations": [expected]}
    await ws.disconnect()


async def test_it_saves_a_new_object_and_shows_it_to_the_other_person_on_the_item(world: Any, layer: str) -> None:
    mine = await open_studio(world, world.annotator)
    theirs = await open_studio(world, world.reviewer)
    rle = a_box(world)
    reply = await ask(
        mine,
        {
            "type": "save",
            "request_id": "s1",
            "annotation": {"id": None, "label": world.demo.label.pk, "rle": rle, "drawn": {"box": [4, 6, 30, 20]}},
        },
    )
    assert reply["type"] == "saved" and reply["request_id"] == "s1"
    saved = reply["annotation"]
    stored = await database_sync_to_async(lambda: Annotation.objects.get(pk=saved["id"]))()
    assert (stored.version, stored.author_id, stored.drawn) == (1, world.annotator.pk, {"box": [4, 6, 30, 20]})
    assert np.array_equal(mask_decode(stored.rle), mask_decode(rle))
    assert saved["bbox"] == [4.0, 6.0, 26.0, 14.0] and saved["area"] == 26 * 14

    pushed = await theirs.receive_json_from(timeout=5)
    assert pushed == {"type": "annotation", "annotation": saved}
    assert await mine.receive_nothing(timeout=0.3)  # its own change is answered once, not echoed
    await mine.disconnect()
    await theirs.disconnect()


async def test_it_changes_and_deletes_with_versions(world: Any, layer: str) -> None:
    mine = await open_studio(world, world.annotator)
    theirs = await open_studio(world, world.annotator)
    target = world.demo.annotation
    moved = a_box(world, (10, 10, 40, 30))
    reply = await ask(
        mine, {"type": "save", "request_id": 2, "annotation": {"id": target.pk, "version": 1, "rle": moved}}
    )
    assert reply["annotation"]["version"] == 2 and reply["request_id"] == 2
    assert (await theirs.receive_json_from(timeout=5))["annotation"]["version"] == 2

    reply = await ask(mine, {"type": "delete", "request_id": "d", "id": target.pk, "version": 2})
    assert reply == {"type": "deleted", "request_id": "d", "id": target.pk}
    assert await theirs.receive_json_from(timeout=5) == {"type": "annotation_deleted", "id": target.pk}
    assert not await database_sync_to_async(Annotation.objects.filter(pk=target.pk).exists)()
    await mine.disconnect()
    await theirs.disconnect()


async def test_it_answers_a_stale_version_with_a_conflict_carrying_the_stored_annotation(
    world: Any, layer: str
) -> None:
    ws = await open_studio(world, world.annotator)
    target = world.demo.annotation
    first = await ask(
        ws, {"type": "save", "annotation": {"id": target.pk, "version": 1, "rle": a_box(world, (0, 0, 9, 9))}}
    )
    assert first["annotation"]["version"] == 2
    # A second change made from the version loaded before the first one.
    stale = await ask(
        ws, {"type": "save", "request_id": "late", "annotation": {"id": target.pk, "version": 1, "answers": {}}}
    )
    assert stale["type"] == "error" and stale["code"] == "conflict" and stale["request_id"] == "late"
    assert stale["current"] == first["annotation"]
    gone = await ask(ws, {"type": "delete", "id": target.pk, "version": 1})
    assert gone["code"] == "conflict"
    stored = await database_sync_to_async(lambda: Annotation.objects.get(pk=target.pk).version)()
    assert stored == 2  # nothing changed by the refused writes
    assert (await ask(ws, {"type": "list"}))["type"] == "annotations"  # the socket is still open
    await ws.disconnect()


async def test_it_pushes_changes_made_through_the_rest_api(world: Any, layer: str) -> None:
    ws = await open_studio(world, world.annotator)

    def post() -> dict:
        response = token_client(world.manager).post(
            api_url("api_annotation_list", media_id=world.demo.media.pk),
            {"label": world.demo.label.pk, "rle": a_box(world, (1, 1, 5, 5))},
            format="json",
        )
        assert response.status_code == 201, response.json()
        return response.json()

    created = await database_sync_to_async(post)()
    pushed = await ws.receive_json_from(timeout=5)
    assert pushed == {"type": "annotation", "annotation": created}
    await ws.disconnect()


@pytest.mark.parametrize(
    ("message", "code", "mentions"),
    [
        ({"type": "save", "annotation": "a box"}, "invalid", "JSON object"),
        ({"type": "save", "annotation": {"label": 1}}, "invalid", "rle"),
        ({"type": "save", "annotation": {"id": "seven", "version": 1}}, "invalid", "id"),
        ({"type": "delete", "id": 1}, "invalid", "version"),
        ({"type": "draw"}, "unknown_type", "draw"),
    ],
)
async def test_it_answers_a_malformed_message_with_an_error_and_stays_open(
    world: Any, layer: str, message: dict, code: str, mentions: str
) -> None:
    ws = await open_studio(world, world.annotator)
    reply = await ask(ws, {**message, "request_id": "bad"})
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", code, "bad")
    assert mentions in reply["message"]
    assert (await ask(ws, {"type": "list"}))["type"] == "annotations"
    await ws.disconnect()


async def test_it_refuses_bad_masks_and_labels_of_another_project(world: Any, layer: str) -> None:
    ws = await open_studio(world, world.annotator)
    media = world.demo.media
    wrong_size = mask_encode(np.ones((media.height + 1, media.width), dtype=bool))
    empty = mask_encode(np.zeros((media.height, media.width), dtype=bool))
    foreign_label = await database_sync_to_async(lambda: LabelFactory(project=world.other.project).pk)()
    cases = [
        ({"label": world.demo.label.pk, "rle": wrong_size}, "rle"),
        ({"label": world.demo.label.pk, "rle": empty}, "rle"),
        ({"label": world.demo.label.pk, "rle": {"size": [media.height, media.width], "counts": "\x7f"}}, "rle"),
        ({"label": foreign_label, "rle": a_box(world)}, "label"),
    ]
    for annotation, field in cases:
        reply = await ask(ws, {"type": "save", "annotation": annotation})
        assert reply["code"] == "invalid", reply
        assert field in reply["errors"], reply
    count = await database_sync_to_async(Annotation.objects.filter(media=media).count)()
    assert count == 1  # only the fixture's own box
    await ws.disconnect()


async def test_it_answers_not_found_for_an_annotation_of_another_item(world: Any, layer: str) -> None:
    ws = await open_studio(world, world.annotator)
    reply = await ask(ws, {"type": "delete", "id": world.other.annotation.pk, "version": 1})
    assert reply["code"] == "not_found"
    assert await database_sync_to_async(Annotation.objects.filter(pk=world.other.annotation.pk).exists)()
    await ws.disconnect()


async def test_it_keeps_another_annotator_off_items_outside_their_tasks(world: Any, layer: str) -> None:
    def second_annotator() -> tuple[Any, int]:
        user = MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR, user__username="second").user
        task = Task.objects.create(project=world.demo.project, name="Task 2", assignee=user)
        item = make_image(world.demo.project, name="theirs.png")
        item.task = task
        item.save(update_fields=["task"])
        return user, item.pk

    user, own_item = await database_sync_to_async(second_annotator)()
    cookie = await database_sync_to_async(session_cookie)(user)
    refused = communicator("", cookie=cookie, path=studio_path(world))
    assert await refused.connect() == (False, CLOSE_NOT_FOUND)
    await refused.disconnect()
    allowed = communicator("", cookie=cookie, path=studio_path(world, own_item))
    assert (await allowed.connect())[0]
    await allowed.disconnect()


async def test_it_closes_the_studio_of_an_annotator_whose_task_goes_to_someone_else(world: Any, layer: str) -> None:
    from annotation.tasks.services import task_assign
    from platform_core.tenancy import resolve_tenant

    ws = await open_studio(world, world.annotator)

    def reassign() -> None:
        tenant = resolve_tenant(world.manager, world.demo.org.slug)
        task = Task.objects.get(pk=world.demo.task.pk)
        task_assign(tenant=tenant, task=task, assignee=world.reviewer, actor=world.manager)

    await database_sync_to_async(reassign)()
    # Pushed: the socket closes without the annotator sending anything.
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    await ws.disconnect()  # lets the application finish before the test database goes away
