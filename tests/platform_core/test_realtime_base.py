"""The realtime base consumer through the real ASGI stack, over the in-memory layer and, when
REDIS_URL names a server, over Redis: services' exceptions become error frames on an open socket;
every way access ends (sign-out, removal from the members page, the REST API and the admin,
deactivation, a password change, a deleted organisation) is pushed to the user's open sockets, which
close within a second without sending anything; a changed role is read again at once; a lost push
is caught by the periodic check; and a message costs no query while the last check is fresh."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse

from annotation.models import MediaItem
from platform_core import members
from platform_core.jobs import job_start
from platform_core.jobs.core import run_job
from platform_core.models import Membership, Organization
from platform_core.realtime import session_fingerprint, user_group
from platform_core.tenancy import get_for_org_or_404
from platform_core.websockets import (
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
    MessageError,
    PingConsumer,
    TenantJsonConsumer,
)
from platform_core.ws_origin import SameOriginValidator
from tests.api_client import api_url, token_client
from tests.platform_core import job_kinds  # noqa: F401 - registers the test job kinds
from tests.platform_core.test_websockets import ORIGIN, communicator, layer, session_cookie  # noqa: F401

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("layer")]


# --- error mapping ------------------------------------------------------------------------------


class Conflict(Exception):
    def __init__(self, current: dict) -> None:
        super().__init__("stale version")
        self.current = current


class ServiceConsumer(TenantJsonConsumer):
    """Hands messages to real services and the tenancy door, as the studio's socket does."""

    async def handle(self, message: dict[str, Any]) -> None:
        reply = await database_sync_to_async(self.act)(message)
        await self.send_json({"type": "done", "request_id": message.get("request_id"), **reply})

    def act(self, message: dict[str, Any]) -> dict[str, Any]:
        kind = message["type"]
        if kind == "media":
            media = get_for_org_or_404(MediaItem, self.tenant.org, pk=message["id"])
            return {"media": media.pk}
        if kind == "role":
            membership = get_for_org_or_404(Membership, self.tenant.org, pk=message["membership"])
            members.membership_change_role(
                tenant=self.tenant, actor=self.scope["user"], membership=membership, role=message["role"]
            )
            return {}
        if kind == "invite":
            members.invitation_create(
                tenant=self.tenant, actor=self.scope["user"], role="annotator", email=message["email"]
            )
            return {}
        if kind == "stale":
            raise Conflict({"id": 7, "version": 3})
        if kind == "bug":
            raise RuntimeError("a bug, not a refusal")
        raise MessageError("unknown_type", "Unknown message type.")

    def exception_to_error(self, exc: Exception) -> MessageError | None:
        if isinstance(exc, Conflict):
            return MessageError("conflict", "Someone else changed this first.", current=exc.current)
        return super().exception_to_error(exc)


service_application = SameOriginValidator(
    AuthMiddlewareStack(URLRouter([path("ws/o/<slug:org_slug>/service/", ServiceConsumer.as_asgi())]))
)


async def service_socket(user: Any, org_slug: str = "demo-lab") -> WebsocketCommunicator:
    cookie = await database_sync_to_async(session_cookie)(user)
    headers = [(b"host", b"127.0.0.1"), (b"origin", ORIGIN), (b"cookie", cookie)]
    ws = WebsocketCommunicator(service_application, f"/ws/o/{org_slug}/service/", headers=headers)
    assert (await ws.connect())[0]
    return ws


async def ask(ws: WebsocketCommunicator, message: dict) -> dict:
    await ws.send_json_to(message)
    return await ws.receive_json_from(timeout=3)


async def still_open(ws: WebsocketCommunicator, world: Any) -> None:
    reply = await ask(ws, {"type": "media", "request_id": "again", "id": world.demo.media.pk})
    assert reply == {"type": "done", "request_id": "again", "media": world.demo.media.pk}


async def test_it_answers_another_organisations_object_with_not_found_and_stays_open(world: Any) -> None:
    ws = await service_socket(world.manager)
    assert (await ask(ws, {"type": "media", "request_id": 1, "id": world.demo.media.pk}))[
        "media"
    ] == world.demo.media.pk
    reply = await ask(ws, {"type": "media", "request_id": "r-404", "id": world.other.media.pk})
    assert reply == {"type": "error", "request_id": "r-404", "code": "not_found", "message": "No such media item."}
    await still_open(ws, world)
    await ws.disconnect()


