"""The SAM 2.1 models the platform knows, where their checkpoints are, and which are loaded.

Model keys name the official SAM 2.1 sizes. A model is *available* when its checkpoint file lies in
``settings.SAM2_CHECKPOINT_DIR`` under its official file name, and *loaded* once a process has built
it. A checkpoint with random weights (``manage.py sam2_random_checkpoint``) is *untrained*: a sidecar
file ``<checkpoint>.untrained`` beside it says so, so the studio can say its masks are noise. Without
any checkpoint the platform still works with manual tools and the classical fallback segmenter.
"""

from __future__ import annotations

import importlib.resources
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from inference.embedding_cache import get_default_cache


@dataclass(frozen=True)
class ModelSpec:
    key: str
    config: str  # config name inside the sam2 package, as build_sam2 takes it
    checkpoint: str  # official checkpoint file name

    def checkpoint_path(self) -> Path:
        return Path(settings.SAM2_CHECKPOINT_DIR) / self.checkpoint

    def untrained_marker_path(self) -> Path:
        return untrained_marker_for(self.checkpoint_path())

    def config_exists(self) -> bool:
        return importlib.resources.files("sam2").joinpath(self.config).is_file()


def untrained_marker_for(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".untrained")


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
        ModelSpec("small", "configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
        ModelSpec("base_plus", "configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
        ModelSpec("large", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
    )
}

# The classical click / box segmenter (OpenCV GrabCut) that serves when no checkpoint is present.
FALLBACK_KEY = "opencv"
FALLBACK_NAME = "Classical segmenter (OpenCV GrabCut), the fallback without SAM 2 weights"

# key -> built model; filled by the loader (inference worker), read by health reporting.
_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()


def mark_loaded(key: str, model: Any) -> None:
    with _loaded_lock:
        _loaded[key] = model


def mark_unloaded(key: str) -> None:
    with _loaded_lock:
        _loaded.pop(key, None)


def loaded_keys() -> list[str]:
    with _loaded_lock:
        return sorted(_loaded)


def available_keys() -> list[str]:
    return [key for key, spec in MODELS.items() if spec.checkpoint_path().is_file()]


def untrained_keys() -> list[str]:
    return [key for key, spec in MODELS.items() if spec.untrained_marker_path().is_file()]


def choices() -> list[dict[str, Any]]:
    """What a model picker offers: the available SAM 2 models, then the fallback (always usable)."""
    available, untrained, loaded = available_keys(), untrained_keys(), loaded_keys()
    sam2_choices = [
        {"key": key, "name": f"SAM 2.1 {key.replace('_', ' ')}", "untrained": key in untrained, "loaded": key in loaded}
        for key in available
    ]
    fallback = {"key": FALLBACK_KEY, "name": FALLBACK_NAME, "untrained": False, "loaded": True, "fallback": True}
    return [{**choice, "fallback": False} for choice in sam2_choices] + [fallback]


def status() -> dict[str, Any]:
    """What is configured and what is loaded, for /healthz and the admin."""
    directory = Path(settings.SAM2_CHECKPOINT_DIR)
    available = available_keys()
    return {
        "checkpoint_dir": str(directory),
        "checkpoint_dir_exists": directory.is_dir(),
        "device": settings.INFERENCE_DEVICE,
        "models": {
            key: {
                "checkpoint": spec.checkpoint,
                "available": key in available,
                "loaded": key in _loaded,
            }
            for key, spec in MODELS.items()
        },
        "available": available,
        "loaded": loaded_keys(),
        "untrained": [key for key in untrained_keys() if key in available],
        "fallback": FALLBACK_KEY if not available else None,
        "fallback_name": FALLBACK_NAME,
        "embedding_cache": get_default_cache().stats(),
    }
