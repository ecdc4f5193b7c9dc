"""A crowd worker in a real browser, end to end on daphne, with the provider played by a loopback
site: Mechanical Turk framing the task page (its preview that cannot submit, then an accepted
assignment through the qualification test to the form MTurk's ``externalSubmit`` receives), and a
study link from entry to its completion redirect with the code. Everything the browser receives in
those flows (documents, scripts, images, fetches and websocket frames) is recorded, and nothing in
it tells a hidden-gold item from a regular one."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.urls import reverse

from annotation.masks import box_to_rle, mask_decode
from crowd.models import CrowdAssignment, CrowdWorker, QualificationAttempt
from tests.browser.conftest import free_port, in_own_thread
from tests.crowd.helpers import Crowd, crowd_setup, link_url, mask_crowd_setup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# --- the provider: a loopback site framing the task page and receiving what it sends back ----------
@dataclass
class ProviderSite:
    """MTurk's worker site and a study platform's completion page, on one loopback port."""

    base: str
    submitted: list[dict[str, list[str]]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    def frame_url(self, src: str) -> str:
        return f"{self.base}/frame?{urlencode({'src': src})}"


def _handler(site: ProviderSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, body: str) -> None:
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/frame":
                # What MTurk's worker site does with an ExternalQuestion: the task page in an iframe.
                src = query["src"][0]
                self._send(f'<!doctype html><title>HIT</title><iframe id="hit" src="{src}" width="900" height="700">')
            elif url.path == "/complete":
                site.completed.append(query.get("cc", [""])[0])
                self._send("<!doctype html><title>Study complete</title><h1>Study complete</h1>")
            else:
                self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            if urlsplit(self.path).path == "/mturk/externalSubmit":
                site.submitted.append(form)
                self._send("<!doctype html><title>HIT submitted</title><h1>HIT submitted</h1>")
            else:
                self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def provider() -> Iterator[ProviderSite]:
    port = free_port()
    site = ProviderSite(base=f"http://127.0.0.1:{port}")
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(site))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()


@pytest.fixture
def daphne_env(provider: ProviderSite) -> dict[str, str]:
    # The loopback site is the only host that may frame worker pages and receive their forms.
    return {"CROWD_MTURK_HOSTS": provider.base, "CROWD_LINK_COMPLETION_URL": f"{provider.base}/complete"}


# --- recording everything the worker's browser receives --------------------------------------------
@dataclass
class Received:
    responses: list[tuple[str, str, int, dict[str, str], bytes]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)


def record(page: Any, server: str) -> Received:
    """Every response from the platform (bodies included) and every websocket frame, in order."""
    received = Received()

    def on_response(response: Any) -> None:
        if response.url.startswith(server):
            try:
                body = response.body()
            except Exception:  # noqa: BLE001 - a redirect has no body to read
                body = b""
            received.responses.append((response.request.method, response.url, response.status, response.headers, body))

    def on_socket(socket: Any) -> None:
        received.sockets.append(socket.url)
        socket.on("framereceived", lambda payload: received.frames.append(str(payload)))

    page.on("response", on_response)
    page.on("websocket", on_socket)
    return received


def hit(page: Any) -> Any:
    """The task page's frame inside the provider's page."""
    page.wait_for_selector("iframe#hit")
    frame = page.frame_locator("iframe#hit")
    return frame


def loaded(body: Any) -> None:
    """Until the document holding ``body`` has run its scripts (its load event has fired)."""
    deadline = time.monotonic() + 15
    while body.evaluate("() => document.readyState") != "complete":
        assert time.monotonic() < deadline, "the page did not finish loading"
        time.sleep(0.05)


def mturk_entry(server: str, batch: Any, **params: str) -> str:
    return f"{server}{reverse('crowd_mturk_entry', kwargs={'public_id': batch.public_id})}?{urlencode(params)}"


TASK_URL = re.compile(r"/crowd/task/([^/]+)/$")


# Crowd worlds are made before the page opens: ORM calls while Playwright runs hold connections open.
@pytest.fixture
def mturk_crowd(world: Any) -> Crowd:
    return crowd_setup(world.demo, provider="mturk", regular=2, hidden=0, qualification=2)


@pytest.fixture
def framed_crowd(world: Any) -> Crowd:
    return crowd_setup(world.demo, provider="mturk", regular=1, hidden=0, qualification=0, with_test=False)


@pytest.fixture
def link_crowd(world: Any) -> tuple[Crowd, list[str]]:
    """Hidden gold at rate 1: a visit's first two items are the two gold ones, then regular ones.
    With the names of every gold item's file."""
    crowd = crowd_setup(world.demo, regular=3, hidden=2, qualification=2, gold_rate=1.0, items_per_session=5)
    return crowd, [gold.media.original_name.lower() for gold in crowd.hidden + crowd.qualification]


