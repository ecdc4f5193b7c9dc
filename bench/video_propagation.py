"""SAM 2 video propagation over the studio websocket of a real daphne against the raw video predictor.

On a throw-away DATA_DIR and SQLite database (DEBUG off, the in-memory channel layer,
INFERENCE_MODE=inline, a random-weight checkpoint from ``manage.py sam2_random_checkpoint`` unless
--checkpoint-dir holds one), a manager uploads a clip (the demo's slow pan over scikit-image's
coffee, --frames frames at --size) through the video upload service; daphne serves it. Over the
studio socket a ``video_prompt`` clicks the cup on frame 0 (building the video's state: not timed),
then a ``propagate`` runs forward through the clip; each frame's ``video_frame`` message is timed as
it arrives. In this process, sam2's own ``SAM2VideoPredictor`` runs on the same stored frames with
the same click: ``init_state`` + ``add_new_points_or_box`` (not timed), then ``propagate_in_video``,
each yielded frame timed. Rounds alternate who goes first, so a busy machine slows both alike.

Measured:
(a) per-frame time: the median gap between consecutive frames reaching the socket, against the
    median gap between consecutive frames sam2 yields. Goal: <= 1.10x.
(b) time to the first frame on screen: from sending ``propagate`` to the first ``video_frame``
    (the prompt frame, saved and announced), against sam2's first yield after the call.

    .venv/bin/python bench/video_propagation.py [--frames 8] [--size 512x384] [--rounds 2]
        [--model tiny] [--device auto] [--checkpoint-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SECRET_KEY", "bench-only")
if "--seed" not in sys.argv:  # the seeding subprocess is handed the bench's folder
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-video-propagation-")
    atexit.register(shutil.rmtree, os.environ["DATA_DIR"], ignore_errors=True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import warnings  # noqa: E402

import django  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script inside sam2
warnings.filterwarnings("ignore", category=UserWarning)
django.setup()

import numpy as np  # noqa: E402
from inference_socket_lib.client import StudioSocket  # noqa: E402
from inference_socket_lib.scene import ROOT, login, server_env, write_checkpoint  # noqa: E402
from studio_canvas_lib.scene import daphne  # noqa: E402

from inference import registry  # noqa: E402
from inference.loading import resolve_device  # noqa: E402

ORG = "bench-video"
PASSWORD = "bench-pw-1234"  # noqa: S105 - a throw-away database


# --- the scene (in a process of its own, with Django) -------------------------------------------------
def seed(frames: int, width: int, height: int) -> dict[str, Any]:
    import cv2
    import skimage.data
    from django.contrib.auth import get_user_model

    from annotation.models import Project
    from annotation.projects.services import label_create, project_create
    from annotation.video_files import make_demo_clip
    from annotation.video_services import media_create_video, video_frames_local_dir
    from platform_core.models import Membership, Organization, Role

    org = Organization.objects.create(name="Bench Video", slug=ORG)
    manager = get_user_model().objects.create_user("bench-manager", password=PASSWORD)
    Membership.objects.create(user=manager, organization=org, role=Role.MANAGER)
    project = project_create(organization=org, name="Clips", media_type=Project.MediaType.VIDEOS, created_by=manager)
    label = label_create(project=project, name="cup", color="#e6194b")
    photo = cv2.resize(skimage.data.coffee(), (width * 5 // 4, height * 5 // 4), interpolation=cv2.INTER_AREA)
    clip = make_demo_clip(photo, frames=frames, fps=12)
    video = media_create_video(project=project, name="pan.mp4", data=clip, uploaded_by=manager)
    assert video.state == "ready" and video.frame_count == frames, (video.state, video.state_detail)
    return {
        "label_id": label.pk,
        "media_id": video.pk,
        "path": f"/ws/o/{ORG}/studio/{video.pk}/",
        "frames_dir": str(video_frames_local_dir(video)),
        "width": video.width,
        "height": video.height,
    }


def prepare(env: dict[str, str], *, frames: int, width: int, height: int) -> dict[str, Any]:
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603
    done = subprocess.run(  # noqa: S603 - this very module
        [sys.executable, __file__, "--seed", str(frames), str(width), str(height)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the two sides ---------------------------------------------------------------------------------------
async def read_all(ws: StudioSocket, inbox: asyncio.Queue) -> None:
    """Read the socket all along (answering daphne's pings while sam2 runs here), arrival-stamped."""
    while True:
        text = await ws.receive()
        inbox.put_nowait((time.perf_counter(), json.loads(text)))


async def platform_round(ws: StudioSocket, inbox: asyncio.Queue, model: str, n: int) -> dict:
    """One propagation over the socket: arrival times of each frame, from the send."""
    request_id = f"run-{time.monotonic_ns()}"
    started = time.perf_counter()
    await ws.send({"type": "propagate", "request_id": request_id, "model": model, "frame": 0, "direction": "forward"})
    arrivals: list[float] = []
    while True:
        arrived, frame = await asyncio.wait_for(inbox.get(), 900)
        if frame.get("type") == "error":
            raise RuntimeError(f"the run failed: {frame}")
        if frame.get("type") == "video_frame":
            arrivals.append(arrived - started)
        if frame.get("type") == "run" and frame.get("state") in ("succeeded", "failed", "cancelled"):
            if frame["state"] != "succeeded" or len(arrivals) != n:
                raise RuntimeError(f"the run ended {frame['state']} after {len(arrivals)} of {n} frames: {frame}")
            return {"first": arrivals[0], "gaps": list(np.diff(arrivals))}


def raw_round(predictor: Any, state: Any) -> dict:
    started = time.perf_counter()
    arrivals = [time.perf_counter() - started for _ in predictor.propagate_in_video(state, start_frame_idx=0)]
    return {"first": arrivals[0], "gaps": list(np.diff(arrivals))}


def raw_predictor(scene: dict[str, Any], *, model: str, checkpoint_dir: Path, device: str, click: list[int]) -> tuple:
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    spec = registry.MODELS[model]
    predictor = build_sam2_video_predictor(spec.config, str(checkpoint_dir / spec.checkpoint), device=device)
    predictor.fill_hole_area = 0  # as the platform: hole filling needs sam2's CUDA extension
    context = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.inference_mode()
    with context:
        state = predictor.init_state(scene["frames_dir"])
        predictor.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=np.array([click[:2]], np.float32), labels=np.array([1], np.int32)
        )
    return predictor, state, context


