"""The phases bench/inference_socket.py times: warm clicks and first clicks over the studio socket
against the raw predictor in this process, call by call; box prompts and realistic masks for the
size of a mask frame; many sockets clicking at once against one alone."""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .client import Reply, StudioSocket


def prompt(request_id: str, target: dict, *, click: list[int] | None = None, box: list[int] | None = None) -> dict:
    """A new object (``target``: its ``model`` and ``label_id``) from one positive click or a box,
    as the studio sends it."""
    return {
        "type": "prompt",
        "request_id": request_id,
        **target,
        "object_id": None,
        "points": [click] if click is not None else None,
        "box": box,
    }


def sides(index: int) -> tuple[str, str]:
    # Which side goes first alternates, so that a busy machine slows both alike.
    return ("raw", "ours") if index % 2 == 0 else ("ours", "raw")


class RawPredictor:
    """``SAM2ImagePredictor`` on the same checkpoint and device, under the platform's autocast (bf16
    on a GPU), as bench/inference_predictor.py; the model is the one the package's ``build_sam2``
    makes, built here by ``inference.loading`` only to share its device and autocast rules."""

    def __init__(self, *, loaded: Any, image: np.ndarray) -> None:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self.loaded = loaded
        self.image = image
        self.predictor = SAM2ImagePredictor(loaded.sam)

    def set_image(self) -> float:
        started = time.perf_counter()
        with self.loaded.autocast():
            self.predictor.set_image(self.image)
        self.loaded.synchronize()
        return time.perf_counter() - started

    def predict(self, click: list[int]) -> tuple[float, np.ndarray]:
        """Seconds, and the best of the masks (the one a mask frame carries)."""
        started = time.perf_counter()
        with self.loaded.autocast():
            masks, scores, _ = self.predictor.predict(
                point_coords=np.array([click[:2]], np.float32), point_labels=np.array([click[2]], np.int32)
            )
        seconds = time.perf_counter() - started  # predict() hands back numpy: the device is done
        return seconds, masks[int(np.argmax(scores))]


@dataclass
class Compared:
    ours: list[Reply] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    same_masks: int = 0  # socket masks identical to the raw predictor's for the same click
    mask: np.ndarray | None = None  # the raw predictor's last mask


def _same(reply: Reply, mask: np.ndarray) -> bool:
    from annotation.masks import mask_decode

    return bool(np.array_equal(mask_decode(reply.frame["rle"]), mask.astype(bool)))


async def warm(ws: StudioSocket, raw: RawPredictor, target: dict, clicks: list[list[int]], n: int) -> Compared:
    """(a) New-object clicks on an item whose embedding is warm against ``predict()`` on a set image."""
    await ws.prompt(prompt("warm-up", target, click=clicks[0]))  # builds the model, encodes the item
    raw.set_image()
    for index, click in enumerate(clicks[1:4]):  # allocator, kernels: not timed
        raw.predict(click)
        await ws.prompt(prompt(f"warm-up-{index}", target, click=click))
    out = Compared()
    for index, click in enumerate(clicks[4 : 4 + n]):
        for side in sides(index):
            if side == "raw":
                seconds, mask = raw.predict(click)
                out.raw.append(seconds)
            else:
                reply = await ws.prompt(prompt(f"warm-{index}", target, click=click))
                if reply.timings["encode_ms"] != 0:
                    raise RuntimeError(f"warm click {index} encoded the item again: {reply.timings}")
                out.ours.append(reply)
        out.same_masks += _same(reply, mask)
    out.mask = mask.astype(bool)
    return out


async def cold(sockets: list[StudioSocket], raw: RawPredictor, target: dict, clicks: list[list[int]]) -> Compared:
    """(b) The first click on never-seen items against ``set_image()`` + ``predict()``."""
    out = Compared()
    for index, (ws, click) in enumerate(zip(sockets, clicks, strict=True)):
        for side in sides(index):
            if side == "raw":
                encode = raw.set_image()
                seconds, mask = raw.predict(click)
                out.raw.append(encode + seconds)
            else:
                reply = await ws.prompt(prompt(f"cold-{index}", target, click=click))
                if not reply.timings["encode_ms"] > 0:
                    raise RuntimeError(f"the first click on item {index} found a warm embedding: {reply.timings}")
                out.ours.append(reply)
        out.same_masks += _same(reply, mask)
    out.mask = mask.astype(bool)
    return out


