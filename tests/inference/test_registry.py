from __future__ import annotations

from typing import Any

import pytest

from inference import registry


@pytest.mark.parametrize("key", list(registry.MODELS))
def test_it_names_configs_that_the_installed_sam2_package_ships(key: str) -> None:
    assert registry.MODELS[key].config_exists()


def test_it_reports_the_fallback_when_no_checkpoint_is_present(settings: Any, tmp_path: Any) -> None:
    settings.SAM2_CHECKPOINT_DIR = tmp_path / "missing"
    status = registry.status()
    assert status["available"] == []
    assert status["checkpoint_dir_exists"] is False
    assert status["fallback"] == "opencv"
