"""The parts of the prompt path that need no model: the object logits a process keeps for
refinement, and the inference worker command's refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from inference.dispatch import WorkerRoutes, worker_channel
from inference.prompting import ObjectLogits


def logits(value: float) -> np.ndarray:
    return np.full((1, 256, 256), value, dtype=np.float32)


def test_it_gives_back_an_objects_logits_only_for_the_version_and_model_that_made_them() -> None:
    kept = ObjectLogits()
    kept.put(17, model="tiny", version=2, logits=logits(1.0))
    assert np.array_equal(kept.get(17, model="tiny", version=2), logits(1.0))
    assert kept.get(17, model="tiny", version=3) is None  # changed by other hands since
    assert kept.get(17, model="small", version=2) is None
    assert kept.get(18, model="tiny", version=1) is None
    kept.put(17, model="tiny", version=3, logits=logits(2.0))
    assert np.array_equal(kept.get(17, model="tiny", version=3), logits(2.0))
    assert len(kept) == 1


def test_it_drops_the_least_recently_used_objects_logits_beyond_its_size() -> None:
    kept = ObjectLogits(max_entries=2)
    kept.put(1, model="tiny", version=1, logits=logits(1.0))
    kept.put(2, model="tiny", version=1, logits=logits(2.0))
    assert kept.get(1, model="tiny", version=1) is not None  # 1 is now the most recently used
    kept.put(3, model="tiny", version=1, logits=logits(3.0))
    assert kept.get(2, model="tiny", version=1) is None
    assert kept.get(1, model="tiny", version=1) is not None and kept.get(3, model="tiny", version=1) is not None


def test_it_forgets_every_item_routed_to_a_worker_that_stopped_answering() -> None:
    routes = WorkerRoutes()
    routes.set(1, "tiny", worker_channel("a"))
    routes.set(2, "tiny", worker_channel("a"))
    routes.set(2, "small", worker_channel("b"))
    assert routes.forget_worker(worker_channel("a")) == 2
    assert (routes.get(1, "tiny"), routes.get(2, "tiny"), routes.get(2, "small")) == (None, None, "inference.b")


def test_it_refuses_to_start_a_worker_on_the_in_memory_channel_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with pytest.raises(CommandError, match="REDIS_URL"):
        call_command("inference_worker")


def test_it_refuses_a_worker_id_that_cannot_name_a_channel() -> None:
    with pytest.raises(CommandError, match="--id"):
        call_command("inference_worker", "--id", "gpu 1!")
