"""The GrabCut fallback: clicks and boxes become sensible masks without any SAM 2 weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.embedding_cache import EmbeddingCache
from inference.fallback import GrabCutSegmenter
from inference.loading import ModelLoader
from inference.prompts import PromptError
from inference.segmentation import SegmentationService
from tests.inference.images import disc_image

MIB = 1024 * 1024


def _coverage(mask: np.ndarray, disc: np.ndarray) -> tuple[float, float]:
    """(share of the disc covered, share of the ground covered)."""
    return float((mask & disc).sum() / disc.sum()), float((mask & ~disc).sum() / (~disc).sum())


@pytest.fixture
def service(tmp_path: Path) -> SegmentationService:
    # An empty checkpoint folder: the machine has no SAM 2 weights at all.
    return SegmentationService(
        loader=ModelLoader(checkpoint_dir=tmp_path, device="cpu", publish=False),
        cache=EmbeddingCache(budget_bytes=64 * MIB),
    )


def test_it_turns_a_click_in_a_disc_into_the_disc(service: SegmentationService) -> None:
    image, disc = disc_image()
    result = service.segment(model="opencv", media_key=1, image_version=1, image=image, points=[[170, 110, 1]])
    covered, ground = _coverage(result.mask, disc)
    assert covered > 0.9
    assert ground < 0.02
    assert result.mask.dtype == bool and result.mask.shape == disc.shape
    assert result.fallback is True and result.model == "opencv"
    assert 0.5 < result.score <= 1.0  # the disc stands out from the ground


def test_it_turns_a_click_off_centre_into_the_whole_disc(service: SegmentationService) -> None:
    image, disc = disc_image()
    result = service.segment(model="opencv", media_key=1, image_version=1, image=image, points=[[210, 140, 1]])
    covered, ground = _coverage(result.mask, disc)
    assert covered > 0.9 and ground < 0.02


def test_it_segments_the_disc_inside_a_box(service: SegmentationService) -> None:
    image, disc = disc_image()
    result = service.segment(model="opencv", media_key=1, image_version=1, image=image, box=[100, 40, 240, 180])
    covered, ground = _coverage(result.mask, disc)
    assert covered > 0.9 and ground < 0.02


def test_it_keeps_a_negative_click_out_of_the_mask(service: SegmentationService) -> None:
    image, disc = disc_image()
    result = service.segment(
        model="opencv", media_key=1, image_version=1, image=image, points=[[170, 110, 1], [210, 110, 0]]
    )
    assert not result.mask[110, 210]
    assert result.mask[110, 170]


def test_it_scales_a_large_image_down_and_the_mask_back_up() -> None:
    image, disc = disc_image(height=960, width=1280, centre=(680, 440), radius=220)
    segmenter = GrabCutSegmenter(EmbeddingCache(budget_bytes=64 * MIB), work_side=384)
    result = segmenter.segment(media_key=1, image_version=1, image=image, points=[[680, 440, 1]])
    assert result.mask.shape == (960, 1280)
    covered, ground = _coverage(result.mask, disc)
    assert covered > 0.9 and ground < 0.02
    work = segmenter.cache.get(segmenter.cache_key(1, 1), count=False)
    assert max(work.pixels.shape[:2]) == 384  # GrabCut ran on the small copy


def test_it_serves_the_same_interface_as_sam2(service: SegmentationService) -> None:
    image, disc = disc_image()
    first = service.segment(model="opencv", media_key=7, image_version=1, image=image, points=[[170, 110, 1]])
    assert first.cache_hit is False and first.timings["encode_ms"] > 0
    assert first.low_res_logits.shape == (1, 256, 256) and first.low_res_logits.dtype == np.float32
    # Refining feeds the previous logits back, as with SAM 2; the image is not prepared again.
    refined = service.segment(
        model="opencv",
        media_key=7,
        image_version=1,
        image=lambda: pytest.fail("a warm item must not load its image again"),
        points=[[170, 110, 1], [40, 40, 0]],
        mask_input=first.low_res_logits,
        all_masks=True,
    )
    assert refined.cache_hit is True and refined.timings["encode_ms"] == 0
    assert refined.candidates is not None and len(refined.candidates) == 1
    assert _coverage(refined.mask, disc)[0] > 0.9
    assert service.cache.stats()["hits"] == 1 and service.cache.stats()["misses"] == 1


def test_it_refuses_bad_prompts_with_the_same_codes(service: SegmentationService) -> None:
    image, _ = disc_image()
    with pytest.raises(PromptError) as outside:
        service.segment(model="opencv", media_key=1, image_version=1, image=image, points=[[321, 10, 1]])
    assert outside.value.code == "point_outside_image"
    with pytest.raises(PromptError) as box:
        service.segment(model="opencv", media_key=1, image_version=1, image=image, box=[10, 10, 5, 5])
    assert box.value.code == "bad_box"
