from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from sam2.modeling.sam2_base import SAM2Base

from inference import loading, registry
from inference.loading import ModelLoader, resolve_device
from inference.prompts import ModelUnavailable, UnknownModel

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # inside sam2


def test_it_resolves_the_device_setting() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ImproperlyConfigured):
        resolve_device("cuda:99")  # no machine here has a hundred GPUs, and this one may have none
    with pytest.raises(ImproperlyConfigured):
        resolve_device("gpu")


def test_it_writes_a_random_checkpoint_in_the_official_format_marked_untrained(sam2_checkpoint_dir: Path) -> None:
    path = sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt"
    content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    assert isinstance(content["model"], dict)
    assert "image_encoder.trunk.patch_embed.proj.weight" in content["model"]
    assert content["untrained"] is True
    assert (sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt.untrained").is_file()
    assert loading.checkpoint_says_untrained(path)


def test_it_reports_an_untrained_checkpoint_and_the_fallback_in_the_model_choices(
    settings: Any, sam2_checkpoint_dir: Path
) -> None:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir
    status = registry.status()
    assert status["available"] == ["tiny"]
    assert status["untrained"] == ["tiny"]
    choices = {choice["key"]: choice for choice in registry.choices()}
    assert set(choices) == {"tiny", "opencv"}
    assert choices["tiny"]["untrained"] is True
    assert choices["tiny"]["fallback"] is False
    assert choices["opencv"]["fallback"] is True


def test_it_refuses_to_replace_a_real_checkpoint_without_force(tmp_path: Path) -> None:
    real = tmp_path / "sam2.1_hiera_tiny.pt"
    real.write_bytes(b"an official checkpoint")
    with pytest.raises(CommandError, match="--force"):
        call_command("sam2_random_checkpoint", "--dir", str(tmp_path), stdout=io.StringIO())
    assert real.read_bytes() == b"an official checkpoint"


def test_it_builds_a_model_once_when_two_threads_ask_at_once(
    monkeypatch: pytest.MonkeyPatch, sam2_checkpoint_dir: Path
) -> None:
    real_build = loading.build_sam2
    builds: list[str] = []

    def counting_build(*args: Any, **kwargs: Any) -> Any:
        builds.append(threading.current_thread().name)
        time.sleep(0.2)  # widen the window in which a second thread could start its own build
        return real_build(*args, **kwargs)

    monkeypatch.setattr(loading, "build_sam2", counting_build)
    loader = ModelLoader(checkpoint_dir=sam2_checkpoint_dir, device="cpu")
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def load(name: str) -> None:
        barrier.wait()
        results[name] = loader.get("tiny")

    threads = [threading.Thread(target=load, args=(name,), name=name) for name in ("one", "two")]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert len(builds) == 1
        assert results["one"] is results["two"]
        model = results["one"]
        assert isinstance(model.sam, SAM2Base)
        assert model.device == torch.device("cpu")
        assert model.untrained is True
        assert next(model.sam.parameters()).dtype == torch.float32
        assert "tiny" in registry.loaded_keys()
        assert loader.get("tiny") is model  # later calls reuse it
        assert len(builds) == 1
    finally:
        loader.unload_all()
    assert "tiny" not in registry.loaded_keys()


def test_it_names_unknown_models_and_models_without_a_checkpoint(tmp_path: Path) -> None:
    loader = ModelLoader(checkpoint_dir=tmp_path, device="cpu", publish=False)
    with pytest.raises(UnknownModel) as unknown:
        loader.get("huge")
    assert unknown.value.code == "unknown_model"
    with pytest.raises(ModelUnavailable) as unavailable:
        loader.get("small")
    assert unavailable.value.code == "model_unavailable"
    assert "sam2.1_hiera_small.pt" in str(unavailable.value)