async def test_it_answers_a_refused_permission_with_forbidden(world: Any) -> None:
    ws = await service_socket(world.annotator)
    manager = await database_sync_to_async(Membership.objects.get)(user=world.manager)
    reply = await ask(ws, {"type": "role", "request_id": "r-403", "membership": manager.pk, "role": "annotator"})
    assert reply == {
        "type": "error",
        "request_id": "r-403",
        "code": "forbidden",
        "message": "You may not change this member's role.",
    }
    await still_open(ws, world)
    await ws.disconnect()


async def test_it_answers_a_validation_error_with_invalid_and_its_messages(world: Any) -> None:
    ws = await service_socket(world.manager)
    annotator = await database_sync_to_async(Membership.objects.get)(user=world.annotator)
    reply = await ask(ws, {"type": "role", "request_id": "r-1", "membership": annotator.pk, "role": "emperor"})
    assert reply == {
        "type": "error",
        "request_id": "r-1",
        "code": "invalid",
        "message": "role: Unknown role 'emperor'.",
        "errors": {"role": ["Unknown role 'emperor'."]},
    }
    # A ValidationError without fields.
    reply = await ask(ws, {"type": "invite", "request_id": "r-2", "email": "not an address"})
    assert reply == {
        "type": "error",
        "request_id": "r-2",
        "code": "invalid",
        "message": "Enter a valid email address.",
        "errors": {"__all__": ["Enter a valid email address."]},
    }
    await still_open(ws, world)
    await ws.disconnect()


async def test_it_lets_a_subclass_map_more_exceptions(world: Any) -> None:
    ws = await service_socket(world.annotator)
    reply = await ask(ws, {"type": "stale", "request_id": "r-409"})
    assert reply == {
        "type": "error",
        "request_id": "r-409",
        "code": "conflict",
        "message": "Someone else changed this first.",
        "current": {"id": 7, "version": 3},
    }
    await still_open(ws, world)
    await ws.disconnect()


async def test_it_does_not_hide_a_bug_behind_an_error_frame(world: Any) -> None:
    ws = await service_socket(world.annotator)
    await ws.send_json_to({"type": "bug"})
    with pytest.raises(RuntimeError, match="a bug"):
        await ws.receive_output(timeout=3)


# --- revocation is pushed -----------------------------------------------------------------------


async def open_ping(user: Any, *, cookie: bytes | None = None) -> WebsocketCommunicator:
    cookie = cookie or await database_sync_to_async(session_cookie)(user)
    ws = communicator("demo-lab", cookie=cookie)
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "ping", "request_id": "before"})
    assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
    return ws


async def assert_closed_by_push(ws: WebsocketCommunicator, code: int) -> None:
    # Nothing is sent: the close arrives because the revocation was pushed.
    assert await ws.receive_output(timeout=1) == {"type": "websocket.close", "code": code}
    await ws.disconnect()


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def annotator_membership(world: Any) -> Membership:
    return Membership.objects.get(organization=world.demo.org, user=world.annotator)


def remove_on_members_page(world: Any) -> None:
    url = reverse("member_remove", kwargs={"org_slug": "demo-lab", "membership_id": annotator_membership(world).pk})
    assert logged_in(world.manager).post(url).status_code == 302


def remove_through_the_api(world: Any) -> None:
    url = api_url("api_member_detail", membership_id=annotator_membership(world).pk)
    assert token_client(world.manager).delete(url).status_code == 204


def remove_in_the_admin(world: Any) -> None:
    url = reverse("admin:platform_core_membership_delete", args=[annotator_membership(world).pk])
    assert logged_in(world.manager).post(url, {"post": "yes"}).status_code == 302


def remove_in_bulk_in_the_admin(world: Any) -> None:
    superuser = get_user_model().objects.create_superuser("root", password="a long root passphrase")
    data = {"action": "delete_selected", "_selected_action": [annotator_membership(world).pk], "post": "yes"}
    response = logged_in(superuser).post(reverse("admin:platform_core_membership_changelist"), data)
    assert response.status_code == 302


