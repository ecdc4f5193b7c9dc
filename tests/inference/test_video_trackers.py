"""Video trackers on a folder of ``<int>.jpg`` frames: SAM 2.1 tiny (random weights) gives exactly
the masks of sam2's own video predictor driven in this process with the same frames and prompts;
the optical-flow fallback carries a mask along a moving square; bad frames and prompts are refused
with their reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sam2.build_sam import build_sam2_video_predictor

from inference import registry
from inference.loading import ModelLoader
from inference.prompts import PromptError, parse_prompt
from inference.video.trackers import FLOW_KEY, FlowTracker, VideoPredictorLoader, frame_paths, get_tracker

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

WIDTH, HEIGHT = 96, 64
SQUARE = 20
STEP = 3  # pixels the square moves right per frame


def square_frames(folder: Path, count: int) -> list[np.ndarray]:
    """A bright textured square moving right over a dark textured background, as JPEG frames."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    background = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    texture = rng.integers(180, 255, (SQUARE, SQUARE, 3), dtype=np.uint8)
    truths = []
    for index in range(count):
        frame = background.copy()
        x = 10 + STEP * index
        frame[20 : 20 + SQUARE, x : x + SQUARE] = texture
        Image.fromarray(frame).save(folder / f"{index}.jpg", quality=95)
        truth = np.zeros((HEIGHT, WIDTH), dtype=bool)
        truth[20 : 20 + SQUARE, x : x + SQUARE] = True
        truths.append(truth)
    return truths


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def click(x: float, y: float, label: int = 1):
    return parse_prompt(points=[[x, y, label]], width=WIDTH, height=HEIGHT)


# --- SAM 2 ---------------------------------------------------------------------------------------------
def test_sam2_tracker_gives_the_raw_video_predictor_masks(sam2_checkpoint_dir: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    square_frames(frames, 3)
    loader = VideoPredictorLoader(ModelLoader(checkpoint_dir=sam2_checkpoint_dir, device="cpu", publish=False))
    tracker = get_tracker("tiny", predictors=loader)
    assert not tracker.fallback and tracker.untrained

    state = tracker.start(frames)
    assert tracker.num_frames(state) == 3
    on_prompt = tracker.add_prompt(state, frame=0, obj_id=1, prompt=click(20, 30))
    on_prompt.update(tracker.add_prompt(state, frame=0, obj_id=2, prompt=click(70, 10)))
    ours = list(tracker.propagate(state, start=0))

    spec = registry.MODELS["tiny"]
    raw = build_sam2_video_predictor(spec.config, str(sam2_checkpoint_dir / spec.checkpoint), device="cpu")
    raw.fill_hole_area = 0
    raw_state = raw.init_state(str(frames))
    _, _, first = raw.add_new_points_or_box(
        raw_state, frame_idx=0, obj_id=1, points=np.array([[20, 30]], np.float32), labels=np.array([1], np.int32)
    )
    _, _, second = raw.add_new_points_or_box(
        raw_state, frame_idx=0, obj_id=2, points=np.array([[70, 10]], np.float32), labels=np.array([1], np.int32)
    )
    expected = list(raw.propagate_in_video(raw_state, start_frame_idx=0))

    assert np.array_equal(on_prompt[1], (first[0, 0] > 0).numpy())
    assert np.array_equal(on_prompt[2], (second[1, 0] > 0).numpy())
    assert [result.frame for result in ours] == [frame for frame, _, _ in expected] == [0, 1, 2]
    for result, (_, obj_ids, logits) in zip(ours, expected, strict=True):
        assert sorted(result.masks) == list(obj_ids) == [1, 2]
        for index, obj_id in enumerate(obj_ids):
            mask = result.masks[obj_id]
            assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == bool
            assert np.array_equal(mask, (logits[index, 0] > 0).numpy())

    # Stopping after the first frame is a generator left unfinished: nothing else is computed, and
    # the tracker serves the next call (its lock is free again).
    stopped = tracker.propagate(state, start=2, reverse=True)
    assert next(stopped).frame == 2
    stopped.close()
    assert [r.frame for r in tracker.propagate(state, start=1, max_frames=1)] == [1, 2]


def test_sam2_tracker_refuses_an_unknown_model_and_bad_frames(sam2_checkpoint_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="Unknown video model"):
        get_tracker("huge")
    frames = tmp_path / "frames"
    square_frames(frames, 2)
    loader = VideoPredictorLoader(ModelLoader(checkpoint_dir=sam2_checkpoint_dir, device="cpu", publish=False))
    tracker = get_tracker("tiny", predictors=loader)
    state = tracker.start(frames)
    with pytest.raises(PromptError, match="not a frame of this video"):
        tracker.add_prompt(state, frame=2, obj_id=1, prompt=click(5, 5))
    with pytest.raises(PromptError, match="not a frame of this video"):
        list(tracker.propagate(state, start=-1))


# --- frames -----------------------------------------------------------------------------------------------
def test_frames_must_be_numbered_without_a_gap(tmp_path: Path) -> None:
    square_frames(tmp_path / "ok", 3)
    assert [p.name for p in frame_paths(tmp_path / "ok")] == ["0.jpg", "1.jpg", "2.jpg"]
    (tmp_path / "ok" / "1.jpg").unlink()
    with pytest.raises(PromptError, match="without a gap"):
        frame_paths(tmp_path / "ok")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PromptError, match="No frames"):
        frame_paths(tmp_path / "empty")


# --- optical flow -----------------------------------------------------------------------------------------
def test_flow_tracker_carries_a_mask_along_the_moving_square(tmp_path: Path) -> None:
    truths = square_frames(tmp_path / "frames", 5)
    tracker = get_tracker(FLOW_KEY)
    assert isinstance(tracker, FlowTracker) and tracker.fallback
    state = tracker.start(tmp_path / "frames")
    tracker.add_mask(state, frame=0, obj_id=4, mask=truths[0])
    results = list(tracker.propagate(state, start=0))
    assert [r.frame for r in results] == [0, 1, 2, 3, 4]
    assert np.array_equal(results[0].masks[4], truths[0])
    for result, truth in zip(results[1:], truths[1:], strict=True):
        assert iou(result.masks[4], truth) > 0.75
        # It moved: closer to where the square is now than to where it started.
        assert iou(result.masks[4], truth) > iou(result.masks[4], truths[0])

    # Backward from the last frame, after a correction there.
    tracker.add_mask(state, frame=4, obj_id=4, mask=truths[4])
    backward = list(tracker.propagate(state, start=4, reverse=True, max_frames=2))
    assert [r.frame for r in backward] == [4, 3, 2]
    assert iou(backward[-1].masks[4], truths[2]) > 0.75


def test_flow_tracker_segments_a_click_and_refuses_what_it_cannot_track(tmp_path: Path) -> None:
    truths = square_frames(tmp_path / "frames", 3)
    tracker = FlowTracker()
    state = tracker.start(tmp_path / "frames")
    with pytest.raises(PromptError, match="no object to propagate"):
        list(tracker.propagate(state, start=1))
    masks = tracker.add_prompt(state, frame=1, obj_id=1, prompt=click(10 + STEP + 10, 30))
    assert masks[1].shape == (HEIGHT, WIDTH)
    assert masks[1][30, 10 + STEP + 10]  # the clicked pixel is in the object
    with pytest.raises(PromptError, match="the video is 96 × 64"):
        tracker.add_mask(state, frame=0, obj_id=2, mask=np.zeros((10, 10), bool))
    assert iou(masks[1], truths[1]) > 0.3
