"""What a script writer does first: open /api/docs/ and read the endpoints, offline, under the CSP."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_the_api_in_swagger_ui_without_csp_violations(live_server: Any, page: Any) -> None:
    violations: list[str] = []
    foreign: list[str] = []

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    def on_request(request: Any) -> None:
        if not request.url.startswith(live_server.url):
            foreign.append(request.url)

    page.on("console", on_console)
    page.on("request", on_request)

    page.goto(live_server.url + "/api/docs/")
    page.locator(".opblock-summary-path", has_text="/api/v1/o/{org_slug}/projects/{project_id}/media/").first.wait_for()
    assert page.locator(".opblock").count() > 30
    assert page.locator(".information-container .title").first.inner_text().startswith("Annotation platform API")

    # Open the upload: its documented 207 answer is there.
    page.locator(".opblock-post .opblock-summary", has_text="/projects/{project_id}/media/").first.click()
    page.locator(".response[data-code='207']").first.wait_for()

    assert violations == []
    assert [url for url in foreign if not url.startswith("data:")] == []