def delete_the_organisation(world: Any) -> None:
    Organization.objects.filter(pk=world.demo.org.pk).delete()


def deactivate(world: Any) -> None:
    user = get_user_model().objects.get(pk=world.annotator.pk)
    user.is_active = False
    user.save()


def change_password(world: Any) -> None:
    user = get_user_model().objects.get(pk=world.annotator.pk)
    user.set_password("a brand new passphrase")
    user.save()


@pytest.mark.parametrize(
    ("end_access", "code"),
    [
        (remove_on_members_page, CLOSE_NOT_FOUND),
        (remove_through_the_api, CLOSE_NOT_FOUND),
        (remove_in_the_admin, CLOSE_NOT_FOUND),
        (remove_in_bulk_in_the_admin, CLOSE_NOT_FOUND),
        (delete_the_organisation, CLOSE_NOT_FOUND),
        (deactivate, CLOSE_UNAUTHENTICATED),
        (change_password, CLOSE_UNAUTHENTICATED),
    ],
    ids=["members-page", "rest-api", "admin", "admin-bulk", "organisation-deleted", "deactivated", "password-changed"],
)
async def test_it_pushes_the_end_of_access_to_an_open_socket(world: Any, end_access: Any, code: int) -> None:
    ws = await open_ping(world.annotator)
    await database_sync_to_async(end_access)(world)
    await assert_closed_by_push(ws, code)


async def test_it_pushes_a_sign_out_to_that_sessions_sockets_only(world: Any) -> None:
    client = await database_sync_to_async(logged_in)(world.annotator)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    signing_out, same_session = (
        await open_ping(world.annotator, cookie=cookie),
        await open_ping(world.annotator, cookie=cookie),
    )
    other_session = await open_ping(world.annotator)
    manager = await open_ping(world.manager)

    response = await database_sync_to_async(client.post)(reverse("logout"))
    assert response.status_code in (200, 302)

    await assert_closed_by_push(signing_out, CLOSE_UNAUTHENTICATED)
    await assert_closed_by_push(same_session, CLOSE_UNAUTHENTICATED)
    for ws in (other_session, manager):  # still signed in
        await ws.send_json_to({"type": "ping", "request_id": "after"})
        assert (await ws.receive_json_from(timeout=3))["request_id"] == "after"
        await ws.disconnect()


async def test_it_names_the_ended_session_without_its_key(world: Any) -> None:
    client = await database_sync_to_async(logged_in)(world.annotator)
    key = client.cookies["sessionid"].value
    channel_layer = get_channel_layer()
    channel = await channel_layer.new_channel()
    await channel_layer.group_add(user_group(world.annotator.pk), channel)

    await database_sync_to_async(client.post)(reverse("logout"))
    event = await asyncio.wait_for(channel_layer.receive(channel), 1)
    assert event == {"type": "access.changed", "session": session_fingerprint(key)}
    assert key not in json.dumps(event)


async def test_it_pushes_nothing_for_a_sign_in_or_a_profile_edit(world: Any) -> None:
    channel_layer = get_channel_layer()
    channel = await channel_layer.new_channel()
    await channel_layer.group_add(user_group(world.annotator.pk), channel)

    def sign_in_and_edit() -> None:
        logged_in(world.annotator)  # sign-in saves last_login
        user = get_user_model().objects.get(pk=world.annotator.pk)
        user.email = "ann@example.org"
        user.save(update_fields=["email"])
        user.save(update_fields=["last_login"])

    await database_sync_to_async(sign_in_and_edit)()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(channel_layer.receive(channel), 0.5)


# --- a changed role is read again at once -------------------------------------------------------


def demote_on_members_page(world: Any) -> None:
    membership = Membership.objects.get(user=world.reviewer)
    url = reverse("member_role", kwargs={"org_slug": "demo-lab", "membership_id": membership.pk})
    assert logged_in(world.manager).post(url, {"role": "annotator"}).status_code == 302


def demote_through_the_api(world: Any) -> None:
    url = api_url("api_member_detail", membership_id=Membership.objects.get(user=world.reviewer).pk)
    assert token_client(world.manager).patch(url, {"role": "annotator"}, format="json").status_code == 200


