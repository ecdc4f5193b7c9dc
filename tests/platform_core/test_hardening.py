"""Hardening: sign-in throttling, API rate limits, the Content-Security-Policy on every page, the
favicon and pluralised counts (the admin's sign-in page for people already signed in: test_admin.py)."""

from __future__ import annotations

import os
import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from io import BytesIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth import authenticate
from django.db.models import F
from django.test import AsyncClient, Client
from django.urls import reverse
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle

from tests.factories import PASSWORD, LabelFactory
from tests.platform_core.test_outsider_urls import TENANT_MARK, _kwargs, tenant_urls

pytestmark = pytest.mark.django_db

WRONG = "not the password"


def sign_in(client: Client, username: str, password: str, ip: str = "127.0.0.1") -> Any:
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def fail_times(count: int, username: str, ip: str = "127.0.0.1") -> list[int]:
    return [sign_in(Client(), username, WRONG, ip).status_code for _ in range(count)]


# --- Sign-in throttling --------------------------------------------------------------------------


def test_it_locks_an_account_out_after_repeated_wrong_passwords(world: Any) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    # Each guess from another address: the account's own count locks it.
    statuses = [sign_in(Client(), "manager", WRONG, f"10.0.0.{i}").status_code for i in range(1, limit + 1)]
    assert statuses == [200] * (limit - 1) + [429]

    client = Client()
    response = sign_in(client, "manager", PASSWORD, "10.0.1.1")  # right password, fresh address
    assert response.status_code == 429
    assert not signed_in(client)
    assert "Sign-in paused" in response.content.decode()
    cool_off = django_settings.AXES_COOLOFF_TIME.total_seconds()
    assert 0 < int(response["Retry-After"]) <= cool_off
    minutes = int(cool_off // 60)
    assert f"Try again in {minutes} minute{'s' if minutes != 1 else ''}" in response.content.decode()

    # Another account from the same addresses is not affected.
    other = Client()
    assert sign_in(other, "annotator", PASSWORD, "10.0.0.1").status_code == 302
    assert signed_in(other)


def test_it_locks_a_client_out_across_usernames(world: Any) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    names = ["owner", "nobody-here", "reviewer", "ghost", "annotator", "x"][:limit]
    statuses = [sign_in(Client(), name, WRONG, "10.9.9.9").status_code for name in names]
    assert statuses[-1] == 429
    assert statuses[:-1] == [200] * (limit - 1)

    locked = Client()
    assert sign_in(locked, "manager", PASSWORD, "10.9.9.9").status_code == 429
    assert not signed_in(locked)
    elsewhere = Client()
    assert sign_in(elsewhere, "manager", PASSWORD, "10.8.8.8").status_code == 302
    assert signed_in(elsewhere)


def _lockout_text(username: str, ip: str) -> str:
    fail_times(django_settings.AXES_FAILURE_LIMIT - 1, username, ip)
    response = sign_in(Client(), username, WRONG, ip)
    assert response.status_code == 429
    section = re.search(
        r'<section class="card narrow" data-testid="locked-out">.*?</section>', response.content.decode(), re.S
    )
    assert section
    # The time of day may differ by the second the two lockouts are apart.
    return re.sub(r"<time[^>]*>.*?</time>", "<time>", section.group(0), flags=re.S)


def test_it_says_nothing_about_whether_the_account_exists(world: Any) -> None:
    existing = _lockout_text("reviewer", "10.1.1.1")
    missing = _lockout_text("no-such-user", "10.2.2.2")
    assert existing == missing
    assert "reviewer" not in existing
    # Before the lockout, a wrong password and an unknown name read the same too.
    wrong = sign_in(Client(), "owner", WRONG, "10.3.3.3").content.decode()
    unknown = sign_in(Client(), "no-one", WRONG, "10.4.4.4").content.decode()
    assert re.findall(r'<p class="error".*?</p>', wrong) == re.findall(r'<p class="error".*?</p>', unknown) != []


def test_it_clears_the_accounts_failures_when_it_signs_in(world: Any) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    assert fail_times(limit - 1, "manager", "10.5.5.5") == [200] * (limit - 1)
    assert sign_in(Client(), "manager", PASSWORD, "10.5.5.6").status_code == 302
    # The count starts again: as many guesses as before are still not a lockout.
    assert fail_times(limit - 1, "manager", "10.5.5.7") == [200] * (limit - 1)
    assert fail_times(1, "manager", "10.5.5.7") == [429]


def test_it_does_not_let_a_sign_in_to_one_account_clear_guesses_at_another(world: Any) -> None:
    # Someone with their own account guesses at the owner's from one address, signing in to
    # their own account in between: the owner's count (and the address's) keeps going.
    limit = django_settings.AXES_FAILURE_LIMIT
    assert fail_times(limit - 1, "owner", "10.6.6.6") == [200] * (limit - 1)
    assert sign_in(Client(), "annotator", PASSWORD, "10.6.6.6").status_code == 302
    assert fail_times(1, "owner", "10.6.6.7") == [429]


def test_it_lets_the_account_in_again_when_the_lockout_ends(world: Any) -> None:
    cool_off = django_settings.AXES_COOLOFF_TIME
    fail_times(django_settings.AXES_FAILURE_LIMIT, "manager", "10.7.7.7")

    def age_attempts(by: timedelta) -> None:
        # The clock moves on for the stored failures instead of for the test.
        AccessAttempt.objects.update(attempt_time=F("attempt_time") - by)

    age_attempts(cool_off - timedelta(minutes=1))
    # Still locked a minute before the end; these refused tries do not extend the lockout.
    for _ in range(3):
        assert sign_in(Client(), "manager", PASSWORD, "10.7.7.7").status_code == 429
    age_attempts(timedelta(minutes=1, seconds=1))
    client = Client()
    assert sign_in(client, "manager", PASSWORD, "10.7.7.7").status_code == 302
    assert signed_in(client)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_it_answers_the_lockout_page_over_asgi_too(world: Any) -> None:
    # daphne runs the async middleware path, where axes hands its arguments over differently.
    client = AsyncClient()
    url = reverse("login")
    statuses = []
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        response = await client.post(url, {"username": "manager", "password": WRONG})
        statuses.append(response.status_code)
    assert statuses[-1] == 429
    assert "Sign-in paused" in response.content.decode()
    assert int(response["Retry-After"]) > 0


def test_it_leaves_sign_ins_without_a_request_alone(world: Any) -> None:
    # Management commands, shells and tests sign in without a client: nothing to count or lock.
    fail_times(django_settings.AXES_FAILURE_LIMIT, "manager")
    assert authenticate(username="manager", password=PASSWORD) == world.manager
    client = Client()
    client.force_login(world.manager)
    assert client.get(reverse("dashboard", kwargs={"org_slug": world.demo.org.slug})).status_code == 200
    assert Client().login(username="manager", password=PASSWORD)


# --- API rate limits -----------------------------------------------------------------------------


@pytest.fixture
def fresh_rate_counts(settings: Any) -> None:
    # Counts of this test alone, in the configured cache backend (Redis when REDIS_URL is set).
    settings.CACHES = {
        "default": {**django_settings.CACHES["default"], "KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex}"}
    }


def test_it_rate_limits_api_calls_per_user(
    world: Any, fresh_rate_counts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DRF reads the rates once, at import: the test lowers the configured one in place.
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "3/minute")
    url = reverse("api_project_list", kwargs={"org_slug": world.demo.org.slug})
    token = Token.objects.create(user=world.manager)
    client = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(url)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60

    # Per user: someone else still gets through.
    other = Client()
    other.force_login(world.owner)
    assert other.get(url).status_code == 200


def test_it_rate_limits_anonymous_api_calls_per_client(
    world: Any, fresh_rate_counts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "anon", "2/minute")
    url = reverse("api_schema")  # public, so the anonymous rate is what answers
    client = Client()
    assert [client.get(url, REMOTE_ADDR="10.10.0.1").status_code for _ in range(2)] == [200, 200]
    refused = client.get(url, REMOTE_ADDR="10.10.0.1")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    # A made-up X-Forwarded-For is no new client.
    assert client.get(url, REMOTE_ADDR="10.10.0.1", HTTP_X_FORWARDED_FOR="192.0.2.7").status_code == 429
    assert client.get(url, REMOTE_ADDR="10.10.0.2").status_code == 200


def test_it_configures_throttling_from_the_environment() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from platform_core.settings import api_rate

    rest = django_settings.REST_FRAMEWORK
    assert set(rest["DEFAULT_THROTTLE_RATES"]) == {"anon", "user"}
    assert len(rest["DEFAULT_THROTTLE_CLASSES"]) == 2
    os.environ["TEST_API_RATE"] = "10/hour"
    try:
        assert api_rate("TEST_API_RATE", "1/second") == "10/hour"
        for bad in ("10", "ten/minute", "0/minute", "10/fortnight", "10/"):
            os.environ["TEST_API_RATE"] = bad
            with pytest.raises(ImproperlyConfigured, match="TEST_API_RATE"):
                api_rate("TEST_API_RATE", "1/second")
    finally:
        del os.environ["TEST_API_RATE"]


@pytest.mark.services
def test_it_counts_api_calls_in_redis_when_redis_url_is_set(world: Any) -> None:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set: the Redis pass of .ci/run runs this case")
    import redis

    cache = django_settings.CACHES["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    client = Client()
    client.force_login(world.reviewer)
    assert client.get(reverse("api_project_list", kwargs={"org_slug": world.demo.org.slug})).status_code == 200
    # Another process sees the same count: it is in Redis, under the cache's prefix.
    keys = redis.Redis.from_url(redis_url).keys(f"{cache['KEY_PREFIX']}:*:throttle_user_{world.reviewer.pk}")
    assert keys


# --- Content-Security-Policy ---------------------------------------------------------------------

# Script types that are data, never run (json_script and the like).
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json", "importmap"}


def _htmx_eval(name: str, value: str) -> bool:
    return (
        name == "hx-vars"
        or (name == "hx-trigger" and "[" in value)
        or (name in ("hx-vals", "hx-headers") and value.strip().startswith(("js:", "javascript:")))
    )


class InlineCodeFinder(HTMLParser):
    """Collects what a strict `script-src 'self'; style-src 'self'` would block."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"<{tag} style={value!r}>")
            elif name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"<{tag} {name}={value!r}>")
            elif _htmx_eval(name, value or ""):
                # htmx runs these through eval, which the policy (and htmx's allowEval: false) refuses.
                self.problems.append(f"<{tag} {name}={value!r}>")
            elif name in ("href", "src", "action", "formaction") and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"<{tag} {name}={value!r}>")
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            self._in_script = attributes

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is None or not data.strip():
            return
        if "src" in self._in_script or (self._in_script.get("type") or "") in DATA_SCRIPT_TYPES:
            return
        self.problems.append(f"inline <script>: {data.strip()[:80]!r}")


def csp_problems(response: Any) -> list[str]:
    policy = response.get("Content-Security-Policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    problems = []
    if directives.get("script-src") != ["'self'"]:
        problems.append(f"script-src is {directives.get('script-src')}")
    if directives.get("style-src") != ["'self'"]:
        problems.append(f"style-src is {directives.get('style-src')}")
    if "unsafe-inline" in policy or "unsafe-eval" in policy:
        problems.append("unsafe-inline / unsafe-eval in the policy")
    if response.get("Content-Type", "").startswith("text/html"):
        finder = InlineCodeFinder()
        finder.feed(response.content.decode())
        problems += finder.problems
    return problems


def member_pages(world: Any) -> list[str]:
    urls = []
    for route, name in tenant_urls():
        if route.startswith("api/"):
            continue
        urls.append(reverse(name, kwargs=_kwargs(route, world.demo, world.demo.org.slug)))
    return urls


def test_it_walks_pages_of_every_kind() -> None:
    # Guards the walk below against silently checking nothing.
    names = {name for route, name in tenant_urls() if not route.startswith("api/")}
    assert {"dashboard", "project_detail", "media_detail"} <= names
    assert all(TENANT_MARK in route for route, _ in tenant_urls())


@pytest.mark.parametrize("who", ["owner", "annotator"])
def test_it_sends_a_strict_policy_and_no_inline_code_on_every_member_page(world: Any, who: str) -> None:
    client = Client()
    client.force_login(getattr(world, who))
    checked, problems = 0, {}
    for url in [*member_pages(world), reverse("organization_list"), reverse("profile"), reverse("api_docs")]:
        response = client.get(url, follow=True)
        # Refusals (a page of a role above this one) are pages too and are checked as well.
        checked += response.status_code == 200
        found = csp_problems(response)
        if found:
            problems[url] = found
        if response.get("Vary", "") and "HX-Request" in response.get("Vary", ""):
            fragment = client.get(url, HTTP_HX_REQUEST="true")
            if fragment.status_code == 200 and csp_problems(fragment):
                problems[url + " (htmx)"] = csp_problems(fragment)
    assert checked >= 5
    assert problems == {}


def test_it_sends_the_policy_on_sign_in_error_and_lockout_pages(world: Any) -> None:
    anonymous = Client()
    pages = [anonymous.get(reverse("login")), anonymous.get("/no-such-page/")]
    pages += [sign_in(Client(), "manager", WRONG, "10.11.0.1") for _ in range(django_settings.AXES_FAILURE_LIMIT)]
    annotator = Client()
    annotator.force_login(world.annotator)
    pages.append(annotator.get(reverse("admin:login")))
    assert [p.status_code for p in pages[:2]] == [200, 404]
    assert pages[-2].status_code == 429
    assert pages[-1].status_code == 403
    for page in pages:
        assert csp_problems(page) == [], page.request["PATH_INFO"]


def test_it_sends_the_policy_on_api_answers(world: Any) -> None:
    client = Client()
    client.force_login(world.manager)
    response = client.get(reverse("api_project_list", kwargs={"org_slug": world.demo.org.slug}))
    assert response.status_code == 200
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_it_finds_inline_code(world: Any) -> None:
    # The checker itself must be able to fail.
    class Fake:
        def __init__(self, html: str) -> None:
            self.content = html.encode()
            self.headers = {
                "Content-Type": "text/html",
                "Content-Security-Policy": "script-src 'self'; style-src 'self'",
            }

        def get(self, key: str, default: str = "") -> str:
            return self.headers.get(key, default)

    assert csp_problems(Fake('<script src="/static/a.js"></script><script type="application/json">{}</script>')) == []
    for html in (
        "<script>alert(1)</script>",
        '<span style="color: red">x</span>',
        '<button onclick="go()">x</button>',
        '<div hx-on:click="go()">x</div>',
        '<input hx-get="/x" hx-trigger="keyup[key==\'Enter\']">',
        '<div hx-vals="js:{a: go()}">x</div>',
        '<a href="javascript:go()">x</a>',
        "<style>p {}</style>",
    ):
        assert csp_problems(Fake(html)), html


def admin_pages(world: Any) -> list[str]:
    from django.contrib import admin

    from platform_core.admin_tenancy import TenantModelAdmin

    urls = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, TenantModelAdmin):
            continue
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        first = model_admin.get_queryset(_AdminRequest(world.manager)).first()
        if first is not None:
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
        if model_admin.has_add_permission(_AdminRequest(world.manager)):
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
    return urls


class _AdminRequest:
    """Just enough of a request for the admin's queryset and permission methods."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self.GET: dict[str, str] = {}
        self.POST: dict[str, str] = {}
        self.method = "GET"


def test_it_sends_a_strict_policy_and_no_inline_code_in_the_admin(world: Any) -> None:
    client = Client()
    client.force_login(world.manager)
    problems = {}
    urls = admin_pages(world)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        if found := csp_problems(response):
            problems[url] = found
    assert len(urls) > 5
    assert problems == {}


# --- Favicon and counts --------------------------------------------------------------------------


def test_it_serves_a_favicon(world: Any) -> None:
    client = Client()
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200
    icon = Image.open(BytesIO(b"".join(response.streaming_content)))
    assert icon.format == "ICO"
    client.force_login(world.manager)
    page = client.get(reverse("dashboard", kwargs={"org_slug": world.demo.org.slug})).content.decode()
    links = re.findall(r'<link rel="icon"[^>]*href="([^"]+)"', page)
    assert links
    for href in links:
        assert client.get(href).status_code == 200, href


def test_it_pluralises_counts_on_the_dashboard(world: Any) -> None:
    client = Client()
    client.force_login(world.manager)
    url = reverse("dashboard", kwargs={"org_slug": world.demo.org.slug})
    text = re.sub(r"\s+", " ", client.get(url).content.decode())
    assert "1 item " in text and "1 label " in text
    assert "1 items" not in text and "1 labels" not in text
    LabelFactory(project=world.demo.project)
    text = re.sub(r"\s+", " ", client.get(url).content.decode())
    assert "2 labels" in text
