"""The OpenAPI schema (/api/schema/) and its docs page (/api/docs/): generated without warnings,
covering every API route, public, naming no organisation's data, and working offline under the CSP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.conftest import World
from tests.platform_core.test_outsider_urls import tenant_urls


def test_it_generates_the_schema_without_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    # --fail-on-warn turns every drf-spectacular warning (a guessed type, a name collision) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "openapi: 3" in target.read_text()


@pytest.fixture
def schema(world: World) -> dict:
    response = Client().get(reverse("api_schema"), {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_it_documents_every_api_route_and_method(schema: dict) -> None:
    documented = set(schema["paths"])
    for route, _name in tenant_urls():
        if not route.startswith("api/"):
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        assert path in documented, f"{path} is missing from the schema"
    upload = schema["paths"]["/api/v1/o/{org_slug}/projects/{project_id}/media/"]["post"]
    assert set(upload["responses"]) == {"201", "207", "400"}
    assert "207" in upload["description"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    listing = schema["paths"]["/api/v1/o/{org_slug}/projects/"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "PaginatedProjectOutputList"
    )


def test_it_serves_the_schema_to_anyone_without_tenant_data(world: World) -> None:
    text = Client().get(reverse("api_schema"), {"format": "json"}).content.decode()
    for secret in (
        world.demo.org.slug,
        world.other.org.slug,
        world.demo.project.name,
        world.demo.org.name,
        "outsider",
    ):
        assert secret not in text
    signed_in = Client()
    signed_in.force_login(world.owner)
    # Members get the same document: the schema does not depend on who asks.
    assert signed_in.get(reverse("api_schema"), {"format": "json"}).content.decode() == text


def test_it_serves_the_docs_page_from_own_static_files(world: World) -> None:
    response = Client().get(reverse("api_docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "script-src 'self'" in response["Content-Security-Policy"]
    scripts = re.findall(r"<script\b([^>]*)>", html)
    assert scripts, "the page starts Swagger UI"
    for attributes in scripts:
        src = re.search(r'src="([^"]+)"', attributes)
        assert src and src.group(1).startswith("/static/"), f"inline or foreign script: {attributes}"
    assert "<style" not in html and "style=" not in html
    assert not re.search(r"https?://", html), "nothing loads from another site"
    for static in ("vendor/swagger-ui/swagger-ui-bundle.js", "vendor/swagger-ui/swagger-ui.css", "js/api_docs.js"):
        assert finders.find(static), static
        assert f"/static/{static}" in html
    assert reverse("api_schema") in html
    for secret in (world.demo.org.slug, world.demo.project.name):
        assert secret not in html


def test_it_keeps_the_vendored_licence_next_to_swagger_ui() -> None:
    licence = finders.find("vendor/swagger-ui/LICENSE")
    assert licence and "Apache License" in Path(licence).read_text()
