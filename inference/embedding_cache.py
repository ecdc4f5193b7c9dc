"""The embedding cache: image features kept warm per (model, media item, image version).

An LRU bounded by a memory budget in bytes. Each entry's size is estimated from the tensors and
arrays it holds (elements × element size), which is what the features cost on the device they live
on (GPU memory for a CUDA model). An entry larger than the whole budget is not kept. Hits, misses
and evictions are counted for /healthz.

Free of torch: tensors are recognised by ``numel()`` / ``element_size()``, arrays by ``nbytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from django.conf import settings


def estimate_nbytes(value: Any) -> int:
    """Bytes held by the tensors and arrays in ``value`` (nested dicts, lists and tuples)."""
    if hasattr(value, "element_size") and hasattr(value, "numel"):
        return int(value.numel()) * int(value.element_size())
    if hasattr(value, "nbytes") and hasattr(value, "dtype"):
        return int(value.nbytes)
    if isinstance(value, Mapping):
        return sum(estimate_nbytes(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(estimate_nbytes(item) for item in value)
    return 0


class EmbeddingCache:
    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError("budget_bytes must not be negative")
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable, *, count: bool = True) -> Any | None:
        """The value for ``key`` (now the most recently used), or None. ``count=False`` leaves the
        counters alone, for a second look under a lock after a counted miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                if count:
                    self.misses += 1
                return None
            self._entries.move_to_end(key)
            if count:
                self.hits += 1
            return entry[0]

    def record_hit(self) -> None:
        with self._lock:
            self.hits += 1

    def record_miss(self) -> None:
        with self._lock:
            self.misses += 1

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def put(self, key: Hashable, value: Any, nbytes: int | None = None) -> bool:
        """Keep ``value``, evicting least recently used entries until it fits. Returns False (and
        keeps nothing) when the value alone is larger than the budget."""
        size = estimate_nbytes(value) if nbytes is None else int(nbytes)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.budget_bytes:
                return False
            while self._entries and self._bytes + size > self.budget_bytes:
                _, (_, evicted_size) = self._entries.popitem(last=False)
                self._bytes -= evicted_size
                self.evictions += 1
            self._entries[key] = (value, size)
            self._bytes += size
            return True

    def discard(self, predicate: Callable[[Hashable], bool]) -> int:
        """Drop every entry whose key matches (an image replaced, a model reloaded); not evictions."""
        with self._lock:
            doomed = [key for key in self._entries if predicate(key)]
            for key in doomed:
                _, size = self._entries.pop(key)
                self._bytes -= size
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int | float]:
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "budget_bytes": self.budget_bytes,
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
                "hit_rate": round(self.hits / lookups, 4) if lookups else 0.0,
            }


def configured_budget_bytes() -> int:
    return settings.INFERENCE_EMBEDDING_CACHE_MB * 1024 * 1024


_default: EmbeddingCache | None = None
_default_lock = threading.Lock()


def get_default_cache() -> EmbeddingCache:
    """The process's cache, shared by every segmenter; sized from settings when first used."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EmbeddingCache(configured_budget_bytes())
        return _default