@pytest.fixture
def mask_crowd(world: Any) -> Any:
    return mask_crowd_setup(world.demo, regular=1, hidden=0, qualification=0, with_test=False, k=1)


# --- Mechanical Turk -------------------------------------------------------------------------------
def test_a_mturk_worker_previews_then_qualifies_and_submits_inside_the_frame(
    mturk_crowd: Crowd, daphne_server: str, provider: ProviderSite, page: Any
) -> None:
    crowd = mturk_crowd
    received = record(page, daphne_server)

    # The preview: the task as it will look, with no way to answer and nothing handed out.
    preview = mturk_entry(daphne_server, crowd.batch, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="H1")
    page.goto(provider.frame_url(preview))
    frame = hit(page)
    frame.get_by_test_id("crowd-preview").wait_for()
    assert frame.locator("img.crowd-image").evaluate("img => img.complete && img.naturalWidth > 0")
    assert frame.locator("button, input[type=submit]").count() == 0
    assert in_own_thread(lambda: CrowdAssignment.objects.count()) == 0

    # Accepted: the qualification test first, inside the frame.
    accepted = mturk_entry(
        daphne_server, crowd.batch, assignmentId="A-1", hitId="H1", workerId="W-1", turkSubmitTo=provider.base
    )
    page.goto(provider.frame_url(accepted))
    frame = hit(page)
    frame.get_by_role("heading", name="Qualification test").wait_for()
    for index in range(2):
        frame.locator(f"input[name=answer-{index}][value=one]").check()
    frame.get_by_role("button", name="Submit the test").click()

    # Then one item (one per MTurk assignment), answered with its key.
    frame.get_by_role("heading", name=crowd.question.text).wait_for()
    frame.locator("img.crowd-image").wait_for()
    loaded(frame.locator("body"))  # the key handler is a deferred script
    frame.locator("body").press("2")
    frame.get_by_role("heading", name="HIT submitted").wait_for()

    # MTurk's externalSubmit received the assignment id and the answer; the platform kept it too.
    assert len(provider.submitted) == 1
    assert provider.submitted[0]["assignmentId"] == ["A-1"]
    assert provider.submitted[0]["answer"] == ["many"]
    rows = in_own_thread(lambda: list(CrowdAssignment.objects.values("assignment_id", "hit_id", "state", "answer")))
    assert rows == [{"assignment_id": "A-1", "hit_id": "H1", "state": "submitted", "answer": "many"}]
    attempt = in_own_thread(lambda: QualificationAttempt.objects.get())
    assert attempt.passed is True
    assert received.sockets == []


def test_only_the_provider_may_frame_the_task_page(framed_crowd: Crowd, daphne_server: str, page: Any) -> None:
    crowd = framed_crowd
    # The platform's own origin is not an MTurk host: a page of it framing the task gets nothing.
    entry = mturk_entry(daphne_server, crowd.batch, assignmentId="ASSIGNMENT_ID_NOT_AVAILABLE", hitId="H1")
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text))
    page.goto(f"{daphne_server}/healthz")
    page.evaluate(
        """src => { const frame = document.createElement('iframe'); frame.id = 'hit'; frame.src = src;
                    document.body.appendChild(frame); }""",
        entry,
    )
    page.wait_for_function("() => document.getElementById('hit') !== null")
    page.wait_for_timeout(1500)
    frame = page.frame_locator("iframe#hit")
    assert frame.get_by_test_id("crowd-preview").count() == 0
    assert any("frame-ancestors" in text for text in blocked)


