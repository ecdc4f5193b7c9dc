"""Playwright driving Debian's chromium (never a downloaded browser) against the live server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from django.db import connections

T = TypeVar("T")

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