async def measure(args: argparse.Namespace, base: str, scene: dict[str, Any], raw: tuple) -> dict[str, list]:
    port = int(base.rsplit(":", 1)[1])
    session = login(base, "bench-manager")
    ws = await StudioSocket.open(port=port, path=scene["path"], session=session)
    click = [scene["width"] // 2, scene["height"] * 2 // 3, 1]
    reply = await ws.prompt(
        {
            "type": "video_prompt",
            "request_id": "click",
            "model": args.model,
            "frame": 0,
            "label_id": scene["label_id"],
            "points": [click],
        }
    )
    assert reply.frame["track"] == 1
    predictor, state, context = raw
    inbox: asyncio.Queue = asyncio.Queue()
    reading = asyncio.ensure_future(read_all(ws, inbox))

    def raw_side() -> dict:
        with context:
            return raw_round(predictor, state)

    ours, theirs = [], []
    for number in range(args.rounds):
        if number % 2 == 0:
            ours.append(await platform_round(ws, inbox, args.model, args.frames))
            theirs.append(await asyncio.to_thread(raw_side))
        else:
            theirs.append(await asyncio.to_thread(raw_side))
            ours.append(await platform_round(ws, inbox, args.model, args.frames))
    reading.cancel()
    await ws.close()
    return {"ours": ours, "theirs": theirs}


def report(result: dict[str, list], args: argparse.Namespace, device: str, load: tuple[float, float]) -> None:
    ours_gaps = [gap for r in result["ours"] for gap in r["gaps"]]
    raw_gaps = [gap for r in result["theirs"] for gap in r["gaps"]]
    ours_gap, raw_gap = statistics.median(ours_gaps), statistics.median(raw_gaps)
    ours_first = statistics.median(r["first"] for r in result["ours"])
    raw_first = statistics.median(r["first"] for r in result["theirs"])
    ratio = ours_gap / raw_gap
    print(
        f"device {device}; model {args.model}; {args.frames} frames of {args.size}; {args.rounds} rounds; "
        f"load average {load[0]:.1f} before, {load[1]:.1f} after"
    )
    print(
        f"(a) per frame: platform over the socket {ours_gap * 1000:.0f} ms, raw propagate_in_video "
        f"{raw_gap * 1000:.0f} ms: {ratio:.3f}x (+{(ours_gap - raw_gap) * 1000:.0f} ms) — goal <= 1.10x: "
        f"{'met' if ratio <= 1.10 else 'NOT met'}"
    )
    print(
        f"(b) first frame: on screen {ours_first * 1000:.0f} ms after propagate was sent; "
        f"sam2's first yield {raw_first * 1000:.0f} ms after the call"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="512x384", help="frame size WxH (default 512x384)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", choices=list(registry.MODELS), default="tiny")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint-dir", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.frames < 2 or args.rounds < 1:
        parser.error("--frames takes 2 or more, --rounds 1 or more")
    device = str(resolve_device(args.device))
    data_dir = Path(os.environ["DATA_DIR"])
    checkpoint_dir = args.checkpoint_dir or data_dir / "checkpoints"
    env = server_env(data_dir, checkpoint_dir=checkpoint_dir, device=args.device)
    spec = registry.MODELS[args.model]
    if not (checkpoint_dir / spec.checkpoint).is_file():
        write_checkpoint(model=args.model, directory=checkpoint_dir, env=env)
    scene = prepare(env, frames=args.frames, width=width, height=height)
    click = [scene["width"] // 2, scene["height"] * 2 // 3, 1]
    raw = raw_predictor(scene, model=args.model, checkpoint_dir=checkpoint_dir, device=device, click=click)
    before = os.getloadavg()[0]
    with daphne(env, data_dir / "daphne.log") as base:
        result = asyncio.run(measure(args, base, scene, raw))
    report(result, args, device, (before, os.getloadavg()[0]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--seed"]:
        print(json.dumps(seed(*(int(v) for v in sys.argv[2:5]))))
    else:
        main()
