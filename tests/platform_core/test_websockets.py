"""The ping websocket through the real ASGI stack (Origin check, session auth, tenant door), over
the in-memory channel layer and, when REDIS_URL names a server, over Redis."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from platform_core.asgi import application
from platform_core.models import Membership
from platform_core.websockets import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED

ORIGIN = b"http://127.0.0.1"

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["memory", "redis"])
def layer(request: pytest.FixtureRequest, settings: Any) -> str:
    if request.param == "memory":
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    else:
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            pytest.skip("REDIS_URL is not set: the Redis pass of .ci/run runs this case")
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [redis_url], "prefix": "annotation-tests"},
            }
        }
    return request.param


def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def communicator(
    org_slug: str,
    *,
    cookie: bytes | None = None,
    origin: bytes | None = ORIGIN,
    path: str | None = None,
    scheme: str | None = None,
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> WebsocketCommunicator:
    headers = [(b"host", b"127.0.0.1"), *extra_headers]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    ws = WebsocketCommunicator(application, path or f"/ws/o/{org_slug}/ping/", headers=headers)
    if scheme is not None:
        # Read when the application starts (at connect), like a server's own scope.
        ws.scope["scheme"] = scheme
    return ws


async def test_it_answers_a_ping_through_the_channel_layer(world: Any, layer: str) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    connected, _ = await ws.connect()
    assert connected
    await ws.send_json_to({"type": "ping", "request_id": "r-1"})
    reply = await ws.receive_json_from(timeout=3)
    expected_layer = "InMemoryChannelLayer" if layer == "memory" else "RedisChannelLayer"
    assert reply == {"type": "pong", "request_id": "r-1", "organization": "demo-lab", "layer": expected_layer}
    await ws.disconnect()


async def test_it_refuses_an_anonymous_connection(world: Any, layer: str) -> None:
    ws = communicator(world.demo.org.slug)
    connected, code = await ws.connect()
    assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)


async def test_it_refuses_a_member_of_another_organisation(world: Any, layer: str) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.outsider)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    connected, code = await ws.connect()
    assert (connected, code) == (False, CLOSE_NOT_FOUND)
    await ws.disconnect()  # lets the application finish before the test database goes away


@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example", b"http://127.0.0.1:6666", b"file://127.0.0.1", b"null", None],
    ids=["foreign-host", "other-port", "other-scheme", "opaque", "no-origin"],
)
async def test_it_refuses_a_foreign_or_missing_origin(world: Any, layer: str, origin: bytes | None) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie, origin=origin)
    connected, _ = await ws.connect()
    assert not connected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"request_id": "x"}', "bad_message"),
        ('{"type": "ping", "request_id": {"nested": 1}}', "bad_message"),
        ('{"type": "launch", "request_id": "r-9"}', "unknown_type"),
        ('{"type": "ping", "pad": "' + "x" * 70_000 + '"}', "too_large"),
    ],
    ids=["bad-json", "not-an-object", "no-type", "bad-request-id", "unknown-type", "too-large"],
)
async def test_it_answers_malformed_messages_with_an_error_and_stays_open(
    world: Any, layer: str, raw: str, code: str
) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    assert (await ws.connect())[0]
    await ws.send_to(text_data=raw)
    reply = json.loads(await ws.receive_from(timeout=3))
    assert reply["type"] == "error"
    assert reply["code"] == code
    assert reply["message"]
    if code == "unknown_type":
        assert reply["request_id"] == "r-9"
    # The socket is still usable.
    await ws.send_json_to({"type": "ping", "request_id": 2})
    assert (await ws.receive_json_from(timeout=3))["request_id"] == 2
    await ws.disconnect()


TLS_PROXY = ("HTTP_X_FORWARDED_PROTO", "https")  # what BEHIND_TLS_PROXY=1 sets


@pytest.mark.parametrize(
    ("proxy", "scheme", "forwarded", "origin"),
    [
        (None, None, None, b"http://127.0.0.1"),
        (None, "ws", None, b"http://127.0.0.1"),
        (None, "wss", None, b"https://127.0.0.1"),
        (TLS_PROXY, None, b"https", b"https://127.0.0.1"),
        (TLS_PROXY, None, b"https, http", b"https://127.0.0.1"),
        (TLS_PROXY, None, b"http", b"http://127.0.0.1"),
        (TLS_PROXY, None, None, b"http://127.0.0.1"),
    ],
    ids=["daphne-plain", "ws", "wss", "tls-proxy", "tls-proxy-list", "proxy-says-http", "proxy-no-header"],
)
async def test_it_accepts_an_origin_of_the_sockets_own_scheme(
    world: Any, layer: str, settings: Any, proxy: Any, scheme: str | None, forwarded: bytes | None, origin: bytes
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = proxy
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    extra = ((b"x-forwarded-proto", forwarded),) if forwarded else ()
    ws = communicator(world.demo.org.slug, cookie=cookie, origin=origin, scheme=scheme, extra_headers=extra)
    assert (await ws.connect())[0]
    await ws.disconnect()


@pytest.mark.parametrize(
    ("proxy", "scheme", "forwarded", "origin"),
    [
        (None, None, None, b"https://127.0.0.1"),
        (None, "ws", None, b"https://127.0.0.1"),
        (None, "wss", None, b"http://127.0.0.1"),
        (TLS_PROXY, None, b"https", b"http://127.0.0.1"),
        (TLS_PROXY, None, b"http", b"https://127.0.0.1"),
        (TLS_PROXY, None, None, b"https://127.0.0.1"),
        # Not behind a proxy: a client's own X-Forwarded-Proto changes nothing.
        (None, None, b"https", b"https://127.0.0.1"),
    ],
    ids=["https-on-daphne", "https-on-ws", "http-on-wss", "http-via-tls-proxy", "https-via-http", "no-header", "spoof"],
)
async def test_it_refuses_an_origin_of_the_other_scheme(
    world: Any, layer: str, settings: Any, proxy: Any, scheme: str | None, forwarded: bytes | None, origin: bytes
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = proxy
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    extra = ((b"x-forwarded-proto", forwarded),) if forwarded else ()
    ws = communicator(world.demo.org.slug, cookie=cookie, origin=origin, scheme=scheme, extra_headers=extra)
    # Refused by the Origin check itself (a plain close), before any session or tenant check.
    assert await ws.connect() == (False, 1000)


async def test_it_accepts_a_trusted_origin(world: Any, layer: str, settings: Any) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://studio.example.org"]
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie, origin=b"https://studio.example.org")
    assert (await ws.connect())[0]
    await ws.disconnect()


async def test_it_refuses_binary_frames(world: Any, layer: str) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    assert (await ws.connect())[0]
    await ws.send_to(bytes_data=b"\x00\x01")
    reply = await ws.receive_json_from(timeout=3)
    assert (reply["type"], reply["code"]) == ("error", "bad_message")
    await ws.disconnect()


async def test_it_limits_the_message_rate(world: Any, layer: str) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    assert (await ws.connect())[0]
    for i in range(60):
        await ws.send_json_to({"type": "ping", "request_id": i})
    replies = [await ws.receive_json_from(timeout=3) for _ in range(60)]
    limited = [r for r in replies if r["type"] == "error" and r["code"] == "rate_limited"]
    answered = [r for r in replies if r["type"] == "pong"]
    assert limited, "60 messages at once must exceed the burst of 40"
    assert len(answered) + len(limited) == 60
    assert len(answered) >= 40
    await ws.disconnect()


async def test_it_limits_oversized_frames_too(world: Any, layer: str) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    assert (await ws.connect())[0]
    for _ in range(60):
        await ws.send_to(text_data="x" * 70_000)
    codes = [(await ws.receive_json_from(timeout=3))["code"] for _ in range(60)]
    assert set(codes) == {"too_large", "rate_limited"}
    await ws.disconnect()


def sign_out(world: Any) -> None:
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()


def deactivate(world: Any) -> None:
    world.annotator.is_active = False
    world.annotator.save(update_fields=["is_active"])


def change_password(world: Any) -> None:
    world.annotator.set_password("a brand new passphrase")
    world.annotator.save(update_fields=["password"])


def revoke_membership(world: Any) -> None:
    Membership.objects.filter(user=world.annotator).delete()


@pytest.mark.parametrize(
    ("end_access", "code"),
    [
        (sign_out, CLOSE_UNAUTHENTICATED),
        (deactivate, CLOSE_UNAUTHENTICATED),
        (change_password, CLOSE_UNAUTHENTICATED),
        (revoke_membership, CLOSE_NOT_FOUND),
    ],
    ids=["sign-out", "deactivated", "password-changed", "membership-revoked"],
)
async def test_it_closes_an_open_socket_when_access_ends(world: Any, layer: str, end_access: Any, code: int) -> None:
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    ws = communicator(world.demo.org.slug, cookie=cookie)
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "ping", "request_id": "before"})
    assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
    await database_sync_to_async(end_access)(world)
    await ws.send_json_to({"type": "ping", "request_id": "after"})
    assert await ws.receive_output(timeout=3) == {"type": "websocket.close", "code": code}
    await ws.disconnect()
