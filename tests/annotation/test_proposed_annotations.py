"""Pre-annotations awaiting a person (``proposed``): accepted one by one or all of an item's at once,
through the services, the REST API and the studio socket; a change or a deletion through the normal
paths; versions, events, the annotator-scope rule and other organisations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.http import Http404

from annotation.annotations.payloads import annotation_payload
from annotation.annotations.services import (
    VersionConflict,
    annotation_accept,
    annotation_accept_all,
    annotation_create,
    annotation_delete,
    annotation_update,
)
from annotation.masks import box_to_rle
from annotation.models import Annotation, MediaItem
from platform_core.models import Role
from platform_core.realtime import media_group
from platform_core.tenancy import Tenant, resolve_tenant
from tests.api_client import api_url, token_client
from tests.conftest import World
from tests.factories import MembershipFactory, make_image
from tests.platform_core.test_websockets import layer

__all__ = ["layer"]  # the channel-layer fixture (in memory, and Redis when REDIS_URL is set)


def tenant_of(user: Any, org_slug: str = "demo-lab") -> Tenant:
    return resolve_tenant(user, org_slug)


def propose(world: World, media: MediaItem | None = None, corners: tuple = (10, 10, 30, 20)) -> Annotation:
    """A model's pre-annotation on a Demo Lab item, made as a job does (as the manager who started it)."""
    return _propose(world.manager, "demo-lab", media or world.demo.media, world.demo.label, corners)


def _propose(user: Any, org_slug: str, media: MediaItem, label: Any, corners: tuple = (10, 10, 30, 20)) -> Annotation:
    return annotation_create(
        tenant=tenant_of(user, org_slug),
        media=media,
        label=label,
        rle=box_to_rle(list(corners), height=media.height, width=media.width),
        author=user,
        source=Annotation.Source.MODEL,
        source_detail={"model": "tiny", "method": "automatic", "job": 1, "score": 0.9},
        proposed=True,
    )


def stored(annotation: Annotation) -> Annotation:
    return Annotation.objects.get(pk=annotation.pk)


