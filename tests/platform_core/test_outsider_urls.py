"""Every URL is considered for tenancy: a member of another organisation gets a 404 on every tenant
URL and method, an anonymous user is sent to sign in (pages) or gets a 401 (API).

The URL list is snapshotted in url_snapshot.txt: adding a URL fails this module until the snapshot
is updated, which is the moment to decide which class the URL belongs to (and to add a kwarg value
below if it takes a new object id). Admin URLs are covered object by object in test_admin.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from platform_core.routing import websocket_urlpatterns

SNAPSHOT = Path(__file__).with_name("url_snapshot.txt")
METHODS = ["get", "post", "put", "patch", "delete"]
TENANT_MARK = "<slug:org_slug>"

# Non-tenant URLs, each checked by hand: they reveal nothing about any organisation.
PUBLIC = {"home", "healthz", "favicon", "login", "logout", "organization_list", "api_schema", "api_docs"}
# Non-tenant URLs about the signed-in user alone (profile) or opened by a secret token
# (invitation_accept); their own tests check that they reveal nothing else.
PUBLIC |= {"profile", "invitation_accept"}

# Crowd workers' pages: no organisation in the URL and no session; opened by a batch's random public
# id (the entries) or by a signed per-assignment token. Walked by their own tests below.
CROWD_WORKER = {
    "crowd_link_entry",
    "crowd_mturk_entry",
    "crowd_preview_image",
    "crowd_preview_overlay",
    "crowd_qualification",
    "crowd_qualification_image",
    "crowd_qualification_overlay",
    "crowd_task",
    "crowd_task_image",
    "crowd_task_overlay",
}

# Tenant pages whose GET sends a member on to another page of the same organisation (opening a task
# goes to its first item); the walk follows the redirect once.
REDIRECTING = {"task_open"}


def _crowd(side: Any) -> Any:
    """One row of each crowd model on ``side`` (made on first use, once per world), and an
    aggregated result of its batch: for the crowd pages' object ids."""
    from crowd.models import CrowdResult
    from tests.crowd.helpers import crowd_rows

    if not hasattr(side, "crowd_rows"):
        side.crowd_rows = crowd_rows(side)
        side.crowd_rows.result = CrowdResult.objects.create(
            batch=side.crowd_rows.batch, media=side.media, method="majority", answer="one", needs_review=True
        )
    return side.crowd_rows


def _video(side: Any) -> Any:
    """A video with its frames on ``side`` (made on first use, once per world): for the frame URLs."""
    from annotation.video_services import media_create_video
    from tests.annotation.test_video_files import make_clip

    if not hasattr(side, "video"):
        side.project.media_type = "both"
        side.project.save(update_fields=["media_type"])
        side.video = media_create_video(project=side.project, name="clip.mp4", data=make_clip())
    return side.video


# How to fill each kwarg of a tenant URL from one side of the world fixture.
OBJECT_KWARGS: dict[str, Callable[[Any], int]] = {
    "project_id": lambda side: side.project.pk,
    "media_id": lambda side: side.media.pk,
    "label_id": lambda side: side.label.pk,
    "question_id": lambda side: side.question.pk,
    "task_id": lambda side: side.task.pk,
    "membership_id": lambda side: side.membership.pk,
    "invitation_id": lambda side: side.invitation.pk,
    "job_id": lambda side: side.job.pk,
    "annotation_id": lambda side: side.annotation.pk,
    "batch_id": lambda side: _crowd(side).batch.pk,
    "assignment_id": lambda side: _crowd(side).assignment.pk,
    "worker_id": lambda side: _crowd(side).worker.pk,
    "result_id": lambda side: _crowd(side).result.pk,
    "video_id": lambda side: _video(side).pk,
}
# Kwargs that name no object (a video frame's index): one value for both sides, never mixed.
PLAIN_KWARGS: dict[str, Any] = {"frame": 0}


def walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, str | None]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            namespace = f"{pattern.namespace}:" if pattern.namespace else ""
            for route, name in walk(pattern.url_patterns, prefix + str(pattern.pattern)):
                yield route, (namespace + name if name else None)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def all_urls() -> list[tuple[str, str | None]]:
    return list(walk(get_resolver().url_patterns))


def websocket_urls() -> list[tuple[str, str | None]]:
    return list(walk(websocket_urlpatterns))


def snapshot_lines() -> list[str]:
    return sorted(
        [f"{route}  [{name}]" for route, name in all_urls()]
        + [f"websocket {route}  [{name}]" for route, name in websocket_urls()]
    )


def tenant_urls() -> list[tuple[str, str]]:
    return [(route, name) for route, name in all_urls() if TENANT_MARK in route]


