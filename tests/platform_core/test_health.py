"""/healthz reports every part and answers 503 naming the part that fails."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


@pytest.mark.django_db
def test_it_answers_200_with_every_part(settings: Any) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "channel_layer", "storage"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["database"]["vendor"] in {"sqlite", "postgresql"}
    assert set(body["inference"]["models"]) == {"tiny", "small", "base_plus", "large"}
    assert "checkpoint_dir" not in body["inference"]
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_it_names_a_channel_layer_that_does_not_answer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]},  # the discard port: nothing listens
        }
    }
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["channel_layer"]
    assert body["checks"]["channel_layer"]["ok"] is False
    assert "error" not in body["checks"]["channel_layer"]  # no hosts or texts for anonymous callers
    assert body["checks"]["database"]["ok"]


@pytest.mark.django_db
def test_it_tells_a_superuser_why_a_part_fails(settings: Any, django_user_model: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:9/0"]}}
    }
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123"))
    body = client.get("/healthz").json()
    assert (
        "Connect" in body["checks"]["channel_layer"]["error"] or "refused" in body["checks"]["channel_layer"]["error"]
    )
    assert body["inference"]["checkpoint_dir"] == str(settings.SAM2_CHECKPOINT_DIR)


@pytest.mark.django_db
def test_it_names_storage_it_cannot_write(settings: Any, tmp_path: Any) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": blocker}},
    }
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["storage"]


@pytest.mark.django_db
def test_it_reports_checkpoints_that_are_present(settings: Any, tmp_path: Any) -> None:
    settings.SAM2_CHECKPOINT_DIR = tmp_path
    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(b"\0")
    inference = Client().get("/healthz").json()["inference"]
    assert inference["available"] == ["tiny"]
    assert inference["models"]["tiny"] == {"checkpoint": "sam2.1_hiera_tiny.pt", "available": True, "loaded": False}
    assert inference["fallback"] is None
