from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from inference import registry
from inference.embedding_cache import configured_budget_bytes
from inference.segmentation import segment
from tests.inference.images import disc_image


@pytest.mark.parametrize("key", list(registry.MODELS))
def test_it_names_configs_that_the_installed_sam2_package_ships(key: str) -> None:
    assert registry.MODELS[key].config_exists()


def test_it_reports_the_fallback_when_no_checkpoint_is_present(settings: Any, tmp_path: Any) -> None:
    settings.SAM2_CHECKPOINT_DIR = tmp_path / "missing"
    status = registry.status()
    assert status["available"] == []
    assert status["checkpoint_dir_exists"] is False
    assert status["fallback"] == "opencv"


@pytest.mark.django_db
def test_it_reports_untrained_models_and_embedding_cache_counts_at_healthz(
    settings: Any, sam2_checkpoint_dir: Any
) -> None:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir
    image, _ = disc_image()
    media_key = object()  # a key no other test can have warmed
    before = Client().get("/healthz").json()["inference"]["embedding_cache"]
    segment(model="opencv", media_key=media_key, image_version=1, image=image, points=[[170, 110, 1]])
    segment(model="opencv", media_key=media_key, image_version=1, image=image, points=[[160, 100, 1]])
    inference = Client().get("/healthz").json()["inference"]
    after = inference["embedding_cache"]
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 1
    assert after["bytes"] >= image.nbytes
    assert after["budget_bytes"] == configured_budget_bytes()
    assert inference["untrained"] == ["tiny"]
    assert inference["fallback"] is None  # a checkpoint is present, random or not
    assert inference["fallback_name"].startswith("Classical segmenter")