def test_it_matches_the_committed_url_snapshot() -> None:
    current = snapshot_lines()
    committed = SNAPSHOT.read_text().splitlines()
    added = sorted(set(current) - set(committed))
    removed = sorted(set(committed) - set(current))
    assert not added and not removed, (
        "The URL list changed. Decide the tenancy class of each new URL in this module, then update "
        f"{SNAPSHOT.name}.\nadded: {added}\nremoved: {removed}"
    )


def test_it_knows_the_class_of_every_url() -> None:
    unclassified = [
        (route, name)
        for route, name in all_urls()
        if TENANT_MARK not in route and not route.startswith("admin/") and name not in PUBLIC | CROWD_WORKER
    ]
    assert unclassified == []


def test_it_has_tenant_urls_to_walk() -> None:
    # Guards the walk below against silently walking nothing.
    names = {name for _, name in tenant_urls()}
    assert {"dashboard", "project_detail", "media_detail", "media_file", "api_project_list"} <= names


def _kwargs(route: str, side: Any, org_slug: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"org_slug": org_slug, **_plain_kwargs(route)}
    for kwarg in OBJECT_KWARGS:
        if f":{kwarg}>" in route:
            kwargs[kwarg] = OBJECT_KWARGS[kwarg](side)
    return kwargs


def _plain_kwargs(route: str) -> dict[str, Any]:
    return {kwarg: value for kwarg, value in PLAIN_KWARGS.items() if f":{kwarg}>" in route}


def _assert_all_kwargs_known(route: str) -> None:
    import re

    names = set(re.findall(r"<(?:\w+:)?(\w+)>", route)) - {"org_slug"}
    unknown = names - set(OBJECT_KWARGS) - set(PLAIN_KWARGS)
    assert not unknown, f"{route}: add a value for {unknown} to OBJECT_KWARGS"


@pytest.mark.parametrize(("route", "name"), tenant_urls(), ids=[name for _, name in tenant_urls()])
def test_it_answers_404_to_a_member_of_another_organisation(world: Any, route: str, name: str) -> None:
    _assert_all_kwargs_known(route)
    demo_url = reverse(name, kwargs=_kwargs(route, world.demo, world.demo.org.slug))

    member = Client()
    member.force_login(world.owner)
    member_response = member.get(demo_url)
    if name in REDIRECTING:
        assert member_response.status_code == 302, f"member GET {demo_url} -> {member_response.status_code}"
        target = member_response["Location"]
        assert target.startswith(f"/o/{world.demo.org.slug}/"), target
        member_response = member.get(target)
    member_status = member_response.status_code
    # The URL really points at Demo Lab's objects: a member reaches it (or is told the method is wrong).
    assert member_status in (200, 405), f"member GET {demo_url} -> {member_status}"

    outsider = Client()
    outsider.force_login(world.outsider)
    for method in METHODS:
        response = getattr(outsider, method)(demo_url)
        assert response.status_code == 404, f"outsider {method.upper()} {demo_url} -> {response.status_code}"

    # Own organisation in the URL, and any non-empty set of the object ids taken from Demo Lab (the
    # rest the outsider's own): still nothing, whichever lookup comes first.
    for mixed_url in _mixed_urls(route, name, world):
        for method in METHODS:
            if getattr(member, method)(demo_url).status_code == 405:
                continue  # refused before any lookup, for members too: reveals nothing
            response = getattr(outsider, method)(mixed_url)
            assert response.status_code == 404, f"outsider {method.upper()} {mixed_url} -> {response.status_code}"


def _mixed_urls(route: str, name: str, world: Any) -> list[str]:
    import itertools

    kwargs_in_route = [kwarg for kwarg in OBJECT_KWARGS if f":{kwarg}>" in route]
    urls = []
    for count in range(1, len(kwargs_in_route) + 1):
        for foreign in itertools.combinations(kwargs_in_route, count):
            kwargs: dict[str, Any] = {"org_slug": world.other.org.slug, **_plain_kwargs(route)}
            for kwarg in kwargs_in_route:
                side = world.demo if kwarg in foreign else world.other
                kwargs[kwarg] = OBJECT_KWARGS[kwarg](side)
            urls.append(reverse(name, kwargs=kwargs))
    return urls


@pytest.mark.parametrize(("route", "name"), tenant_urls(), ids=[name for _, name in tenant_urls()])
def test_it_asks_an_anonymous_user_to_sign_in(world: Any, route: str, name: str) -> None:
    url = reverse(name, kwargs=_kwargs(route, world.demo, world.demo.org.slug))
    anonymous = Client()
    for method in METHODS:
        response = getattr(anonymous, method)(url)
        if route.startswith("api/"):
            assert response.status_code == 401, f"anonymous {method.upper()} {url} -> {response.status_code}"
        else:
            assert response.status_code == 302, f"anonymous {method.upper()} {url} -> {response.status_code}"
            assert response["Location"].startswith(reverse("login") + "?next="), response["Location"]


def tenant_websocket_urls() -> list[tuple[str, str | None]]:
    return [(route, name) for route, name in websocket_urls() if TENANT_MARK in route]


