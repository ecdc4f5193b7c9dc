"""Every URL is considered for tenancy: a member of another organisation gets a 404 on every tenant
URL and method, an anonymous user is sent to sign in (pages) or gets a 401 (API).

The URL list is snapshotted in url_snapshot.txt: adding a URL fails this module until the snapshot
is updated, which is the moment to decide which class the URL belongs to (and to add a kwarg value
below if it takes a new object id). Admin URLs are covered object by object in test_admin.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

SNAPSHOT = Path(__file__).with_name("url_snapshot.txt")
METHODS = ["get", "post", "put", "patch", "delete"]
TENANT_MARK = "<slug:org_slug>"

# Non-tenant URLs, each checked by hand: they reveal nothing about any organisation.
PUBLIC = {"home", "healthz", "login", "logout", "organization_list"}

# How to fill each kwarg of a tenant URL from one side of the world fixture.
OBJECT_KWARGS: dict[str, Callable[[Any], int]] = {
    "project_id": lambda side: side.project.pk,
    "media_id": lambda side: side.media.pk,
    "label_id": lambda side: side.label.pk,
}


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


def snapshot_lines() -> list[str]:
    return sorted(f"{route}  [{name}]" for route, name in all_urls())


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
        if TENANT_MARK not in route and not route.startswith("admin/") and name not in PUBLIC
    ]
    assert unclassified == []


def test_it_has_tenant_urls_to_walk() -> None:
    # Guards the walk below against silently walking nothing.
    names = {name for _, name in tenant_urls()}
    assert {"dashboard", "project_detail", "media_detail", "media_file", "api_project_list"} <= names


def _kwargs(route: str, side: Any, org_slug: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"org_slug": org_slug}
    for kwarg in OBJECT_KWARGS:
        if f":{kwarg}>" in route:
            kwargs[kwarg] = OBJECT_KWARGS[kwarg](side)
    return kwargs


def _assert_all_kwargs_known(route: str) -> None:
    import re

    names = set(re.findall(r"<(?:\w+:)?(\w+)>", route)) - {"org_slug"}
    unknown = names - set(OBJECT_KWARGS)
    assert not unknown, f"{route}: add a value for {unknown} to OBJECT_KWARGS"


@pytest.mark.parametrize(("route", "name"), tenant_urls(), ids=[name for _, name in tenant_urls()])
def test_it_answers_404_to_a_member_of_another_organisation(world: Any, route: str, name: str) -> None:
    _assert_all_kwargs_known(route)
    demo_url = reverse(name, kwargs=_kwargs(route, world.demo, world.demo.org.slug))

    member = Client()
    member.force_login(world.owner)
    member_status = member.get(demo_url).status_code
    # The URL really points at Demo Lab's objects: a member reaches it (or is told the method is wrong).
    assert member_status in (200, 302, 405), f"member GET {demo_url} -> {member_status}"

    outsider = Client()
    outsider.force_login(world.outsider)
    for method in METHODS:
        response = getattr(outsider, method)(demo_url)
        assert response.status_code == 404, f"outsider {method.upper()} {demo_url} -> {response.status_code}"

    # Own organisation in the URL, Demo Lab's object ids after it: still nothing.
    if any(f":{kwarg}>" in route for kwarg in OBJECT_KWARGS):
        mixed_url = reverse(name, kwargs=_kwargs(route, world.demo, world.other.org.slug))
        for method in METHODS:
            own_member_status = getattr(member, method)(demo_url).status_code
            if own_member_status == 405:
                continue  # refused before any lookup, for members too: reveals nothing
            response = getattr(outsider, method)(mixed_url)
            assert response.status_code == 404, f"outsider {method.upper()} {mixed_url} -> {response.status_code}"


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
