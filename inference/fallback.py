"""The fallback segmenter for a machine without SAM 2 weights: OpenCV GrabCut seeded from the prompt.

Same interface as the SAM 2 segmenter (points, box, previous low-resolution logits in; mask, score,
low-resolution logits and timings out), so the studio works unchanged and only names the model as
the fallback. The "embedding" it keeps warm is the image scaled down to ``WORK_SIDE`` pixels on its
long side, which is where GrabCut runs; the mask is scaled back to the original size.

Seeding: a box makes everything outside it background and its inside probable foreground; points
alone make a disc around each positive click probable foreground and the rest probable background;
each click is a small sure seed of its own kind; earlier logits (``mask_input``) mark probable
foreground. Only the connected parts that hold a positive click are kept. The score is the
Bhattacharyya distance between the colour histograms inside and outside the mask (0: the mask does
not stand out from its surroundings, 1: it does completely); it is no calibrated quality estimate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inference import registry
from inference.embedding_cache import EmbeddingCache
from inference.prompts import LOW_RES_SIZE, Prompt, parse_prompt
from inference.results import Candidate, ImageSource, SegmentResult, load_rgb

WORK_SIDE = 320
ITERATIONS = 5
PROBABLE_RADIUS = 0.15  # of the work image's short side, around each positive click
SEED_RADIUS = 0.012
LOGIT_MAGNITUDE = 8.0


@dataclass(frozen=True)
class WorkImage:
    pixels: np.ndarray  # (h, w, 3) uint8, scaled down
    height: int  # original size
    width: int

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class GrabCutSegmenter:
    key = registry.FALLBACK_KEY
    untrained = False
    fallback = True

    def __init__(self, cache: EmbeddingCache, *, work_side: int = WORK_SIDE, iterations: int = ITERATIONS) -> None:
        self.cache = cache
        self.work_side = work_side
        self.iterations = iterations
        self._prepare_lock = threading.Lock()

    def cache_key(self, media_key: Hashable, image_version: Hashable) -> tuple[Hashable, ...]:
        return ("fallback", self.key, media_key, image_version)

    def prepare(self, rgb: np.ndarray) -> WorkImage:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.work_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            pixels = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        else:
            pixels = rgb.copy()
        return WorkImage(pixels=np.ascontiguousarray(pixels), height=height, width=width)

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
        encode_ms = 0.0
        work = self.cache.get(key, count=False)
        if work is not None:
            self.cache.record_hit()
            prompt = parse_prompt(points=points, box=box, mask_input=mask_input, width=work.width, height=work.height)
        else:
            with self._prepare_lock:
                work = self.cache.get(key, count=False)
                if work is not None:
                    self.cache.record_hit()
                    prompt = parse_prompt(
                        points=points, box=box, mask_input=mask_input, width=work.width, height=work.height
                    )
                else:
                    self.cache.record_miss()
                    encode_started = time.perf_counter()
                    rgb = load_rgb(image)
                    prompt = parse_prompt(
                        points=points, box=box, mask_input=mask_input, width=rgb.shape[1], height=rgb.shape[0]
                    )
                    work = self.prepare(rgb)
                    self.cache.put(key, work, work.nbytes)
                    encode_ms = _ms(time.perf_counter() - encode_started)
        decode_started = time.perf_counter()
        mask, score, logits = self.cut(work, prompt)
        decode_ms = _ms(time.perf_counter() - decode_started)
        candidate = Candidate(mask=mask, score=score, low_res_logits=logits)
        return SegmentResult(
            mask=mask,
            score=score,
            low_res_logits=logits,
            model=self.key,
            cache_hit=encode_ms == 0.0,
            timings={"encode_ms": encode_ms, "decode_ms": decode_ms, "total_ms": _ms(time.perf_counter() - started)},
            fallback=True,
            candidates=[candidate] if all_masks else None,
        )

    def cut(self, work: WorkImage, prompt: Prompt) -> tuple[np.ndarray, float, np.ndarray]:
        pixels = work.pixels
        h, w = pixels.shape[:2]
        sx, sy = w / work.width, h / work.height
        short = min(h, w)
        seeds = np.full((h, w), cv2.GC_PR_BGD, dtype=np.uint8)

        def at(x: float, y: float) -> tuple[int, int]:
            return (min(w - 1, int(x * sx)), min(h - 1, int(y * sy)))

        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            seeds[:] = cv2.GC_BGD
            left, top = int(x0 * sx), int(y0 * sy)
            right, bottom = max(left + 1, int(np.ceil(x1 * sx))), max(top + 1, int(np.ceil(y1 * sy)))
            seeds[top:bottom, left:right] = cv2.GC_PR_FGD
        else:
            for x, y in prompt.positive_points():
                cv2.circle(seeds, at(x, y), max(3, round(PROBABLE_RADIUS * short)), int(cv2.GC_PR_FGD), -1)
        if prompt.mask_input is not None:
            prior = cv2.resize(prompt.mask_input[0], (w, h), interpolation=cv2.INTER_LINEAR) > 0
            seeds[prior & (seeds == cv2.GC_PR_BGD)] = cv2.GC_PR_FGD
        radius = max(1, round(SEED_RADIUS * short))
        for x, y in prompt.positive_points():
            cv2.circle(seeds, at(x, y), radius, int(cv2.GC_FGD), -1)
        for x, y in prompt.negative_points():
            cv2.circle(seeds, at(x, y), radius, int(cv2.GC_BGD), -1)

        foreground = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))
        if not foreground.any():
            return self._empty(work)
        if not np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
            # A box over the whole image leaves no background sample: take the border as probable one.
            seeds[[0, -1], :] = np.where(seeds[[0, -1], :] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_BGD)
            seeds[:, [0, -1]] = np.where(seeds[:, [0, -1]] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_BGD)
        background_model = np.zeros((1, 65), np.float64)
        foreground_model = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means: the same prompt, the same mask
        try:
            cv2.grabCut(pixels, seeds, None, background_model, foreground_model, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            return self._empty(work)
        cut = np.isin(seeds, (cv2.GC_FGD, cv2.GC_PR_FGD))

        positives = [at(x, y) for x, y in prompt.positive_points()]
        if positives:
            count, components = cv2.connectedComponents(cut.astype(np.uint8), connectivity=8)
            keep = {int(components[y, x]) for x, y in positives} - {0}
            cut = np.isin(components, sorted(keep)) if keep else np.zeros_like(cut)

        score = self._separation(pixels, cut)
        full = cv2.resize(cut.astype(np.uint8) * 255, (work.width, work.height), interpolation=cv2.INTER_LINEAR)
        mask = full > 127
        probability = cv2.resize(cut.astype(np.float32), (LOW_RES_SIZE, LOW_RES_SIZE), interpolation=cv2.INTER_AREA)
        logits = ((probability * 2.0 - 1.0) * LOGIT_MAGNITUDE).astype(np.float32)[None]
        return mask, score, logits

    @staticmethod
    def _separation(pixels: np.ndarray, cut: np.ndarray) -> float:
        if cut.all() or not cut.any():
            return 0.0
        bins, ranges = [8, 8, 8], [0, 256, 0, 256, 0, 256]
        inside = cv2.calcHist([pixels], [0, 1, 2], cut.astype(np.uint8), bins, ranges)
        outside = cv2.calcHist([pixels], [0, 1, 2], (~cut).astype(np.uint8), bins, ranges)
        cv2.normalize(inside, inside, 1.0, 0.0, cv2.NORM_L1)
        cv2.normalize(outside, outside, 1.0, 0.0, cv2.NORM_L1)
        return round(float(cv2.compareHist(inside, outside, cv2.HISTCMP_BHATTACHARYYA)), 4)

    @staticmethod
    def _empty(work: WorkImage) -> tuple[np.ndarray, float, np.ndarray]:
        mask = np.zeros((work.height, work.width), dtype=bool)
        logits = np.full((1, LOW_RES_SIZE, LOW_RES_SIZE), -LOGIT_MAGNITUDE, dtype=np.float32)
        return mask, 0.0, logits
