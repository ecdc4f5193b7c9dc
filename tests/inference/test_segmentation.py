"""The SAM 2 segmentation service against the sam2 package's own predictor, with a random-weight tiny
checkpoint on the CPU. Random weights make noisy masks; what is checked is that the service returns
exactly what ``SAM2ImagePredictor`` returns in-process, and that it encodes each image once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

from inference.embedding_cache import EmbeddingCache
from inference.loading import ModelLoader
from inference.prompts import ModelUnavailable, PromptError, UnknownModel
from inference.segmentation import SegmentationService

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # inside sam2

MIB = 1024 * 1024
TINY_ENTRY_BYTES = 16 * MIB  # float32 image embedding 256×64² + high-res features 32×256² + 64×128²


@pytest.fixture(scope="module")
def loader(sam2_checkpoint_dir: Path) -> ModelLoader:
    return ModelLoader(checkpoint_dir=sam2_checkpoint_dir, device="cpu", publish=False)


@pytest.fixture(scope="module")
def service(loader: ModelLoader) -> SegmentationService:
    return SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=256 * MIB))


@pytest.fixture(scope="module")
def raw(sam2_checkpoint_dir: Path, photo: np.ndarray) -> SAM2ImagePredictor:
    """The reference: the package's predictor built on its own from the same checkpoint, image set."""
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt"), "cpu")
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(photo)
    return predictor