@pytest.fixture
def media_events(settings: Any, world: World) -> Callable[[], list[dict]]:
    """What reaches a channel in Demo Lab's item group, since the last call."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(media_group(world.demo.media.pk), channel)

    async def drain() -> list[dict]:
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), 0.05))
            except TimeoutError:
                return messages

    return lambda: async_to_sync(drain)()


# --- services ---------------------------------------------------------------------------------------


def test_it_stores_a_proposed_object_and_shows_it_in_the_payload(world: World) -> None:
    annotation = propose(world)
    assert stored(annotation).proposed is True
    assert annotation_payload(stored(annotation))["proposed"] is True
    assert annotation_payload(world.demo.annotation)["proposed"] is False  # a person's object


def test_it_accepts_a_proposed_object_at_the_next_version_and_publishes_it(
    world: World, media_events: Callable[[], list[dict]], django_capture_on_commit_callbacks: Any
) -> None:
    annotation = propose(world)
    media_events()
    with django_capture_on_commit_callbacks(execute=True):
        accepted = annotation_accept(
            tenant=tenant_of(world.annotator),
            annotation=annotation,
            expected_version=1,
            actor=world.annotator,
            origin="studio!1",
        )
        assert media_events() == []  # only after commit
    row = stored(annotation)
    assert (row.proposed, row.version, row.author) == (False, 2, world.annotator)
    assert (row.rle, row.source, row.source_detail) == (annotation.rle, "model", annotation.source_detail)
    assert media_events() == [{"type": "annotation.saved", "annotation": annotation_payload(row), "origin": "studio!1"}]
    assert annotation_payload(accepted) == annotation_payload(row)


def test_it_refuses_to_accept_a_stale_version_or_an_object_that_is_not_proposed(world: World) -> None:
    annotation = propose(world)
    with pytest.raises(VersionConflict) as conflict:
        annotation_accept(
            tenant=tenant_of(world.annotator), annotation=annotation, expected_version=2, actor=world.annotator
        )
    assert conflict.value.current.version == 1
    assert stored(annotation).proposed is True
    with pytest.raises(ValidationError) as refused:
        annotation_accept(
            tenant=tenant_of(world.annotator),
            annotation=world.demo.annotation,
            expected_version=1,
            actor=world.annotator,
        )
    assert refused.value.code == "not_proposed"
    assert stored(world.demo.annotation).version == 1


def test_it_clears_proposed_when_a_person_changes_the_object(world: World) -> None:
    annotation = propose(world)
    changed = annotation_update(
        tenant=tenant_of(world.annotator),
        annotation=annotation,
        expected_version=1,
        author=world.annotator,
        rle=box_to_rle([12, 10, 30, 22], height=48, width=64),
    )
    row = stored(annotation)
    assert (row.proposed, row.version, changed.proposed) == (False, 2, False)
    # Even a change that leaves the mask alone makes it the person's.
    other = propose(world)
    annotation_update(
        tenant=tenant_of(world.annotator), annotation=other, expected_version=1, author=world.annotator, z_order=7
    )
    assert stored(other).proposed is False


def test_it_deletes_a_proposed_object_like_any_other(world: World) -> None:
    annotation = propose(world)
    annotation_delete(
        tenant=tenant_of(world.annotator), annotation=annotation, expected_version=1, actor=world.annotator
    )
    assert not Annotation.objects.filter(pk=annotation.pk).exists()


def test_it_accepts_every_proposed_object_of_the_item_and_nothing_else(
    world: World, media_events: Callable[[], list[dict]], django_capture_on_commit_callbacks: Any
) -> None:
    first, second = propose(world), propose(world, corners=(1, 1, 9, 9))
    elsewhere = propose(world, media=make_image(world.demo.project, name="two.png"))
    media_events()
    with django_capture_on_commit_callbacks(execute=True):
        accepted = annotation_accept_all(tenant=tenant_of(world.manager), media=world.demo.media, actor=world.manager)
    assert [a.pk for a in accepted] == [first.pk, second.pk]
    assert [(stored(a).proposed, stored(a).version) for a in (first, second)] == [(False, 2), (False, 2)]
    assert stored(world.demo.annotation).version == 1  # a person's object is left alone
    assert stored(elsewhere).proposed is True  # another item's
    assert [event["annotation"]["id"] for event in media_events()] == [first.pk, second.pk]
    assert annotation_accept_all(tenant=tenant_of(world.manager), media=world.demo.media, actor=world.manager) == []


def test_it_lets_annotators_accept_only_on_their_own_tasks_items(world: World) -> None:
    other_item = make_image(world.demo.project, name="not-theirs.png")
    annotation = propose(world, media=other_item)
    with pytest.raises(Http404):
        annotation_accept(
            tenant=tenant_of(world.annotator), annotation=annotation, expected_version=1, actor=world.annotator
        )
    with pytest.raises(Http404):
        annotation_accept_all(tenant=tenant_of(world.annotator), media=other_item, actor=world.annotator)
    assert stored(annotation).proposed is True


# --- REST API ---------------------------------------------------------------------------------------


def accept_url(annotation: Annotation, org_slug: str = "demo-lab") -> str:
    ids = {"media_id": annotation.media_id, "annotation_id": annotation.pk}
    return api_url("api_annotation_accept", org_slug=org_slug, **ids)


def accept_all_url(media: MediaItem, org_slug: str = "demo-lab") -> str:
    return api_url("api_annotation_accept_all", org_slug=org_slug, media_id=media.pk)


def test_it_accepts_over_the_api(world: World) -> None:
    annotation = propose(world)
    response = token_client(world.annotator).post(accept_url(annotation), {"version": 1}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == annotation_payload(stored(annotation))
    assert (response.json()["proposed"], response.json()["version"], response.json()["author"]) == (
        False,
        2,
        "annotator",
    )


def test_it_answers_a_stale_accept_with_409_and_a_second_one_with_400(world: World) -> None:
    annotation = propose(world)
    client = token_client(world.annotator)
    stale = client.post(accept_url(annotation), {"version": 3}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current"] == annotation_payload(stored(annotation))
    assert client.post(accept_url(annotation), {"version": 1}, format="json").status_code == 200
    again = client.post(accept_url(annotation), {"version": 2}, format="json")
    assert again.status_code == 400
    assert again.json()["code"] == "not_proposed"
    missing = client.post(accept_url(annotation), {}, format="json")
    assert missing.status_code == 400 and "version" in missing.json()


def test_it_accepts_all_of_an_items_proposals_over_the_api(world: World) -> None:
    first, second = propose(world), propose(world, corners=(1, 1, 9, 9))
    response = token_client(world.annotator).post(accept_all_url(world.demo.media))
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": [annotation_payload(stored(first)), annotation_payload(stored(second))]}
    assert not Annotation.objects.filter(proposed=True).exists()


def test_it_shows_proposed_on_the_api_and_takes_it_on_create(world: World) -> None:
    client = token_client(world.manager)
    created = client.post(
        api_url("api_annotation_list", media_id=world.demo.media.pk),
        {"label": world.demo.label.pk, "rle": box_to_rle([2, 2, 8, 8], height=48, width=64), "proposed": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["proposed"] is True
    assert Annotation.objects.get(pk=created.json()["id"]).proposed is True
    # A change clears it; `proposed` is no field of a change.
    changed = client.patch(
        api_url("api_annotation_detail", media_id=world.demo.media.pk, annotation_id=created.json()["id"]),
        {"version": 1, "z_order": 4},
        format="json",
    )
    assert changed.status_code == 200 and changed.json()["proposed"] is False


def test_it_answers_404_to_other_organisations_and_to_annotators_on_others_items(world: World) -> None:
    annotation = propose(world)
    outsider = token_client(world.outsider)
    for url in (accept_url(annotation), accept_all_url(world.demo.media)):
        assert outsider.post(url, {"version": 1}, format="json").status_code == 404
    # Their own organisation in the URL with Demo Lab's ids: nothing either.
    assert outsider.post(accept_url(annotation, "other-lab"), {"version": 1}, format="json").status_code == 404
    assert outsider.post(accept_all_url(world.demo.media, "other-lab")).status_code == 404
    second = MembershipFactory(organization=world.demo.org, role=Role.ANNOTATOR, user__username="annotator2").user
    client = token_client(second)
    assert client.post(accept_url(annotation), {"version": 1}, format="json").status_code == 404
    assert client.post(accept_all_url(world.demo.media)).status_code == 404
    assert stored(annotation).proposed is True


# --- studio socket -----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_accepts_over_the_studio_socket_and_shows_it_to_the_others(world: World, layer: str) -> None:
    from tests.annotation.test_studio_socket import ask, open_studio

    annotation = await database_sync_to_async(propose)(world)
    mine = await open_studio(world, world.annotator)
    theirs = await open_studio(world, world.reviewer)

    stale = await ask(mine, {"type": "accept", "request_id": "a0", "id": annotation.pk, "version": 4})
    assert (stale["type"], stale["code"], stale["current"]["version"]) == ("error", "conflict", 1)

    reply = await ask(mine, {"type": "accept", "request_id": "a1", "id": annotation.pk, "version": 1})
    payload = await database_sync_to_async(lambda: annotation_payload(stored(annotation)))()
    assert reply == {"type": "saved", "request_id": "a1", "annotation": payload}
    assert (payload["proposed"], payload["version"], payload["author"]) == (False, 2, "annotator")
    assert await theirs.receive_json_from(timeout=5) == {"type": "annotation", "annotation": reply["annotation"]}

    again = await ask(mine, {"type": "accept", "request_id": "a2", "id": annotation.pk, "version": 2})
    assert (again["type"], again["code"]) == ("error", "invalid")

    # New proposals (a job's, say) reach the open studios as they are saved.
    more = await database_sync_to_async(lambda: [propose(world), propose(world, corners=(1, 1, 9, 9))])()
    for made in more:
        pushed = await mine.receive_json_from(timeout=5)
        assert (pushed["type"], pushed["annotation"]["id"], pushed["annotation"]["proposed"]) == (
            "annotation",
            made.pk,
            True,
        )
    everything = await ask(mine, {"type": "accept", "request_id": "a3", "all": True})
    assert everything["type"] == "accepted" and everything["request_id"] == "a3"
    assert [a["id"] for a in everything["annotations"]] == [a.pk for a in more]
    assert all(a["proposed"] is False and a["version"] == 2 for a in everything["annotations"])
    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_answers_not_found_for_another_items_object_on_the_socket(world: World, layer: str) -> None:
    from tests.annotation.test_studio_socket import ask, open_studio

    foreign = await database_sync_to_async(
        lambda: _propose(world.outsider, "other-lab", world.other.media, world.other.label)
    )()
    ws = await open_studio(world, world.annotator)
    reply = await ask(ws, {"type": "accept", "request_id": "x", "id": foreign.pk, "version": 1})
    assert (reply["type"], reply["code"]) == ("error", "not_found")
    assert (await database_sync_to_async(stored)(foreign)).proposed is True
    await ws.disconnect()
