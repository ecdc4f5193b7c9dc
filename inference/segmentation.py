"""Interactive segmentation: one image encode per (model, media item, image version), then only the
mask decoder for every later prompt.

``segment(...)`` takes points ``[[x, y, label]]`` and an optional box in original-image pixels, and
optionally the previous low-resolution logits of the object being refined (SAM's ``mask_input``, as
its own interactive loop feeds back). It returns the best-scoring mask, or every mask when asked.

The SAM 2 path is the package's own: ``SAM2ImagePredictor.set_image`` computes the features once,
they go into the embedding cache, and for each prompt they are put back into a predictor whose
``predict`` runs unchanged, so the result is exactly what the predictor returns in-process. Each
model has one predictor that encodes and one that decodes, each behind its own lock: a slow first
encode of one item does not hold up clicks on items that are already warm, and two prompts racing
for the same new item encode it once. Model key ``opencv`` is the GrabCut fallback, behind the same
interface.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sam2.sam2_image_predictor import SAM2ImagePredictor

from inference import registry
from inference.embedding_cache import EmbeddingCache, estimate_nbytes, get_default_cache
from inference.fallback import GrabCutSegmenter
from inference.loading import LoadedModel, ModelLoader, get_loader
from inference.prompts import Prompt, UnknownModel, parse_prompt
from inference.results import Candidate, ImageSource, SegmentResult, load_rgb


class Segmenter(Protocol):
    key: str
    untrained: bool
    fallback: bool

    def cache_key(self, media_key: Hashable, image_version: Hashable) -> tuple[Hashable, ...]: ...

    def segment(
        self,
        *,
        media_key: Hashable,
        image_version: Hashable,
        image: ImageSource,
        points: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask: bool | None = None,
        all_masks: bool = False,
    ) -> SegmentResult: ...


@dataclass(frozen=True)
class Embedding:
    features: dict[str, Any]  # the predictor's {"image_embed": ..., "high_res_feats": [...]}
    orig_hw: list[tuple[int, int]]

    @property
    def height(self) -> int:
        return int(self.orig_hw[0][0])

    @property
    def width(self) -> int:
        return int(self.orig_hw[0][1])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def choose_multimask(prompt: Prompt, multimask: bool | None, all_masks: bool) -> bool:
    """SAM's advice: three candidates for an ambiguous single click, one mask once the prompt says
    more (several points, a box, earlier logits). Asking for every mask asks for the three."""
    if multimask is not None:
        return multimask
    if all_masks:
        return True
    return prompt.n_points == 1 and prompt.box is None and prompt.mask_input is None


class Sam2Segmenter:
    fallback = False

    def __init__(self, loaded: LoadedModel, cache: EmbeddingCache) -> None:
        self.loaded = loaded
        self.key = loaded.key
        self.untrained = loaded.untrained
        self.cache = cache
        self._encoder = SAM2ImagePredictor(loaded.sam)
        self._decoder = SAM2ImagePredictor(loaded.sam)
        self._encode_lock = threading.Lock()
        self._decode_lock = threading.Lock()

    def cache_key(self, media_key: Hashable, image_version: Hashable) -> tuple[Hashable, ...]:
        return ("sam2", self.key, self.loaded.fingerprint, media_key, image_version)

    def _encode(self, rgb: np.ndarray) -> Embedding:
        # Called with the encode lock held.
        try:
            with self.loaded.autocast():
                self._encoder.set_image(rgb)
            self.loaded.synchronize()
            return Embedding(features=self._encoder._features, orig_hw=list(self._encoder._orig_hw))
        finally:
            self._encoder.reset_predictor()

    def decode(
        self, embedding: Embedding, prompt: Prompt, *, multimask: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``SAM2ImagePredictor.predict`` on the cached features: (masks, scores, low-res logits)."""
        with self._decode_lock:
            predictor = self._decoder
            predictor._features = embedding.features
            predictor._orig_hw = embedding.orig_hw
            predictor._is_batch = False
            predictor._is_image_set = True
            try:
                with self.loaded.autocast():
                    return predictor.predict(
                        point_coords=prompt.point_coords,
                        point_labels=prompt.point_labels,
                        box=prompt.box,
                        mask_input=prompt.mask_input,
                        multimask_output=multimask,
                    )
            finally:
                predictor.reset_predictor()

    def segment(
        self,
        *,
        media_key: Hashable,
        image_version: Hashable,
        image: ImageSource,
        points: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask: bool | None = None,
        all_masks: bool = False,
    ) -> SegmentResult:
        started = time.perf_counter()
        key = self.cache_key(media_key, image_version)
        encoded, encode_ms = False, 0.0
        embedding = self._warm(key)
        if embedding is None:
            # Single flight: whoever holds the lock encodes; a prompt that waited finds the result.
            with self._encode_lock:
                embedding = self._warm(key)
                if embedding is None:
                    self.cache.record_miss()
                    rgb = load_rgb(image)
                    # Refuse a bad prompt before spending an encode on it.
                    parse_prompt(points=points, box=box, mask_input=mask_input, width=rgb.shape[1], height=rgb.shape[0])
                    encode_started = time.perf_counter()
                    embedding = self._encode(rgb)
                    encoded, encode_ms = True, _ms(time.perf_counter() - encode_started)
                    self.cache.put(key, embedding, estimate_nbytes(embedding.features))
        prompt = parse_prompt(
            points=points, box=box, mask_input=mask_input, width=embedding.width, height=embedding.height
        )
        decode_started = time.perf_counter()
        masks, scores, low_res = self.decode(
            embedding, prompt, multimask=choose_multimask(prompt, multimask, all_masks)
        )
        decode_ms = _ms(time.perf_counter() - decode_started)
        best = int(np.argmax(scores))
        wanted = range(len(scores)) if all_masks else [best]
        candidates = {
            i: Candidate(mask=masks[i].astype(bool), score=float(scores[i]), low_res_logits=low_res[i : i + 1].copy())
            for i in wanted
        }
        chosen = candidates[best]
        return SegmentResult(
            mask=chosen.mask,
            score=chosen.score,
            low_res_logits=chosen.low_res_logits,
            model=self.key,
            cache_hit=not encoded,
            timings={"encode_ms": encode_ms, "decode_ms": decode_ms, "total_ms": _ms(time.perf_counter() - started)},
            untrained=self.untrained,
            candidates=list(candidates.values()) if all_masks else None,
        )

    def _warm(self, key: Hashable) -> Embedding | None:
        embedding = self.cache.get(key, count=False)
        if embedding is not None:
            self.cache.record_hit()
        return embedding


