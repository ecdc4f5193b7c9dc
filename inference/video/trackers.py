"""Video trackers: prompts on any frame for several objects, then masks propagated frame by frame.

Two trackers share one interface (``Tracker``):

- ``Sam2Tracker``: SAM 2.1's video predictor (``build_sam2_video_predictor``), called exactly as its
  own examples do: ``init_state`` on a folder of ``<int>.jpg`` frames, ``add_new_points_or_box`` /
  ``add_new_mask`` on a frame, ``propagate_in_video`` from a frame forward or backward. A mask is a
  pixel whose logit is above 0, as in those examples.
- ``FlowTracker``: the fallback without SAM 2 weights. Clicks or a box on a frame are cut out with
  the classical GrabCut segmenter; masks move from frame to frame along OpenCV's dense optical flow
  (Farnebäck). Named as the fallback wherever it is offered.

A tracker's *state* belongs to one video and holds its prompts and outputs; propagation is a
generator, so a caller can stop after any frame (the early stop) and persist each frame as it comes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from PIL import Image

from inference import registry
from inference.embedding_cache import estimate_nbytes
from inference.fallback import GrabCutSegmenter
from inference.loading import (
    LoadedModel,
    ModelLoader,
    checkpoint_fingerprint,
    checkpoint_says_untrained,
    ensure_hydra,
    get_loader,
)
from inference.prompts import ModelUnavailable, Prompt, PromptError, UnknownModel

FLOW_KEY = "optical-flow"
FLOW_NAME = "Optical flow (OpenCV), the fallback without SAM 2 weights"


@dataclass(frozen=True)
class FrameMasks:
    """The masks of one frame: ``{object id: boolean (H, W) array}``."""

    frame: int
    masks: dict[int, np.ndarray]


def frame_paths(frames_dir: Path) -> list[Path]:
    """The folder's ``<int>.jpg`` frames in frame order, checked to run 0, 1, 2 … without a gap."""
    paths = sorted(
        (p for p in frames_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg") and p.stem.isdigit()),
        key=lambda p: int(p.stem),
    )
    if not paths:
        raise PromptError(f"No frames in {frames_dir.name}.", code="no_frames")
    if [int(p.stem) for p in paths] != list(range(len(paths))):
        raise PromptError("The frames are not numbered 0, 1, 2 … without a gap.", code="bad_frames")
    return paths


class Tracker(Protocol):
    key: str
    fallback: bool
    untrained: bool

    def start(self, frames_dir: Path, *, async_loading: bool = False) -> Any: ...

    def num_frames(self, state: Any) -> int: ...

    def add_prompt(self, state: Any, *, frame: int, obj_id: int, prompt: Prompt) -> dict[int, np.ndarray]: ...

    def add_mask(self, state: Any, *, frame: int, obj_id: int, mask: np.ndarray) -> dict[int, np.ndarray]: ...

    def propagate(
        self, state: Any, *, start: int, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameMasks]: ...

    def reset(self, state: Any) -> None: ...

    def nbytes(self, state: Any) -> int: ...


def _check_frame(frame: int, num_frames: int) -> None:
    if not isinstance(frame, int) or isinstance(frame, bool) or not 0 <= frame < num_frames:
        raise PromptError(f"Frame {frame!r} is not a frame of this video (0 … {num_frames - 1}).", code="bad_frame")


# --- SAM 2 ------------------------------------------------------------------------------------------
def _float_memories_on_cpu(predictor_class: type) -> type:
    """sam2 stores each frame's memory features as bfloat16. On a GPU the model runs under bf16
    autocast and that is harmless; on the CPU, attention over memories that are all bfloat16 (a
    backward run after a forward one) fails with "mat1 and mat2 must have the same dtype". Keeping
    them as float32 on the CPU gives the same values (bfloat16 → float32 is exact, and where sam2
    mixes them with float32 pointers it promotes to float32 anyway) and lets every direction run."""

    class CpuVideoPredictor(predictor_class):
        def _run_single_frame_inference(self, *args: Any, **kwargs: Any) -> Any:
            current_out, pred_masks = super()._run_single_frame_inference(*args, **kwargs)
            if current_out.get("maskmem_features") is not None:
                current_out["maskmem_features"] = current_out["maskmem_features"].float()
            return current_out, pred_masks

        def _run_memory_encoder(self, *args: Any, **kwargs: Any) -> Any:
            features, position = super()._run_memory_encoder(*args, **kwargs)
            return features.float(), position

    CpuVideoPredictor.__name__ = CpuVideoPredictor.__qualname__ = f"Cpu{predictor_class.__name__}"
    return CpuVideoPredictor


class VideoPredictorLoader:
    """Builds SAM 2.1 video predictors, one per model key, from the same checkpoints as the image
    models (and rebuilt when a checkpoint changes, like them)."""

    def __init__(self, loader: ModelLoader | None = None) -> None:
        self._loader = loader
        self._predictors: dict[str, tuple[LoadedModel, Any]] = {}
        self._lock = threading.Lock()

    @property
    def loader(self) -> ModelLoader:
        return self._loader or get_loader()

    def get(self, key: str) -> tuple[LoadedModel, Any]:
        """The model's video predictor, built on first use (the image model is not built)."""
        from sam2.build_sam import build_sam2_video_predictor

        if key not in registry.MODELS:
            raise UnknownModel(f"Unknown model {key!r}: use one of {', '.join(registry.MODELS)}.")
        path = self.loader.checkpoint_path(key)
        fingerprint = checkpoint_fingerprint(path)
        with self._lock:
            built = self._predictors.get(key)
            if built is not None and fingerprint in (None, built[0].fingerprint):
                return built
            if fingerprint is None:
                raise ModelUnavailable(f"Model {key!r} has no checkpoint: {path.name} is not in the checkpoint folder.")
            device = self.loader.device
            ensure_hydra()
            spec = registry.MODELS[key]
            predictor = build_sam2_video_predictor(spec.config, str(path), device=str(device), mode="eval")
            # Hole filling needs sam2's CUDA extension, which is not built: without it sam2 warns on
            # every frame and skips the step anyway.
            predictor.fill_hole_area = 0
            if device.type == "cpu":
                predictor.__class__ = _float_memories_on_cpu(type(predictor))
            loaded = LoadedModel(
                key=key,
                spec=spec,
                sam=predictor,
                device=device,
                checkpoint=path,
                fingerprint=fingerprint,
                untrained=registry.untrained_marker_for(path).is_file() or checkpoint_says_untrained(path),
            )
            built = (loaded, predictor)
            self._predictors[key] = built
        return built


class Sam2Tracker:
    fallback = False

    def __init__(self, loaded: LoadedModel, predictor: Any) -> None:
        self.loaded = loaded
        self.predictor = predictor
        self.key = loaded.key
        self.untrained = loaded.untrained
        # One predictor serves every state of this model; sam2's calls are not re-entrant. A plain
        # lock: a propagation stopped early may be closed (and release it) from another thread.
        self.lock = threading.Lock()

    def start(self, frames_dir: Path, *, async_loading: bool = False) -> dict[str, Any]:
        frame_paths(frames_dir)
        with self.lock, torch.inference_mode(), self.loaded.autocast():
            return self.predictor.init_state(str(frames_dir), async_loading_frames=async_loading)

    def num_frames(self, state: dict[str, Any]) -> int:
        return int(state["num_frames"])

    def _masks(self, obj_ids: list[int], logits: torch.Tensor) -> dict[int, np.ndarray]:
        masks = (logits > 0.0).cpu().numpy()
        return {int(obj_id): masks[index, 0] for index, obj_id in enumerate(obj_ids)}

    def add_prompt(self, state: dict[str, Any], *, frame: int, obj_id: int, prompt: Prompt) -> dict[int, np.ndarray]:
        _check_frame(frame, self.num_frames(state))
        with self.lock, torch.inference_mode(), self.loaded.autocast():
            _, obj_ids, logits = self.predictor.add_new_points_or_box(
                state,
                frame_idx=frame,
                obj_id=obj_id,
                points=prompt.point_coords,
                labels=prompt.point_labels,
                box=prompt.box,
            )
            return self._masks(obj_ids, logits)

    def add_mask(self, state: dict[str, Any], *, frame: int, obj_id: int, mask: np.ndarray) -> dict[int, np.ndarray]:
        _check_frame(frame, self.num_frames(state))
        with self.lock, torch.inference_mode(), self.loaded.autocast():
            _, obj_ids, logits = self.predictor.add_new_mask(state, frame_idx=frame, obj_id=obj_id, mask=mask)
            return self._masks(obj_ids, logits)

    def propagate(
        self, state: dict[str, Any], *, start: int, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameMasks]:
        _check_frame(start, self.num_frames(state))
        with self.lock, torch.inference_mode(), self.loaded.autocast():
            for frame, obj_ids, logits in self.predictor.propagate_in_video(
                state, start_frame_idx=start, max_frame_num_to_track=max_frames, reverse=reverse
            ):
                yield FrameMasks(int(frame), self._masks(obj_ids, logits))

    def reset(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.predictor.reset_state(state)

    def nbytes(self, state: dict[str, Any]) -> int:
        return estimate_nbytes(state)


# --- optical flow (the fallback) ------------------------------------------------------------------------
@dataclass
class FlowState:
    frames: list[Path]
    height: int
    width: int
    # The masks given on a frame (prompted or drawn): {frame: {object id: mask}}; they win over flow.
    given: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    # The latest mask of each object on each frame it has been tracked to.
    tracked: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    _grey: dict[int, np.ndarray] = field(default_factory=dict)

    def rgb(self, frame: int) -> np.ndarray:
        with Image.open(self.frames[frame]) as image:
            return np.asarray(image.convert("RGB"))

    def grey(self, frame: int) -> np.ndarray:
        if frame not in self._grey:
            if len(self._grey) > 8:  # neighbours only: a long clip is not held in memory
                self._grey.pop(next(iter(self._grey)))
            self._grey[frame] = cv2.cvtColor(self.rgb(frame), cv2.COLOR_RGB2GRAY)
        return self._grey[frame]


class FlowTracker:
    key = FLOW_KEY
    fallback = True
    untrained = False

    def __init__(self, segmenter: GrabCutSegmenter | None = None) -> None:
        from inference.embedding_cache import EmbeddingCache

        self.segmenter = segmenter or GrabCutSegmenter(EmbeddingCache(0))

    def start(self, frames_dir: Path, *, async_loading: bool = False) -> FlowState:
        frames = frame_paths(frames_dir)
        with Image.open(frames[0]) as first:
            width, height = first.size
        return FlowState(frames=frames, height=height, width=width)

    def num_frames(self, state: FlowState) -> int:
        return len(state.frames)

    def _frame_masks(self, state: FlowState, frame: int) -> dict[int, np.ndarray]:
        return {**state.tracked.get(frame, {}), **state.given.get(frame, {})}

    def add_prompt(self, state: FlowState, *, frame: int, obj_id: int, prompt: Prompt) -> dict[int, np.ndarray]:
        _check_frame(frame, self.num_frames(state))
        work = self.segmenter.prepare(state.rgb(frame))
        mask, _, _ = self.segmenter.cut(work, prompt)
        return self.add_mask(state, frame=frame, obj_id=obj_id, mask=mask)

    def add_mask(self, state: FlowState, *, frame: int, obj_id: int, mask: np.ndarray) -> dict[int, np.ndarray]:
        _check_frame(frame, self.num_frames(state))
        mask = np.asarray(mask).astype(bool)
        if mask.shape != (state.height, state.width):
            raise PromptError(
                f"The mask is {mask.shape[1]} × {mask.shape[0]}; the video is {state.width} × {state.height}.",
                code="bad_mask",
            )
        state.given.setdefault(frame, {})[obj_id] = mask
        return self._frame_masks(state, frame)

    def _warp(self, state: FlowState, mask: np.ndarray, source: int, target: int) -> np.ndarray:
        # Flow from the target frame back to the source: where each target pixel came from.
        flow = cv2.calcOpticalFlowFarneback(state.grey(target), state.grey(source), None, 0.5, 3, 15, 3, 5, 1.2, 0)
        ys, xs = np.mgrid[0 : state.height, 0 : state.width].astype(np.float32)
        moved = cv2.remap(
            mask.astype(np.float32),
            xs + flow[..., 0],
            ys + flow[..., 1],
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        return moved >= 0.5

    def propagate(
        self, state: FlowState, *, start: int, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameMasks]:
        total = self.num_frames(state)
        _check_frame(start, total)
        steps = total if max_frames is None else max_frames
        end = max(start - steps, 0) if reverse else min(start + steps, total - 1)
        order = range(start, end - 1, -1) if reverse else range(start, end + 1)
        current = self._carried_to(state, start, reverse=reverse)
        previous = start
        for frame in order:
            if frame != start:
                moved = {obj: self._warp(state, mask, previous, frame) for obj, mask in current.items()}
                current = {**moved, **state.given.get(frame, {})}
            state.tracked[frame] = dict(current)
            previous = frame
            yield FrameMasks(frame, dict(current))

    def _carried_to(self, state: FlowState, start: int, *, reverse: bool) -> dict[int, np.ndarray]:
        """The masks on ``start``: its own, else those of the nearest frame before it (after it, going
        backward) that has masks, carried along the flow to it."""
        current = self._frame_masks(state, start)
        if current:
            return current
        known = sorted({*state.given, *state.tracked})
        upstream = [f for f in known if (f > start if reverse else f < start)]
        if not upstream:
            raise PromptError(f"Frame {start} has no object to propagate: prompt one first.", code="nothing_to_track")
        source = min(upstream) if reverse else max(upstream)
        current = self._frame_masks(state, source)
        step = -1 if reverse else 1
        for frame in range(source + step, start + step, step):
            current = {obj: self._warp(state, mask, frame - step, frame) for obj, mask in current.items()}
        return current

    def reset(self, state: FlowState) -> None:
        state.given.clear()
        state.tracked.clear()

    def nbytes(self, state: FlowState) -> int:
        return estimate_nbytes([state.given, state.tracked, state._grey])


# --- choosing a tracker --------------------------------------------------------------------------------
_predictors = VideoPredictorLoader()


def get_tracker(model: str, *, predictors: VideoPredictorLoader | None = None) -> Tracker:
    """The tracker for a model key: a SAM 2.1 size, or ``optical-flow``."""
    if model == FLOW_KEY:
        return FlowTracker()
    if model not in registry.MODELS:
        known = ", ".join([*registry.MODELS, FLOW_KEY])
        raise PromptError(f"Unknown video model {model!r}: use one of {known}.", code="unknown_model")
    loaded, predictor = (predictors or _predictors).get(model)
    return _sam2_trackers(loaded, predictor)


_trackers: dict[int, Sam2Tracker] = {}
_trackers_lock = threading.Lock()


def _sam2_trackers(loaded: LoadedModel, predictor: Any) -> Sam2Tracker:
    # One tracker (and so one lock) per predictor object.
    with _trackers_lock:
        tracker = _trackers.get(id(predictor))
        if tracker is None or tracker.predictor is not predictor:
            tracker = Sam2Tracker(loaded, predictor)
            _trackers[id(predictor)] = tracker
        return tracker
