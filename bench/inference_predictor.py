"""SAM 2 click -> mask through the platform's segmentation service against the raw predictor.

(a) warm: ``segment()`` on an item whose embedding is cached, against ``SAM2ImagePredictor.predict()``
    on an image already set;
(b) cold: ``segment()`` on an item never seen, against ``set_image()`` + ``predict()``.

Same checkpoint, device, image (a demo photograph at 1024 × 768) and clicks on both sides; calls
alternate one by one, and which side goes first alternates too, so that a busy machine slows both
alike. On a GPU both run under bf16 autocast.
Prints medians, p95 and the ratios against the goals (a) <= 1.15x and <= +5 ms, (b) <= 1.10x. Without
a checkpoint for the model, a random-weight one is written to a temporary folder: speed does not
depend on the weights.

    .venv/bin/python bench/inference_predictor.py [--model tiny] [--warm 40] [--cold 5]
                                                  [--checkpoint-dir DIR] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="annotation-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import warnings  # noqa: E402

import django  # noqa: E402

warnings.filterwarnings("ignore", message="No directory at")
warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script inside sam2

django.setup()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import torch  # noqa: E402
from sam2.build_sam import build_sam2  # noqa: E402
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402

from inference import registry  # noqa: E402
from inference.checkpoints import write_random_checkpoint  # noqa: E402
from inference.embedding_cache import EmbeddingCache  # noqa: E402
from inference.loading import ModelLoader, resolve_device  # noqa: E402
from inference.segmentation import SegmentationService  # noqa: E402


def summary(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.median(ms)), float(np.percentile(ms, 95))


def row(name: str, times: list[float]) -> str:
    median, p95 = summary(times)
    return f"  {name:<34} median {median:9.1f} ms   p95 {p95:9.1f} ms   (n={len(times)})"


def compare(label: str, ours: list[float], raw: list[float], goal_ratio: float, goal_ms: float | None) -> None:
    ours_median, ours_p95 = summary(ours)
    raw_median, raw_p95 = summary(raw)
    ratio, extra = ours_median / raw_median, ours_median - raw_median
    goal = f"goal <= {goal_ratio:.2f}x" + (f" and <= +{goal_ms:.0f} ms" if goal_ms is not None else "")
    met = ratio <= goal_ratio and (goal_ms is None or extra <= goal_ms)
    print(
        f"  {label}: median ratio {ratio:.3f}x ({extra:+.1f} ms), p95 ratio {ours_p95 / raw_p95:.3f}x; "
        f"{goal}: {'met' if met else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(registry.MODELS), default="tiny")
    parser.add_argument("--warm", type=int, default=40, help="warm clicks per side")
    parser.add_argument("--cold", type=int, default=5, help="first clicks per side")
    parser.add_argument("--checkpoint-dir", type=Path, help="default: a temporary folder with random weights")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    spec = registry.MODELS[args.model]
    directory = args.checkpoint_dir or Path(tempfile.mkdtemp(prefix="sam2-bench-"))
    checkpoint = directory / spec.checkpoint
    if not checkpoint.is_file():
        write_random_checkpoint(key=args.model, directory=directory)
    device = resolve_device(args.device)

    loader = ModelLoader(checkpoint_dir=directory, device=str(device), publish=False)
    service = SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=4 * 1024**3))
    loaded = loader.get(args.model)
    raw = SAM2ImagePredictor(build_sam2(spec.config, str(checkpoint), device=str(device)))

    image = cv2.resize(skimage.data.coffee(), (1024, 768), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    clicks = [[int(x), int(y), 1] for x, y in zip(rng.integers(0, 1024, 400), rng.integers(0, 768, 400), strict=True)]

    def raw_predict(click: list[int]) -> None:
        with loaded.autocast():
            raw.predict(point_coords=np.array([click[:2]], np.float32), point_labels=np.array([1], np.int32))

    def raw_set_image() -> None:
        with loaded.autocast():
            raw.set_image(image)
        loaded.synchronize()

    load_before = os.getloadavg()[0]
    print(
        f"SAM 2.1 {args.model} ({'random weights' if loaded.untrained else 'trained'}) on {device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, image 1024 × 768, "
        f"load average {load_before:.1f} on {os.cpu_count()} CPUs"
    )

    # (b) first click: a new item each time against set_image + predict.
    cold_raw: list[float] = []
    cold_ours: list[float] = []
    raw_set_image()  # warm-up of both paths (allocator, kernels), not timed
    service.segment(model=args.model, media_key="warm-up", image_version=1, image=image, points=[clicks[0]])
    for index in range(args.cold):
        click = clicks[index + 1]
        for side in ("raw", "ours") if index % 2 == 0 else ("ours", "raw"):  # alternate who goes first
            started = time.perf_counter()
            if side == "raw":
                raw_set_image()
                raw_predict(click)
                cold_raw.append(time.perf_counter() - started)
            else:
                result = service.segment(
                    model=args.model, media_key=f"cold-{index}", image_version=1, image=image, points=[click]
                )
                cold_ours.append(time.perf_counter() - started)
                assert result.timings["encode_ms"] > 0

    # (a) warm clicks on an item whose embedding is cached / an image that is set.
    raw_set_image()
    service.segment(model=args.model, media_key="warm", image_version=1, image=image, points=[clicks[0]])
    for click in clicks[:3]:  # not timed
        raw_predict(click)
        service.segment(model=args.model, media_key="warm", image_version=1, image=image, points=[click])
    warm_raw: list[float] = []
    warm_ours: list[float] = []
    decode_ms: list[float] = []
    for index, click in enumerate(clicks[10 : 10 + args.warm]):
        for side in ("raw", "ours") if index % 2 == 0 else ("ours", "raw"):
            started = time.perf_counter()
            if side == "raw":
                raw_predict(click)
                warm_raw.append(time.perf_counter() - started)
            else:
                result = service.segment(
                    model=args.model, media_key="warm", image_version=1, image=image, points=[click]
                )
                warm_ours.append(time.perf_counter() - started)
                assert result.cache_hit and result.timings["encode_ms"] == 0
                decode_ms.append(result.timings["decode_ms"] / 1000)

    # The fallback, for scale: GrabCut on the same photograph (no SAM 2 weights needed).
    fallback: list[float] = []
    service.segment(model="opencv", media_key="warm", image_version=1, image=image, points=[clicks[0]])
    for click in clicks[10 : 10 + min(args.warm, 10)]:
        started = time.perf_counter()
        service.segment(model="opencv", media_key="warm", image_version=1, image=image, points=[click])
        fallback.append(time.perf_counter() - started)

    print("(a) warm click -> mask")
    print(row("raw predictor.predict()", warm_raw))
    print(row("service segment() (cache hit)", warm_ours))
    print(row("  of which decode_ms (its predict)", decode_ms))
    compare("(a)", warm_ours, warm_raw, 1.15, 5.0)
    print("(b) first click on an image")
    print(row("raw set_image() + predict()", cold_raw))
    print(row("service segment() (cache miss)", cold_ours))
    compare("(b)", cold_ours, cold_raw, 1.10, None)
    print("fallback (OpenCV GrabCut), warm click")
    print(row("service segment(model='opencv')", fallback))
    stats = service.cache.stats()
    print(
        f"cache: {stats['entries']} entries, {stats['bytes'] / 1048576:.0f} MiB, hits {stats['hits']}, "
        f"misses {stats['misses']}, evictions {stats['evictions']}; "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