async def boxes(ws: StudioSocket, target: dict, rng: np.random.Generator, n: int, shape: tuple[int, int]) -> list:
    """(c) Box prompts around object-sized regions (5-20 % of the image): (frame bytes, mask area share)."""
    from annotation.masks import rle_area

    height, width = shape
    out = []
    for index in range(n):
        share = rng.uniform(0.05, 0.20)
        aspect = rng.uniform(0.6, 1.6)
        w = min(width - 2, int(math.sqrt(share * height * width * aspect)))
        h = min(height - 2, int(share * height * width / w))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        reply = await ws.prompt(prompt(f"box-{index}", target, box=[x0, y0, x0 + w, y0 + h]))
        out.append((reply.size, rle_area(reply.frame["rle"]) / (height * width)))
    return out


def blob(share: float, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth object-like mask: an ellipse with a wavy outline covering about ``share`` of the image."""
    height, width = shape
    waves = [(3, 0.12), (5, 0.06), (9, 0.03)]
    aspect = rng.uniform(0.55, 1.0)
    cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
    # Area of r(θ) = R·(1 + Σ a sin(kθ + φ)) is π R² (1 + Σ a² / 2), times the aspect.
    radius = math.sqrt(share * height * width / (math.pi * aspect * (1 + sum(a * a for _, a in waves) / 2)))
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    dx, dy = xx - cx, (yy - cy) / aspect
    angle = np.arctan2(dy, dx)
    wobble = 1 + sum(a * np.sin(k * angle + rng.uniform(0, 2 * math.pi)) for k, a in waves)
    return np.hypot(dx, dy) <= radius * wobble


def encode_ms(mask: np.ndarray, runs: int = 5) -> float:
    """The median time of ``annotation.masks.mask_encode`` on ``mask`` here, in ms: for scale, as a
    part of what a mask frame's timings leave to the server besides the model."""
    from annotation.masks import mask_encode

    times = []
    for _ in range(runs):
        started = time.perf_counter()
        mask_encode(mask)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def realistic_frames(template: dict[str, Any], rng: np.random.Generator, shape: tuple[int, int]) -> list:
    """(c) The mask frame the platform sends, for smooth masks of 5-20 % of the image: a real frame
    with its ``rle`` and ``bbox`` those of the blob (``annotation.masks``), as the socket encodes it
    (``json.dumps``). (share, frame bytes, rle characters, mask_encode ms) for each."""
    from annotation.masks import mask_encode, rle_area, rle_bbox

    out = []
    for share in (0.05, 0.10, 0.15, 0.20):
        mask = blob(share, rng, shape)
        rle = mask_encode(mask)
        frame = {**template, "rle": rle, "bbox": rle_bbox(rle)}
        size = len(json.dumps(frame))
        out.append((rle_area(rle) / (shape[0] * shape[1]), size, len(rle["counts"]), encode_ms(mask)))
    return out


async def alone(ws: StudioSocket, target: dict, clicks: list[list[int]]) -> list[Reply]:
    """(d) One socket clicking with nobody else about."""
    return [await ws.prompt(prompt(f"alone-{i}", target, click=click)) for i, click in enumerate(clicks)]


async def together(
    sockets: list[StudioSocket], target: dict, clicks: list[list[list[int]]], think_s: float
) -> tuple[list[Reply], float]:
    """(d) Every socket clicking at once, each its own clicks back to back (``think_s`` apart);
    the replies and the wall time of the whole."""
    go = asyncio.Event()

    async def client(number: int, ws: StudioSocket) -> list[Reply]:
        await go.wait()
        replies = []
        for index, click in enumerate(clicks[number]):
            replies.append(await ws.prompt(prompt(f"together-{number}-{index}", target, click=click)))
            if think_s:
                await asyncio.sleep(think_s)
        return replies

    running = [asyncio.ensure_future(client(number, ws)) for number, ws in enumerate(sockets)]
    await asyncio.sleep(0)
    started = time.perf_counter()
    go.set()
    done = await asyncio.gather(*running)
    return [reply for replies in done for reply in replies], time.perf_counter() - started
