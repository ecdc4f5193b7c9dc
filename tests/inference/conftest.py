"""A tiny SAM 2.1 checkpoint with random weights, written once per test session by the platform's own
command, and the images the inference tests segment."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from django.core.management import call_command


@pytest.fixture(scope="session")
def sam2_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sam2-checkpoints")
    call_command("sam2_random_checkpoint", "--model", "tiny", "--dir", str(directory), stdout=io.StringIO())
    return directory


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photograph, 600 × 400 (a cup of coffee on a saucer)."""
    return skimage.data.coffee()