# --- a study link ----------------------------------------------------------------------------------
def test_a_study_link_worker_goes_from_entry_to_the_completion_redirect(
    link_crowd: tuple[Crowd, list[str]], daphne_server: str, provider: ProviderSite, page: Any
) -> None:
    crowd, gold_names = link_crowd
    received = record(page, daphne_server)
    page.goto(daphne_server + link_url(crowd.batch, pid="PID-7", session="S-7"))

    page.get_by_role("heading", name="Qualification test").wait_for()
    for index in range(2):
        page.locator(f"input[name=answer-{index}][value=one]").check()
    page.get_by_role("button", name="Submit the test").click()

    task_pages: list[str] = []
    for _ in range(5):
        page.get_by_role("heading", name=crowd.question.text).wait_for()
        task_pages.append(page.url)
        loaded(page.locator("body"))  # the key handler is a deferred script
        page.keyboard.press("2")  # "many": right for the hidden gold
        page.wait_for_url(lambda url, seen=page.url: url != seen)
    page.get_by_role("heading", name="Study complete").wait_for()
    assert provider.completed == ["C0MPL3TE"]
    assert page.url == f"{provider.base}/complete?cc=C0MPL3TE"

    assignments = in_own_thread(
        lambda: list(CrowdAssignment.objects.order_by("id").values("is_gold", "state", "answer", "session_id"))
    )
    assert [a["is_gold"] for a in assignments] == [True, True, False, False, False]
    assert {(a["state"], a["answer"], a["session_id"]) for a in assignments} == {("submitted", "many", "S-7")}
    assert in_own_thread(lambda: CrowdWorker.objects.get().external_id) == "PID-7"

    _assert_gold_never_shows(received, task_pages, assignments, gold_names)


def _assert_gold_never_shows(
    received: Received, task_pages: list[str], assignments: list[dict], gold_names: list[str]
) -> None:
    """Gold and regular task pages are the same bytes once their tokens are set aside, with the same
    headers; nothing received names gold, a gold item or a gold answer field; no websocket opens."""
    assert received.sockets == [] and received.frames == []
    by_url = {
        url: (status, headers, body) for method, url, status, headers, body in received.responses if method == "GET"
    }
    shapes: dict[bool, set[str]] = {True: set(), False: set()}
    for url, assignment in zip(task_pages, assignments, strict=True):
        token = TASK_URL.search(url).group(1)
        status, headers, body = by_url[url]
        kept = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "date")}
        shapes[assignment["is_gold"]].add(repr((status, kept, body.decode().replace(token, "TOKEN"))))
        image_status, image_headers, _ = by_url[f"{url}image"]
        kept_image = {k: v for k, v in image_headers.items() if k.lower() not in ("content-length", "date")}
        shapes[assignment["is_gold"]].add(repr((image_status, kept_image)))
    # One page shape and one image shape, the same for gold and regular items.
    assert len(shapes[True]) == 2 and shapes[True] == shapes[False]

    for _, url, _, headers, body in received.responses:
        everything = (url + repr(headers) + body.decode(errors="replace")).lower()
        assert "gold" not in everything, url
        assert not any(name in everything for name in gold_names), url


# --- a mask task ---------------------------------------------------------------------------------------
def test_a_worker_outlines_the_label_and_the_server_stores_that_mask(
    mask_crowd: Any, daphne_server: str, provider: ProviderSite, page: Any
) -> None:
    page.goto(daphne_server + link_url(mask_crowd.batch))
    page.get_by_role("heading", name="Outline every cup in the picture").wait_for()
    page.wait_for_function("() => document.querySelector('img.crowd-image').complete")
    natural = page.evaluate(
        "() => { const i = document.querySelector('img.crowd-image'); return [i.naturalWidth, i.naturalHeight]; }"
    )
    box = page.locator("canvas.crowd-canvas").bounding_box()
    scale_x, scale_y = box["width"] / natural[0], box["height"] / natural[1]

    # The outline of the box [10, 8] – [40, 32] in the picture's pixels, closed on its first point.
    for x, y in [(10, 8), (40, 8), (40, 32), (10, 32), (10, 8)]:
        page.mouse.click(box["x"] + x * scale_x, box["y"] + y * scale_y)
    drawn = page.evaluate("() => JSON.parse(document.querySelector('input[data-mask-input]').value)")
    assert drawn["size"] == [48, 64] and len(drawn["polygons"]) == 1 and len(drawn["polygons"][0]) == 4
    page.get_by_role("button", name="Submit the outline").click()
    page.get_by_role("heading", name="Study complete").wait_for()

    stored = in_own_thread(lambda: CrowdAssignment.objects.get())
    assert stored.state == "submitted" and stored.answer == ""
    mask = mask_decode(stored.answer_rle)
    expected = mask_decode(box_to_rle([10, 8, 40, 32], height=48, width=64))
    assert mask.shape == (48, 64)
    # The clicks land within a pixel of the corners: the stored mask is that box, give or take its edge.
    assert (mask & expected).sum() / (mask | expected).sum() > 0.9
    assert mask[20, 25] and not mask[2, 2] and not mask[40, 60]
