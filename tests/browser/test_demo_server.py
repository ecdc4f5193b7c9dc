"""The README's demo as a person meets it: migrate + demo data + daphne in their own processes, on a
throw-away data folder; then /healthz, sign-in in a real browser, the photographs, and the ping
websocket opened by the page itself (session cookie, Origin check, channel layer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import ROOT, daphne

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    # The embedded database always (the demo must not write into a shared server database); the
    # Redis channel layer when the run names one, so the services pass crosses Redis too.
    # A data folder that does not exist yet, as on a fresh checkout.
    folder = tmp_path_factory.mktemp("demo")
    env.update(DEBUG="1", DATA_DIR=str(folder / "var"), LOG_LEVEL="WARNING")
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput"], ["demo"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    with daphne(env, folder / "daphne.log") as base:
        yield base


def test_it_answers_healthz_with_200(demo_server: str) -> None:
    with urllib.request.urlopen(demo_server + "/healthz", timeout=10) as response:  # noqa: S310 - loopback
        body = json.loads(response.read())
        assert response.status == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["vendor"] == "sqlite"
    expected_layer = "RedisChannelLayer" if os.environ.get("REDIS_URL") else "InMemoryChannelLayer"
    assert body["checks"]["channel_layer"]["backend"] == expected_layer


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()


PING_SCRIPT = """
(url) => new Promise((resolve, reject) => {
  const socket = new WebSocket(url);
  socket.onopen = () => socket.send(JSON.stringify({type: "ping", request_id: "browser-1"}));
  socket.onmessage = (event) => { resolve(JSON.parse(event.data)); socket.close(); };
  socket.onclose = (event) => reject(new Error("closed " + event.code));
  setTimeout(() => reject(new Error("no answer")), 10000);
})
"""


def test_it_lets_the_annotator_see_the_demo_project_and_ping_over_the_websocket(demo_server: str, page: Any) -> None:
    sign_in(page, demo_server, "annotator")
    page.wait_for_url(demo_server + "/o/demo-lab/")
    page.get_by_role("link", name="Street and kitchen scenes").click()
    page.wait_for_load_state("networkidle")
    # The demo gives the annotator the first task of three photographs; the gallery shows only
    # those, as WebP thumbnails (longest side 320 px), not the originals.
    sizes = page.eval_on_selector_all("#gallery img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 3
    assert all(0 < min(size) and max(size) == 320 for size in sizes), sizes

    page.goto(demo_server + "/o/demo-lab/tasks/")
    assert page.get_by_test_id("task-progress").all_inner_texts() == ["0/3"]

    ws_url = demo_server.replace("http://", "ws://") + "/ws/o/demo-lab/ping/"
    reply = page.evaluate(PING_SCRIPT, ws_url)
    assert reply["type"] == "pong"
    assert reply["request_id"] == "browser-1"
    assert reply["organization"] == "demo-lab"


def test_it_shows_the_outsider_nothing_of_demo_lab(demo_server: str, page: Any) -> None:
    sign_in(page, demo_server, "outsider")
    page.wait_for_url(demo_server + "/o/other-lab/")
    assert page.goto(demo_server + "/o/demo-lab/").status == 404
    for project_id in range(1, 4):
        assert page.goto(f"{demo_server}/o/demo-lab/projects/{project_id}/").status == 404
    with pytest.raises(Exception, match="closed"):
        page.evaluate(PING_SCRIPT, demo_server.replace("http://", "ws://") + "/ws/o/demo-lab/ping/")
