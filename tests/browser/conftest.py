"""Playwright driving Debian's chromium (never a downloaded browser) against the live server, or
against daphne in a process of its own where a page needs its websockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from django.conf import settings
from django.db import connections

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Flags for a closed network and a root user: no sandbox, no background calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    # Playwright's sync API keeps an event loop running in this thread; the ORM calls that
    # fixtures make during teardown are still synchronous and safe. Create test data in fixtures
    # set up before this one: ORM calls made while Playwright runs get a connection of their own
    # (another context), which is never closed and keeps PostgreSQL from dropping the test database.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        context.close()
        browser.close()


def in_own_thread(query: Callable[[], T]) -> T:
    """Run a database check while Playwright drives the page, and close its connection after.

    Inside the test body Playwright's event loop is running, so an ORM call there would open a
    connection of its own that nothing closes (and PostgreSQL then cannot drop the test database).
    A short-lived thread has an ordinary thread-local connection, closed here when it is done."""

    def run() -> T:
        try:
            return query()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


# --- daphne in its own process -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def daphne(env: dict[str, str], log: Path) -> Iterator[str]:
    """``python -m platform_core.server`` (daphne, as ``make demo`` starts it) on a free port with
    ``env``; yields its base URL once /healthz answers, and stops it after. Its output goes to
    ``log``, whose end is shown when it does not come up."""
    port = free_port()
    command = [sys.executable, "-m", "platform_core.server", "-b", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(
            [*command, "platform_core.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):  # noqa: S310 - loopback
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not come up:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # Still finishing a model call on a loaded machine: what it was doing is not under test.
            server.kill()
            server.wait(timeout=10)


def _test_database_url() -> str:
    """DATABASE_URL of the test database this run set up (SQLite file or PostgreSQL)."""
    name = connections["default"].settings_dict["NAME"]
    if connections["default"].vendor == "sqlite":
        return f"sqlite:///{name}"
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return urllib.parse.urlunsplit(url._replace(path="/" + urllib.parse.quote(str(name))))


def server_environment(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a server process beside a test (daphne, a job worker): this test's
    database, data folder, secret and channel layer (REDIS_URL when the run names one), plus
    ``extra``."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.browser.server_settings",
        DEBUG="1",  # static files from the finders, as in the tests
        SECURE_COOKIES="0",
        LOG_LEVEL="WARNING",
        SECRET_KEY=settings.SECRET_KEY,
        DATA_DIR=str(settings.DATA_DIR),
        DATABASE_URL=_test_database_url(),
    )
    env.update(extra)
    return env


@pytest.fixture
def daphne_env() -> dict[str, str]:
    """More environment for the daphne of ``daphne_server``; a test module overrides it."""
    return {}


@pytest.fixture
def daphne_server(transactional_db: None, tmp_path: Path, daphne_env: dict[str, str]) -> Iterator[str]:
    """The platform served by daphne on this test's own database, data folder, secret and channel
    layer (REDIS_URL when the run names one): pages get their websockets, unlike on Django's
    live_server, and what the test stores is what the server reads. It stops before the test's
    database is emptied (the flush would wait on its connections)."""
    with daphne(server_environment(daphne_env), tmp_path / "daphne.log") as base:
        yield base
