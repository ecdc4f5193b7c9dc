"""Loading SAM 2.1 models: the device, lazy thread-safe builds through the sam2 package's own path.

``settings.INFERENCE_DEVICE`` is ``auto`` (CUDA when a GPU is visible, the CPU otherwise), ``cpu``,
``cuda`` or ``cuda:N``. On a GPU, inference runs under bf16 autocast, as SAM 2's own examples do.
A model is built on first use with ``build_sam2`` from its checkpoint, once per process however
many threads ask at the same time, and rebuilt when its checkpoint file changes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from sam2.build_sam import build_sam2

from inference import registry
from inference.prompts import ModelUnavailable, UnknownModel

logger = logging.getLogger(__name__)


def resolve_device(value: str | None = None) -> torch.device:
    value = value or settings.INFERENCE_DEVICE
    if value == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if not (value == "cuda" or value.startswith("cuda:")):
        raise ImproperlyConfigured(f"INFERENCE_DEVICE={value!r}: use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise ImproperlyConfigured(f"INFERENCE_DEVICE={value!r}, but this machine has no usable CUDA device.")
    device = torch.device(value if value != "cuda" else "cuda:0")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ImproperlyConfigured(
            f"INFERENCE_DEVICE={value!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)."
        )
    return device


def ensure_hydra() -> None:
    # ``import sam2`` initialises Hydra's global config search path; other code may clear it.
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        initialize_config_module("sam2", version_base="1.2")


def checkpoint_says_untrained(path: Path) -> bool:
    """Whether the checkpoint itself carries the random-weights marker (read without loading the
    tensors: the file is memory-mapped)."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a file that does not load is reported by build_sam2 with its own error
        return False
    return isinstance(content, dict) and bool(content.get("untrained", False))


@dataclass(frozen=True)
class LoadedModel:
    key: str
    spec: registry.ModelSpec
    sam: Any  # sam2.modeling.sam2_base.SAM2Base
    device: torch.device
    checkpoint: Path
    fingerprint: tuple[int, int]  # checkpoint (size, mtime_ns): a replaced file is a new model
    untrained: bool

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Wait for queued device work, so that a timing measures the work and not its launch."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def checkpoint_fingerprint(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


class ModelLoader:
    """Builds and keeps models, one per key. ``checkpoint_dir`` and ``device`` default to settings;
    ``publish`` says whether its models are the process's, reported as loaded by the registry."""

    def __init__(
        self, *, checkpoint_dir: Path | str | None = None, device: str | None = None, publish: bool = True
    ) -> None:
        self._checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self._device = device
        self._publish = publish
        self._models: dict[str, LoadedModel] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.builds = 0

    @property
    def device(self) -> torch.device:
        return resolve_device(self._device)

    def checkpoint_path(self, key: str) -> Path:
        spec = registry.MODELS[key]
        if self._checkpoint_dir is None:
            return spec.checkpoint_path()
        return self._checkpoint_dir / spec.checkpoint

    def get(self, key: str) -> LoadedModel:
        if key not in registry.MODELS:
            raise UnknownModel(f"Unknown model {key!r}: use one of {', '.join(registry.MODELS)}.")
        path = self.checkpoint_path(key)
        fingerprint = checkpoint_fingerprint(path)
        model = self._models.get(key)
        if model is not None and fingerprint in (None, model.fingerprint):
            return model  # a checkpoint removed after loading keeps serving from memory
        if fingerprint is None:
            raise ModelUnavailable(f"Model {key!r} has no checkpoint: {path.name} is not in the checkpoint folder.")
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            model = self._models.get(key)
            if model is not None and model.fingerprint == fingerprint:
                return model
            model = self._build(key, path, fingerprint)
            self._models[key] = model
        if self._publish:
            registry.mark_loaded(key, model)
        return model

    def loaded(self, key: str) -> LoadedModel | None:
        return self._models.get(key)

    def _build(self, key: str, path: Path, fingerprint: tuple[int, int]) -> LoadedModel:
        spec = registry.MODELS[key]
        device = self.device
        ensure_hydra()
        logger.info("Building SAM 2.1 %s from %s on %s", key, path, device)
        sam = build_sam2(spec.config, str(path), device=str(device), mode="eval")
        self.builds += 1
        untrained = registry.untrained_marker_for(path).is_file() or checkpoint_says_untrained(path)
        return LoadedModel(
            key=key,
            spec=spec,
            sam=sam,
            device=device,
            checkpoint=path,
            fingerprint=fingerprint,
            untrained=untrained,
        )

    def unload_all(self) -> None:
        with self._guard:
            keys = list(self._models)
            self._models.clear()
        for key in keys if self._publish else []:
            registry.mark_unloaded(key)


_default: ModelLoader | None = None
_default_lock = threading.Lock()


def get_loader() -> ModelLoader:
    global _default
    with _default_lock:
        if _default is None:
            _default = ModelLoader()
        return _default