class SegmentationService:
    """Routes a prompt to its model's segmenter; all segmenters share one embedding cache."""

    def __init__(self, *, loader: ModelLoader | None = None, cache: EmbeddingCache | None = None) -> None:
        self.loader = loader if loader is not None else get_loader()
        self.cache = cache if cache is not None else get_default_cache()
        self.fallback = GrabCutSegmenter(self.cache)
        self._segmenters: dict[str, Sam2Segmenter] = {}
        self._lock = threading.Lock()

    def segmenter(self, model: str) -> Segmenter:
        if model == registry.FALLBACK_KEY:
            return self.fallback
        if not isinstance(model, str) or model not in registry.MODELS:
            known = ", ".join([*registry.MODELS, registry.FALLBACK_KEY])
            raise UnknownModel(f"Unknown model {model!r}: use one of {known}.")
        loaded = self.loader.get(model)
        with self._lock:
            segmenter = self._segmenters.get(model)
            if segmenter is None or segmenter.loaded is not loaded:
                if segmenter is not None:  # the checkpoint changed: its embeddings are stale
                    stale = ("sam2", model, segmenter.loaded.fingerprint)
                    self.cache.discard(lambda key: key[:3] == stale)
                segmenter = Sam2Segmenter(loaded, self.cache)
                self._segmenters[model] = segmenter
            return segmenter

    def segment(
        self,
        *,
        model: str,
        media_key: Hashable,
        image_version: Hashable,
        image: ImageSource,
        points: Any = None,
        box: Any = None,
        mask_input: Any = None,
        multimask: bool | None = None,
        all_masks: bool = False,
    ) -> SegmentResult:
        return self.segmenter(model).segment(
            media_key=media_key,
            image_version=image_version,
            image=image,
            points=points,
            box=box,
            mask_input=mask_input,
            multimask=multimask,
            all_masks=all_masks,
        )

    def is_warm(self, *, model: str, media_key: Hashable, image_version: Hashable) -> bool:
        return self.segmenter(model).cache_key(media_key, image_version) in self.cache

    def forget(self, media_key: Hashable) -> int:
        """Drop every embedding of a media item (its image replaced or deleted)."""
        return self.cache.discard(lambda key: key[-2] == media_key)


_default: SegmentationService | None = None
_default_lock = threading.Lock()


def get_service() -> SegmentationService:
    global _default
    with _default_lock:
        if _default is None:
            _default = SegmentationService()
        return _default


def segment(**kwargs: Any) -> SegmentResult:
    """``SegmentationService.segment`` on the process's service (keyword arguments only)."""
    return get_service().segment(**kwargs)
