"""SAM 2 click -> mask over the studio websocket of a real daphne against the raw predictor.

On a throw-away DATA_DIR and SQLite database (DEBUG off, the in-memory channel layer,
INFERENCE_MODE=inline, a random-weight checkpoint from ``manage.py sam2_random_checkpoint`` unless
--checkpoint-dir holds one), an organisation's annotators each get a task with one copy of a 1024 × 768
photograph (bench/inference_predictor.py's coffee, uploaded as JPEG); daphne
(``python -m platform_core.server``) serves it; the first annotator signs in through the login
form. The prompts are the studio's ``prompt`` messages (a new object from one click or a box), the
replies its ``mask`` frames, each mask saved as an annotation before it is sent. Measured:

(a) a click on an item whose embedding is warm, send -> mask frame read, against
    ``SAM2ImagePredictor.predict()`` in this process on an image already set (same checkpoint,
    device, pixels and click; calls alternate one by one, who goes first alternates too, so a busy
    machine slows both alike). Goal: median <= 1.15x and <= +5 ms.
(b) the first click on a never-seen item (the encode included) against ``set_image()`` +
    ``predict()``. Goal: median <= 1.10x.
(c) bytes of a mask frame (its JSON text). Random weights give noise-like masks, so besides the
    frames that came back, smooth object-like masks of 5-20 % of the image go through
    ``annotation.masks.mask_encode`` into a real frame. Goal: <= 10 KB (10,000 bytes).
(d) many sockets clicking back to back at once, each its own annotator and item with a warm
    embedding (as many annotators on different items work), against one socket alone.
    Goal: p95 <= 2x the single client's. On a CPU each extra item costs an encode of seconds (ten
    and more on a busy machine), so there the sockets spread over the items (a) and (b) warmed,
    several per item (each item's annotator), unless --items says otherwise.

Each mask frame's ``timings`` (queue_ms, encode_ms, decode_ms, total_ms from the message's arrival
to the reply) are printed with what is left: the server's look-ups, RLE and save, and the
transport (round trip minus total_ms). Goals unmet exit 0; an error frame or a server that does
not start exits non-zero.

    .venv/bin/python bench/inference_socket.py [--model tiny] [--warm 20] [--cold 3] [--clients 20]
        [--rounds 3] [--alone 10] [--think-ms 0] [--items N] [--device auto] [--checkpoint-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bench-inference-socket-")
atexit.register(shutil.rmtree, os.environ["DATA_DIR"], ignore_errors=True)  # database, media, checkpoint
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import warnings  # noqa: E402

import django  # noqa: E402

warnings.filterwarnings("ignore", message="No directory at")
warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.script inside sam2
# The decoded image is read-only, in the platform as here; torchvision copies it either way.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

django.setup()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from inference_socket_lib import phases  # noqa: E402
from inference_socket_lib.client import StudioSocket  # noqa: E402
from inference_socket_lib.report import report, summary  # noqa: E402
from inference_socket_lib.scene import HEIGHT, WIDTH, login, prepare, server_env, write_checkpoint  # noqa: E402
from studio_canvas_lib.scene import daphne  # noqa: E402

from inference import registry  # noqa: E402
from inference.loading import ModelLoader, resolve_device  # noqa: E402
from inference.results import load_rgb  # noqa: E402

BOXES = 6


async def measure(args: argparse.Namespace, base: str, scene: dict[str, Any], raw: phases.RawPredictor) -> dict:
    port = int(base.rsplit(":", 1)[1])
    items = scene["items"]
    sessions = [item["session"] for item in items]
    sessions[0] = login(base, items[0]["username"])
    target = {"model": args.model, "label_id": scene["label_id"]}
    rng = np.random.default_rng(0)

    def clicks(n: int) -> list[list[int]]:
        return [[int(x), int(y), 1] for x, y in zip(rng.integers(0, WIDTH, n), rng.integers(0, HEIGHT, n), strict=True)]

    async def open_on(index: int) -> StudioSocket:
        return await StudioSocket.open(port=port, path=items[index]["path"], session=sessions[index])

    out: dict[str, Any] = {}
    ws = await open_on(0)
    out["warm"] = await phases.warm(ws, raw, target, clicks(4 + args.warm), args.warm)
    cold_sockets = [await open_on(1 + index) for index in range(args.cold)]
    out["cold"] = await phases.cold(cold_sockets, raw, target, clicks(args.cold))
    out["boxes"] = await phases.boxes(ws, target, rng, BOXES, (HEIGHT, WIDTH))
    out["realistic"] = phases.realistic_frames(out["warm"].ours[0].frame, rng, (HEIGHT, WIDTH))
    out["noise_encode_ms"] = phases.encode_ms(out["warm"].mask)
    for socket in [ws, *cold_sockets]:
        await socket.close()

    sockets = [await open_on(number % args.items) for number in range(args.clients)]
    for index in range(1 + args.cold, args.items):  # items nobody clicked yet: encoded now, not timed
        await sockets[index].prompt(phases.prompt(f"encode-{index}", target, click=clicks(1)[0]))
    out["alone"] = await phases.alone(sockets[0], target, clicks(args.alone))
    out["together"], out["wall"] = await phases.together(
        sockets, target, [clicks(args.rounds) for _ in sockets], args.think_ms / 1000
    )
    out["pushed"] = sum(socket.pushed for socket in sockets)
    for socket in sockets:
        await socket.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(registry.MODELS), default="tiny")
    parser.add_argument("--warm", type=int, default=20, help="(a) warm clicks per side (default 20)")
    parser.add_argument("--cold", type=int, default=3, help="(b) first clicks per side, on as many items (default 3)")
    parser.add_argument("--clients", type=int, default=20, help="(d) sockets clicking at once (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="(d) clicks per socket (default 3)")
    parser.add_argument("--alone", type=int, default=10, help="(d) clicks of the socket alone (default 10)")
    parser.add_argument("--think-ms", type=float, default=0, help="(d) pause between a socket's clicks")
    parser.add_argument(
        "--items",
        type=int,
        help="(d) items the sockets spread over (default: one each on a "
        "GPU; on a CPU the 1 + --cold items (a) and (b) warmed)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--checkpoint-dir", type=Path, help="default: a temporary folder with random weights")
    args = parser.parse_args()
    if min(args.warm, args.cold, args.clients, args.rounds, args.alone) < 1:
        parser.error("--warm, --cold, --clients, --rounds and --alone take 1 or more")

    started = time.perf_counter()
    device = resolve_device(args.device)
    default_items = args.clients if device.type == "cuda" else 1 + args.cold
    args.items = max(1, min(args.items or default_items, args.clients))
    data_dir = Path(os.environ["DATA_DIR"])
    spec = registry.MODELS[args.model]
    checkpoint_dir = args.checkpoint_dir or data_dir / "checkpoints"
    env = server_env(data_dir, checkpoint_dir=checkpoint_dir, device=args.device)
    log = data_dir / "daphne.log"
    if not (checkpoint_dir / spec.checkpoint).is_file():
        write_checkpoint(model=args.model, directory=checkpoint_dir, env=env)
    scene = prepare(data_dir, env, items=max(1 + args.cold, args.items))
    loaded = ModelLoader(checkpoint_dir=checkpoint_dir, device=str(device), publish=False).get(args.model)
    image = load_rgb(Path(scene["items"][0]["file"]))  # the pixels the server decodes from the stored file
    raw = phases.RawPredictor(loaded=loaded, image=image)
    load_before = os.getloadavg()[0]
    with daphne(env, log) as base:
        try:
            result = asyncio.run(measure(args, base, scene, raw))
        except BaseException:
            print(f"daphne's log, last lines:\n{log.read_text()[-4000:]}", file=sys.stderr)
            raise
    print(
        f"inference_socket: SAM 2.1 {args.model} ({'random weights' if loaded.untrained else 'trained'}) on "
        f"{device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads; daphne, SQLite, in-memory "
        f"channel layer; {len(scene['items'])} items of a {WIDTH} x {HEIGHT} JPEG photograph "
        f"({scene['image_bytes'] / 1024:.0f} KiB); load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    summary(report(args, result, loaded.untrained))
    print(f"  (bench ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
