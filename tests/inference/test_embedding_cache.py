from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.embedding_cache import EmbeddingCache, estimate_nbytes

MIB = 1024 * 1024


def test_it_estimates_the_bytes_of_sam2_tiny_features_from_their_tensors() -> None:
    features = {
        "image_embed": torch.zeros(1, 256, 64, 64),
        "high_res_feats": [torch.zeros(1, 32, 256, 256), torch.zeros(1, 64, 128, 128)],
    }
    assert estimate_nbytes(features) == 16 * MIB
    half = {
        key: value.to(torch.bfloat16) if isinstance(value, torch.Tensor) else value for key, value in features.items()
    }
    half["high_res_feats"] = [tensor.to(torch.bfloat16) for tensor in features["high_res_feats"]]
    assert estimate_nbytes(half) == 8 * MIB
    assert estimate_nbytes((np.zeros((10, 10), np.uint8), "not an array")) == 100


def test_it_evicts_the_least_recently_used_entry_at_the_budget() -> None:
    cache = EmbeddingCache(budget_bytes=3 * MIB)
    for key in "abc":
        assert cache.put(key, key, MIB)
    assert cache.get("a") == "a"  # a is now the most recently used; b the least
    assert cache.put("d", "d", MIB)
    assert "b" not in cache
    assert all(key in cache for key in "acd")
    stats = cache.stats()
    assert stats["evictions"] == 1
    assert stats["entries"] == 3
    assert stats["bytes"] == 3 * MIB <= stats["budget_bytes"]
    assert cache.put("big", "big", 2 * MIB)  # least recently used first: c, then a
    assert "c" not in cache and "a" not in cache and "d" in cache
    assert cache.stats()["evictions"] == 3


def test_it_keeps_nothing_larger_than_the_budget() -> None:
    cache = EmbeddingCache(budget_bytes=MIB)
    cache.put("small", 1, MIB // 2)
    assert cache.put("huge", 2, 2 * MIB) is False
    assert "huge" not in cache
    assert "small" in cache  # nothing was evicted for an entry that could never fit
    assert cache.stats()["evictions"] == 0


def test_it_counts_hits_and_misses_and_replaces_an_entry_without_double_counting_its_bytes() -> None:
    cache = EmbeddingCache(budget_bytes=10 * MIB)
    assert cache.get("x") is None
    cache.put("x", 1, MIB)
    cache.put("x", 2, 2 * MIB)
    assert cache.get("x") == 2
    assert cache.get("x", count=False) == 2
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["bytes"], stats["entries"]) == (1, 1, 2 * MIB, 1)
    assert stats["hit_rate"] == 0.5


def test_it_discards_the_entries_a_predicate_names() -> None:
    cache = EmbeddingCache(budget_bytes=10 * MIB)
    cache.put(("sam2", "tiny", 1, "v1"), 1, MIB)
    cache.put(("sam2", "tiny", 2, "v1"), 2, MIB)
    assert cache.discard(lambda key: key[2] == 1) == 1
    assert ("sam2", "tiny", 1, "v1") not in cache
    assert cache.stats()["bytes"] == MIB
    assert cache.stats()["evictions"] == 0


def test_it_refuses_a_negative_budget() -> None:
    with pytest.raises(ValueError):
        EmbeddingCache(budget_bytes=-1)
