"""The SAM 2.1 models the platform knows, where their checkpoints are, and which are loaded.

Model keys name the official SAM 2.1 sizes. A model is *available* when its checkpoint file lies in
``settings.SAM2_CHECKPOINT_DIR`` under its official file name, and *loaded* once a process has built
it. Without any checkpoint the platform still works with manual tools and the classical fallback.
"""

from __future__ import annotations

import importlib.resources
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class ModelSpec:
    key: str
    config: str  # config name inside the sam2 package, as build_sam2 takes it
    checkpoint: str  # official checkpoint file name

    def checkpoint_path(self) -> Path:
        return Path(settings.SAM2_CHECKPOINT_DIR) / self.checkpoint

    def config_exists(self) -> bool:
        return importlib.resources.files("sam2").joinpath(self.config).is_file()


MODELS: dict[str, ModelSpec] = {
    spec.key: spec
    for spec in (
        ModelSpec("tiny", "configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
        ModelSpec("small", "configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
        ModelSpec("base_plus", "configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
        ModelSpec("large", "configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
    )
}

# key -> built model; filled by the loader (inference worker), read by health reporting.
_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()


def mark_loaded(key: str, model: Any) -> None:
    with _loaded_lock:
        _loaded[key] = model


def loaded_keys() -> list[str]:
    with _loaded_lock:
        return sorted(_loaded)


def available_keys() -> list[str]:
    return [key for key, spec in MODELS.items() if spec.checkpoint_path().is_file()]


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
        "fallback": "opencv" if not available else None,
    }