@pytest.fixture
def set_image_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts calls of the real ``SAM2ImagePredictor.set_image``, which still runs."""
    calls: list[int] = []
    real = SAM2ImagePredictor.set_image

    def counting(self: SAM2ImagePredictor, image: Any) -> None:
        calls.append(1)
        real(self, image)

    monkeypatch.setattr(SAM2ImagePredictor, "set_image", counting)
    yield calls


PROMPTS = {
    "one click": {"points": [[300, 160, 1]], "box": None},
    "clicks and a box": {"points": [[300, 160, 1], [100, 100, 0]], "box": [170, 10, 420, 240]},
    "a box alone": {"points": None, "box": [170.5, 10.5, 420.5, 240.5]},
}


def _reference(raw: SAM2ImagePredictor, points: Any, box: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
    coords = None if not points else np.array([p[:2] for p in points], dtype=np.float32)
    labels = None if not points else np.array([p[2] for p in points], dtype=np.int32)
    return raw.predict(point_coords=coords, point_labels=labels, box=None if box is None else np.array(box), **kwargs)


@pytest.mark.parametrize("name", list(PROMPTS))
def test_it_returns_what_the_predictor_returns_for_the_same_prompt(
    name: str, service: SegmentationService, raw: SAM2ImagePredictor, photo: np.ndarray
) -> None:
    prompt = PROMPTS[name]
    result = service.segment(model="tiny", media_key="coffee", image_version=1, image=photo, **prompt)
    single_click = name == "one click"
    masks, scores, low_res = _reference(raw, prompt["points"], prompt["box"], multimask_output=single_click)
    assert len(scores) == (3 if single_click else 1)
    best = int(np.argmax(scores))
    assert result.mask.dtype == bool
    assert result.mask.shape == photo.shape[:2]
    assert np.array_equal(result.mask, masks[best].astype(bool))
    assert result.score == float(scores[best])
    assert np.array_equal(result.low_res_logits, low_res[best : best + 1])
    assert result.low_res_logits.shape == (1, 256, 256)
    assert result.untrained is True
    assert result.model == "tiny"
    assert result.timings["decode_ms"] > 0


def test_it_returns_every_mask_when_asked(service: SegmentationService, raw: SAM2ImagePredictor, photo: np.ndarray):
    result = service.segment(
        model="tiny", media_key="coffee", image_version=1, image=photo, points=[[250, 120, 1]], all_masks=True
    )
    masks, scores, low_res = _reference(raw, [[250, 120, 1]], None, multimask_output=True)
    assert result.candidates is not None and len(result.candidates) == 3
    for index, candidate in enumerate(result.candidates):
        assert np.array_equal(candidate.mask, masks[index].astype(bool))
        assert candidate.score == float(scores[index])
        assert np.array_equal(candidate.low_res_logits, low_res[index : index + 1])
    assert result.score == max(candidate.score for candidate in result.candidates)


def test_it_refines_an_object_with_its_previous_low_res_logits(
    service: SegmentationService, raw: SAM2ImagePredictor, photo: np.ndarray
) -> None:
    first = service.segment(model="tiny", media_key="coffee", image_version=1, image=photo, points=[[300, 160, 1]])
    points = [[300, 160, 1], [330, 200, 0]]
    refined = service.segment(
        model="tiny",
        media_key="coffee",
        image_version=1,
        image=photo,
        points=points,
        mask_input=first.low_res_logits,
    )
    masks, scores, low_res = _reference(raw, points, None, mask_input=first.low_res_logits, multimask_output=False)
    assert np.array_equal(refined.mask, masks[0].astype(bool))
    assert refined.score == float(scores[0])
    assert np.array_equal(refined.low_res_logits, low_res[0:1])
    unrefined = service.segment(model="tiny", media_key="coffee", image_version=1, image=photo, points=points)
    assert not np.array_equal(unrefined.low_res_logits, refined.low_res_logits)  # the logits did reach the model


def test_it_encodes_an_item_once_for_concurrent_and_later_prompts(
    loader: ModelLoader, photo: np.ndarray, set_image_calls: list[int]
) -> None:
    service = SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=256 * MIB))
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def click(x: int) -> None:
        barrier.wait()
        results.append(
            service.segment(model="tiny", media_key=41, image_version="v1", image=photo, points=[[x, 160, 1]])
        )

    threads = [threading.Thread(target=click, args=(x,)) for x in (300, 310)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2
    assert len(set_image_calls) == 1
    assert sorted(result.timings["encode_ms"] > 0 for result in results) == [False, True]

    later = service.segment(model="tiny", media_key=41, image_version="v1", image=photo, points=[[200, 100, 1]])
    assert len(set_image_calls) == 1
    assert later.cache_hit is True
    assert later.timings["encode_ms"] == 0
    stats = service.cache.stats()
    assert (stats["misses"], stats["hits"], stats["entries"]) == (1, 2, 1)
    assert stats["bytes"] == TINY_ENTRY_BYTES


def test_it_evicts_the_least_recently_used_embedding_at_the_budget(
    loader: ModelLoader, service: SegmentationService, photo: np.ndarray, set_image_calls: list[int]
) -> None:
    # Room for one tiny embedding. Item "a" starts warm with an embedding the shared service made
    # (one encode fewer on the CPU); item "b" is encoded here and pushes "a" out.
    warm = service.segment(model="tiny", media_key="coffee", image_version=1, image=photo, points=[[10, 10, 1]])
    set_image_calls.clear()  # whether the shared service had to encode first depends on test order
    small = SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=TINY_ENTRY_BYTES * 3 // 2))
    segmenter = small.segmenter("tiny")
    embedding = service.cache.get(service.segmenter("tiny").cache_key("coffee", 1), count=False)
    assert small.cache.put(segmenter.cache_key("a", 1), embedding, TINY_ENTRY_BYTES)
    again = small.segment(model="tiny", media_key="a", image_version=1, image=photo, points=[[10, 10, 1]])
    assert np.array_equal(again.mask, warm.mask)
    assert set_image_calls == []

    small.segment(model="tiny", media_key="b", image_version=1, image=photo, points=[[10, 10, 1]])
    assert len(set_image_calls) == 1
    assert not small.is_warm(model="tiny", media_key="a", image_version=1)
    assert small.is_warm(model="tiny", media_key="b", image_version=1)
    stats = small.cache.stats()
    assert (stats["evictions"], stats["entries"], stats["bytes"]) == (1, 1, TINY_ENTRY_BYTES)
    # A new image version is a new embedding; forgetting an item drops its embeddings.
    assert not small.is_warm(model="tiny", media_key="b", image_version=2)
    assert small.forget("b") == 1
    assert small.cache.stats()["entries"] == 0


BAD_PROMPTS = [
    ({"points": [[601, 10, 1]]}, "point_outside_image"),
    ({"points": [[10, -0.5, 1]]}, "point_outside_image"),
    ({"points": [[10, 10, 2]]}, "bad_label"),
    ({"points": [[10, 10, True]]}, "bad_label"),
    ({"points": [[10, float("nan"), 1]]}, "bad_point"),
    ({"points": [[10, 10]]}, "bad_point"),
    ({"points": "10,10,1"}, "bad_points"),
    ({"points": [[10, 10, 1]] * 65}, "too_many_points"),
    ({"points": None, "box": [50, 50, 20, 80]}, "bad_box"),
    ({"points": None, "box": [0, 0, 10]}, "bad_box"),
    ({"points": None, "box": [0, 0, 601, 100]}, "box_outside_image"),
    ({"points": [], "box": None}, "no_prompt"),
    ({"points": [[10, 10, 1]], "mask_input": np.zeros((64, 64))}, "bad_mask_input"),
]


@pytest.mark.parametrize(("prompt", "code"), BAD_PROMPTS, ids=[code for _, code in BAD_PROMPTS])
def test_it_refuses_a_bad_prompt_with_its_code_before_encoding(
    prompt: dict[str, Any], code: str, loader: ModelLoader, photo: np.ndarray, set_image_calls: list[int]
) -> None:
    service = SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=256 * MIB))
    with pytest.raises(PromptError) as refused:
        service.segment(model="tiny", media_key="new", image_version=1, image=photo, **prompt)
    assert refused.value.code == code
    assert isinstance(refused.value, ValueError)
    assert set_image_calls == []


def test_it_names_unknown_models_and_models_without_a_checkpoint(service: SegmentationService, photo: np.ndarray):
    with pytest.raises(UnknownModel) as unknown:
        service.segment(model="huge", media_key=1, image_version=1, image=photo, points=[[1, 1, 1]])
    assert unknown.value.code == "unknown_model"
    assert "opencv" in str(unknown.value)
    with pytest.raises(ModelUnavailable) as unavailable:
        service.segment(model="small", media_key=1, image_version=1, image=photo, points=[[1, 1, 1]])
    assert unavailable.value.code == "model_unavailable"