def demote_in_the_admin(world: Any) -> None:
    url = reverse("admin:platform_core_membership_change", args=[Membership.objects.get(user=world.reviewer).pk])
    assert logged_in(world.manager).post(url, {"role": "annotator"}).status_code == 302


def run_a_managers_job(world: Any) -> int:
    job = job_start(organization=world.demo.org, kind="test_steps", params={"n": 1}, created_by=world.manager)
    run_job.call(job.pk)
    return job.pk


async def jobs_socket(user: Any) -> WebsocketCommunicator:
    cookie = await database_sync_to_async(session_cookie)(user)
    ws = communicator("", cookie=cookie, path="/ws/o/demo-lab/jobs/")
    assert (await ws.connect())[0]
    return ws


@pytest.mark.parametrize(
    "demote", [demote_on_members_page, demote_through_the_api, demote_in_the_admin], ids=["page", "api", "admin"]
)
async def test_it_reads_a_changed_role_again_at_once(world: Any, demote: Any) -> None:
    reviewer = await jobs_socket(world.reviewer)
    await database_sync_to_async(run_a_managers_job)(world)
    assert (await reviewer.receive_json_from(timeout=3))["type"] == "job.progress"  # reviewers see every job
    while not await reviewer.receive_nothing(timeout=0.3):
        await reviewer.receive_json_from()

    await database_sync_to_async(demote)(world)
    await database_sync_to_async(run_a_managers_job)(world)
    # Now an annotator: another member's job is no longer shown, although the socket stays open.
    assert await reviewer.receive_nothing(timeout=0.5)
    await reviewer.send_json_to({"type": "ping", "request_id": "p"})
    assert await reviewer.receive_json_from(timeout=3) == {"type": "pong", "request_id": "p"}
    await reviewer.disconnect()


# --- a lost push is caught by the periodic check ------------------------------------------------


def remove_without_a_signal(world: Any) -> None:
    # Raw SQL sends no signal: as if the channel layer had lost the push.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM platform_core_membership WHERE id = %s", [annotator_membership(world).pk])


async def test_it_ends_access_within_recheck_seconds_when_the_push_is_lost(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TenantJsonConsumer, "recheck_seconds", 0.5)
    ws = await open_ping(world.annotator)
    await database_sync_to_async(remove_without_a_signal)(world)
    assert await ws.receive_nothing(timeout=0.3)  # nothing was pushed
    await asyncio.sleep(0.5)
    await ws.send_json_to({"type": "ping", "request_id": "late"})
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    assert await ws.receive_nothing(timeout=0.3)  # and no pong
    await ws.disconnect()


async def test_it_forwards_no_event_to_a_listening_socket_whose_access_ended_unannounced(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TenantJsonConsumer, "recheck_seconds", 0.5)
    annotator = await jobs_socket(world.annotator)
    await database_sync_to_async(remove_without_a_signal)(world)
    await asyncio.sleep(0.6)

    def run_own_job() -> None:
        job = job_start(organization=world.demo.org, kind="test_steps", params={"n": 1}, created_by=world.annotator)
        run_job.call(job.pk)

    await database_sync_to_async(run_own_job)()
    # The job's progress would be shown to the member who started it: the check runs first.
    assert await annotator.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_NOT_FOUND}
    assert await annotator.receive_nothing(timeout=0.5)
    await annotator.disconnect()


# --- the per-message cost ------------------------------------------------------------------------


async def pings_and_queries(ws: WebsocketCommunicator, n: int) -> int:
    # The consumer's database work runs on asgiref's thread-sensitive executor: capture there.
    capture = CaptureQueriesContext(connection)
    await sync_to_async(capture.__enter__)()
    for i in range(n):
        await ws.send_json_to({"type": "ping", "request_id": i})
        assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
    await sync_to_async(capture.__exit__)(None, None, None)
    return await sync_to_async(len)(capture)


async def test_it_reads_the_database_only_when_the_last_check_is_older_than_recheck_seconds(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PingConsumer, "recheck_seconds", 0.5)
    ws = await open_ping(world.annotator)
    assert await pings_and_queries(ws, 10) == 0
    await asyncio.sleep(0.6)
    # One full check (session, user, membership), then free again.
    assert await pings_and_queries(ws, 10) == 3
    await ws.disconnect()
