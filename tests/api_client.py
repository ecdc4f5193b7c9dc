"""Helpers for the REST API tests: a client that authenticates with a token, and URLs of Demo Lab."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def token_client(user: Any) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def api_url(name: str, org_slug: str = "demo-lab", **kwargs: Any) -> str:
    return reverse(name, kwargs={"org_slug": org_slug, **kwargs})
