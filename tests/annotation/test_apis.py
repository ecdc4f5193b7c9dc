from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def token_client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_it_lists_the_organisations_projects_with_a_token(world: Any) -> None:
    response = token_client(world.annotator).get(reverse("api_project_list", kwargs={"org_slug": "demo-lab"}))
    assert response.status_code == 200
    assert [p["id"] for p in response.json()["results"]] == [world.demo.project.pk]


def test_it_describes_a_project_with_labels(world: Any) -> None:
    url = reverse("api_project_detail", kwargs={"org_slug": "demo-lab", "project_id": world.demo.project.pk})
    body = token_client(world.annotator).get(url).json()
    assert body["name"] == world.demo.project.name
    assert body["labels"] == [
        {"id": world.demo.label.pk, "name": world.demo.label.name, "color": "#1f77b4", "kind": "mask"}
    ]
    assert body["media_count"] == 1


def test_it_answers_401_with_a_bad_token(world: Any) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get(reverse("api_project_list", kwargs={"org_slug": "demo-lab"}))
    assert response.status_code == 401