def test_it_has_tenant_websockets_to_walk() -> None:
    assert {name for _, name in tenant_websocket_urls()} >= {"ws_ping", "ws_jobs", "ws_studio"}
    assert all(TENANT_MARK in route for route, _ in websocket_urls()), "every websocket is a tenant websocket"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("route", "name"), tenant_websocket_urls(), ids=[n for _, n in tenant_websocket_urls()])
async def test_it_refuses_websockets_to_outsiders_and_anonymous_users(world: Any, route: str, name: str) -> None:
    from channels.db import database_sync_to_async

    from platform_core.websockets import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
    from tests.platform_core.test_websockets import communicator, session_cookie

    _assert_all_kwargs_known(route)
    path = _websocket_path(route, world.demo, world.demo.org.slug)

    member_cookie = await database_sync_to_async(session_cookie)(world.annotator)
    member = communicator("", cookie=member_cookie, path=path)
    assert (await member.connect())[0]
    await member.disconnect()

    outsider_cookie = await database_sync_to_async(session_cookie)(world.outsider)
    for cookie, code in [(outsider_cookie, CLOSE_NOT_FOUND), (None, CLOSE_UNAUTHENTICATED)]:
        ws = communicator("", cookie=cookie, path=path)
        assert await ws.connect() == (False, code)
        await ws.disconnect()
    # Their own organisation in the path with Demo Lab's object ids: refused just the same.
    if re.search(r"<(?:\w+:)?(?!org_slug)\w+>", route):
        mixed = _websocket_path(route, world.demo, world.other.org.slug)
        ws = communicator("", cookie=outsider_cookie, path=mixed)
        assert await ws.connect() == (False, CLOSE_NOT_FOUND), mixed
        await ws.disconnect()


def _websocket_path(route: str, side: Any, org_slug: str) -> str:
    kwargs = _kwargs(route, side, org_slug)
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: str(kwargs[match.group(1)]), route)


# --- crowd workers' pages -----------------------------------------------------------------------
def crowd_urls() -> list[tuple[str, str]]:
    return [(route, name) for route, name in all_urls() if name in CROWD_WORKER]


def test_it_has_crowd_worker_urls_to_walk() -> None:
    assert {name for _, name in crowd_urls()} == CROWD_WORKER
    assert all(route.startswith("crowd/") for route, _ in crowd_urls())


def _crowd_kwargs(route: str, public_id: str, token: str) -> dict[str, Any]:
    values = {"public_id": public_id, "token": token, "index": 0}
    names = set(re.findall(r"<(?:\w+:)?(\w+)>", route))
    assert names <= set(values), f"{route}: add a value for {names - set(values)}"
    return {name: values[name] for name in names}


@pytest.mark.parametrize(("route", "name"), crowd_urls(), ids=[name for _, name in crowd_urls()])
def test_it_refuses_crowd_pages_without_their_secret(world: Any, route: str, name: str) -> None:
    # An unknown batch id or a forged token opens nothing, whoever asks: a member's session, an
    # outsider's or none (a worker's session would never exist; tokens are the only door).
    from crowd.models import CrowdBatch, GoldItem, QualificationAttempt, QualificationTest
    from crowd.tokens import assignment_token, attempt_token
    from tests.crowd.helpers import crowd_object_rows, crowd_rows
    from tests.factories import make_image

    # Overlays draw an object's mask: their batch asks about objects.
    rows = crowd_object_rows(world.demo) if "overlay" in name else crowd_rows(world.demo)
    rows.batch.provider = "mturk" if "mturk" in name or "preview" in name else "link"
    rows.batch.save(update_fields=["provider"])
    attempt = QualificationAttempt.objects.create(
        worker=rows.worker, test=rows.test, batch=rows.batch, items=[rows.gold.pk]
    )
    token = attempt_token(attempt) if "qualification" in name else assignment_token(rows.assignment)
    GoldItem.objects.filter(pk=rows.gold.pk).update(purpose="qualification")
    assert QualificationTest.objects.filter(project=world.demo.project).exists()
    make_image(world.demo.project)  # a regular item, for the preview

    real = reverse(name, kwargs=_crowd_kwargs(route, rows.batch.public_id, token))
    forged = reverse(name, kwargs=_crowd_kwargs(route, "not-a-batch", token[:-3] + "xyz"))
    member, outsider, anonymous = Client(), Client(), Client()
    member.force_login(world.owner)
    outsider.force_login(world.outsider)
    # The real secret opens the page (entries need the provider's parameters to go further).
    assert Client().get(real).status_code in (200, 302, 400), real
    for client in (member, outsider, anonymous):
        for method in METHODS:
            status = getattr(client, method)(forged).status_code
            assert status in (403, 404, 405), f"{method.upper()} {forged} -> {status}"
    assert CrowdBatch.objects.filter(pk=rows.batch.pk, state="open").exists()
