"""The studio's canvas with 500 objects on a 4000 × 3000 photograph, driven by Playwright.

On a throw-away DATA_DIR and SQLite database (migrated, static files collected, DEBUG off, as in
production) this makes an organisation with a manager and an annotator, a project with six mask
labels, one 4000 × 3000 photograph (``media_create_image``), a task holding it assigned to the
annotator, and 500 objects on it through ``annotation_create``: half polygons, half brush-drawn
blobs (thick wandering strokes, some with holes or in several parts), of extents from 16 to 720 px
on a log scale, in every label, made with ``annotation.masks``. Then daphne
(``python -m platform_core.server``) serves it; Debian's chromium (headless, software canvas)
signs in as the annotator and measures:

1. first paint: navigation start to the studio's ``studio:masks-painted`` performance mark (set
   after the first frame drawn once the annotations arrived, so every mask is on it), over several
   loads, with the moments the HTML arrived, the studio socket opened and the annotations arrived
   on it; beside it, the studio's mask layer alone, cold (decode 500 RLE into sprites and draw
   them) and warm (sprites kept, as every later frame);
2. brush strokes: a stroke (mouse down, 20 moves, up) with the brush that adds to an existing,
   selected object, timed from the browser's pointerup to the end of the next frame drawn (mask
   redrawn), and to the store's acknowledgement (``store.whenIdle()``: the server answered the
   save with the object's new version over the studio socket); the frames drawn during the
   stroke are timed too;
3. undo: Ctrl+Z after each stroke, from the keydown to the next frame drawn and to the
   acknowledgement of the write that brings the previous mask back.

As a reference, a minimal page with none of the studio's code decodes the same 500 RLE strings
into one RGBA buffer of 4000 × 3000 and puts it on a canvas (``putImageData``): the bare work of
drawing the masks, to which the studio's figures are compared. Times are medians and p95 (nearest
rank) in milliseconds, measured inside the page with ``performance.now()`` and event time stamps.

    .venv/bin/python bench/studio_canvas.py [--loads N] [--strokes N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [  # as tests/browser/conftest.py: a closed network and a root user
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}

ORG = "bench-lab"
PASSWORD = "bench-pw-1234"  # noqa: S105 - a throw-away database
WIDTH, HEIGHT = 4000, 3000
OBJECTS = 500
LABELS = [
    ("person", "#e6194b"),
    ("car", "#4363d8"),
    ("bicycle", "#3cb44b"),
    ("tree", "#f58231"),
    ("sign", "#911eb4"),
    ("dog", "#42d4f4"),
]
LABEL_WEIGHTS = [0.35, 0.25, 0.1, 0.15, 0.1, 0.05]
SMALLEST, LARGEST = 16, 720  # extents of the objects, in image pixels
BRUSH_SIZE = 24  # image pixels: the studio's default 12, "]" twice
STROKE_STEPS = 20
STROKE_LENGTH = 60  # display pixels

# The running Studio of the page (its module, by the URL the page loaded it from).
STUDIO = "import(document.querySelector('script[type=module][src*=\"js/studio/studio.\"]').src).then((m) => m.ready)"


# --- the environment -------------------------------------------------------------------------------


def server_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "S3_BUCKET", "DJANGO_SETTINGS_MODULE", "DEBUG", "ALLOWED_HOSTS"}
    }
    env.update(
        DATA_DIR=str(data_dir),  # SQLite in it, local files, the in-memory channel layer
        SECRET_KEY="bench-only",
        DEBUG="0",
        SECURE_COOKIES="0",  # plain http on the loopback
        LOG_LEVEL="WARNING",
    )
    return env


def prepare(data_dir: Path) -> dict[str, Any]:
    env = server_env(data_dir)
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        subprocess.run(manage + command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)  # noqa: S603
    command = [sys.executable, __file__, "--seed", str(data_dir)]
    result = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300)  # noqa: S603 - this very script
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the objects (in a process of its own, with Django) -----------------------------------------------


def photograph() -> bytes:
    """A 4000 × 3000 JPEG made from one of scikit-image's sample photographs."""
    import io

    import skimage.data
    from PIL import Image

    with Image.open(Path(skimage.data.__file__).parent / "coffee.png") as source:
        image = source.convert("RGB").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def brush_mask(points: list[list[float]], size: float, canvas: Any) -> tuple[slice, slice]:
    """Paint a stroke into ``canvas`` (bool, HEIGHT × WIDTH) by the studio's brush rule: a pixel is set
    when its centre lies within size / 2 of the polyline. Returns the rows and columns it touched."""
    import numpy as np

    radius = size / 2
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = max(0, math.floor(min(xs) - radius)), min(WIDTH - 1, math.ceil(max(xs) + radius))
    y0, y1 = max(0, math.floor(min(ys) - radius)), min(HEIGHT - 1, math.ceil(max(ys) + radius))
    rows, cols = slice(y0, y1 + 1), slice(x0, x1 + 1)
    cy, cx = np.mgrid[rows, cols] + 0.5
    region = canvas[rows, cols]
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((cx - ax) * dx + (cy - ay) * dy) / length2, 0, 1) if length2 else 0.0
        ex, ey = cx - (ax + t * dx), cy - (ay + t * dy)
        region |= ex * ex + ey * ey <= radius * radius
    return rows, cols


def seed(data_dir: Path) -> dict[str, Any]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    from annotation.annotations.services import annotation_create
    from annotation.masks import mask_decode, mask_encode, polygon_to_rle, rle_area
    from annotation.media_services import media_create_image
    from annotation.models import Annotation
    from annotation.projects.services import label_create, project_create, question_create
    from annotation.tasks.services import tasks_assign, tasks_split
    from platform_core.models import Membership, Organization, Role
    from platform_core.tenancy import resolve_tenant

    started = time.perf_counter()
    org = Organization.objects.create(name="Bench Lab", slug=ORG)
    users = get_user_model().objects
    manager = users.create_user("bench-manager", password=PASSWORD)
    annotator = users.create_user("bench-annotator", password=PASSWORD)
    Membership.objects.create(user=manager, organization=org, role=Role.MANAGER)
    Membership.objects.create(user=annotator, organization=org, role=Role.ANNOTATOR)
    project = project_create(organization=org, name="Street scenes", created_by=manager)
    labels = [label_create(project=project, name=name, color=colour) for name, colour in LABELS]
    occluded = question_create(
        project=project, label=labels[0], text="Occluded", choices=["no", "partly", "mostly"], default="no"
    )
    item = media_create_image(project=project, name="street-4000x3000.jpg", data=photograph(), uploaded_by=manager)
    assert (item.width, item.height) == (WIDTH, HEIGHT), (item.width, item.height)
    manager_tenant = resolve_tenant(manager, ORG)
    tasks = tasks_split(tenant=manager_tenant, project=project, size=1, actor=manager)
    tasks_assign(tenant=manager_tenant, tasks=tasks, assignees=[annotator], actor=manager)
    item.refresh_from_db()
    tenant = resolve_tenant(annotator, ORG)

    rng = np.random.default_rng(500)
    canvas = np.zeros((HEIGHT, WIDTH), dtype=bool)
    union = np.zeros((HEIGHT, WIDTH), dtype=bool)
    shapes = {"polygon": 0, "blob": 0}
    for index in range(OBJECTS):
        extent = float(np.exp(rng.uniform(math.log(SMALLEST), math.log(LARGEST))))
        cx, cy = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        label = labels[rng.choice(len(labels), p=LABEL_WEIGHTS)]
        if index % 2 == 0:
            # A polygon of 6 to 40 vertices around the centre, irregular and stretched.
            n = int(rng.integers(6, 41))
            angles = np.sort(rng.uniform(0, 2 * math.pi, n))
            radii = extent / 2 * rng.uniform(0.6, 1.0, n)
            stretch, turn = rng.uniform(0.45, 1.0), rng.uniform(0, math.pi)
            px, py = radii * np.cos(angles), radii * np.sin(angles) * stretch
            xs = np.clip(cx + px * math.cos(turn) - py * math.sin(turn), 0, WIDTH)
            ys = np.clip(cy + px * math.sin(turn) + py * math.cos(turn), 0, HEIGHT)
            points = [[round(float(x), 2), round(float(y), 2)] for x, y in zip(xs, ys, strict=True)]
            rle = polygon_to_rle(points, height=HEIGHT, width=WIDTH)
            if rle_area(rle) == 0:  # a sliver along the image's edge: a square inside instead
                x, y, half = min(max(cx, extent), WIDTH - extent), min(max(cy, extent), HEIGHT - extent), extent / 2
                points = [[x - half, y - half], [x + half, y - half], [x + half, y + half], [x - half, y + half]]
                rle = polygon_to_rle(points, height=HEIGHT, width=WIDTH)
            drawn = {"tool": "polygon", "points": points}
            union |= mask_decode(rle)
            shapes["polygon"] += 1
        else:
            # A brush blob: a wandering stroke of 2 to 8 points with a brush of a third of its extent;
            # now and then a second stroke a little apart (two parts, or a hole between them).
            strokes = []
            for _ in range(1 if rng.random() < 0.8 else 2):
                n = int(rng.integers(2, 9))
                steps = rng.normal(0, extent / 4, size=(n, 2))
                path = np.cumsum(steps, axis=0) - steps.mean(axis=0) + [cx, cy]
                size = round(max(3.0, extent * rng.uniform(0.2, 0.45)), 1)
                strokes.append({"mode": "paint", "size": size, "points": [[round(x, 2), round(y, 2)] for x, y in path]})
            touched = [brush_mask(stroke["points"], stroke["size"], canvas) for stroke in strokes]
            if not canvas.any():
                rows, cols = slice(int(cy), int(cy) + 8), slice(int(cx), int(cx) + 8)
                canvas[rows, cols] = True
                touched.append((rows, cols))
            rle = mask_encode(canvas)
            union |= canvas
            for rows, cols in touched:
                canvas[rows, cols] = False
            drawn = {"tool": "brush", "strokes": strokes}
            shapes["blob"] += 1
        answers = {str(occluded.pk): str(rng.choice(occluded.choices))} if label == labels[0] else {}
        annotation_create(
            tenant=tenant, media=item, label=label, rle=rle, author=annotator, drawn=drawn, answers=answers
        )
    annotations = list(Annotation.objects.filter(media=item).select_related("label").order_by("z_order", "id"))
    areas = sorted(a.area for a in annotations)
    rles = [{"counts": a.rle["counts"], "colour": a.label.color} for a in annotations]
    rle_file = data_dir / "rles.json"
    rle_file.write_text(json.dumps(rles))
    return {
        "path": reverse("studio", kwargs={"org_slug": ORG, "task_id": tasks[0].pk, "media_id": item.pk}),
        "username": annotator.username,
        "objects": len(annotations),
        "shapes": shapes,
        "area_median": areas[len(areas) // 2],
        "area_max": areas[-1],
        "rle_chars": sum(len(r["counts"]) for r in rles),
        "union_area": int(union.sum()),
        "rle_file": str(rle_file),
        "image_bytes": item.size_bytes,
        "seconds": time.perf_counter() - started,
    }


# --- daphne ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def daphne(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "platform_core.server", "-b", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(  # noqa: S603 - the project's own server
            [*command, "platform_core.asgi:application"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):  # noqa: S310 - loopback
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not come up:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- in the browser -------------------------------------------------------------------------------------

# Notes when the page's studio socket opened and when the item's annotations arrived on it (the
# first "annotations" reply), before the studio's own listener reads them.
SOCKET_CLOCK = """(() => {
  const Native = window.WebSocket;
  const clock = (window.benchSocket = {});
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { clock.open ??= performance.now(); });
      this.addEventListener("message", (event) => {
        if (clock.listed == null && typeof event.data === "string" && event.data.includes('"type": "annotations"')) {
          clock.listed = performance.now();
        }
      });
    }
  };
})();"""

# Times every frame the viewer draws (start and duration, ms), for the frames during a stroke.
INSTALL = f"""() => {STUDIO}.then((s) => {{
  const frames = [];
  const render = s.viewer.render.bind(s.viewer);
  s.viewer.render = () => {{
    const start = performance.now();
    render();
    frames.push([start, performance.now() - start]);
  }};
  window.benchFrames = frames;
  return {{
    transport: s.store.transport.kind,
    objects: s.store.ordered().length,
    sprites: s.masks.sprites.size,
    canvas: [Math.round(s.viewer.viewWidth), Math.round(s.viewer.viewHeight)],
    scale: s.viewer.scale,
  }};
}})"""

# The mask layer alone, as the first frame draws it (cold: every sprite decoded) and as every later
# frame does (warm); a one-pixel read makes the canvas finish drawing before the clock stops.
MASK_LAYER = f"""(runs) => {STUDIO}.then((s) => {{
  const v = s.viewer;
  const ctx = v.ctx;
  const dpr = v.canvas.width / Math.max(1, v.viewWidth);
  const pass = (cold) => {{
    if (cold) s.masks.sprites.clear();
    ctx.save();
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.x, dpr * v.y);
    const start = performance.now();
    s.masks.draw(ctx);
    ctx.getImageData(0, 0, 1, 1);
    const took = performance.now() - start;
    ctx.restore();
    return took;
  }};
  const cold = [];
  const warm = [];
  for (let i = 0; i < runs; i++) {{
    cold.push(pass(true));
    warm.push(pass(false));
  }}
  v.requestRender();
  return {{ cold, warm, sprites: s.masks.sprites.size }};
}})"""

# Objects to paint on: the largest ones, spread over the list, each with a point well inside it
# (client coordinates, whole pixels) where a stroke starts.
TARGETS = f"""(count) => {STUDIO}.then((s) => {{
  const rect = s.viewer.canvas.getBoundingClientRect();
  const found = [];
  const objects = [...s.store.ordered()].sort((a, b) => b.key - a.key);
  const large = objects.filter((o) => {{ const b = s.masks.boxOf(o); return b && b[2] >= 120 && b[3] >= 120; }});
  const step = Math.max(1, Math.floor(large.length / count));
  for (let i = 0; found.length < count && i < large.length; i += step) {{
    const o = large[i];
    const sp = s.masks.spriteOf(o);
    const row = Math.floor(sp.height / 2);
    let best = null;
    let run = 0;
    for (let col = 0; col <= sp.width; col++) {{
      if (col < sp.width && sp.bitmap[row * sp.width + col]) run++;
      else {{
        if (run && (!best || run > best[1])) best = [col - run, run];
        run = 0;
      }}
    }}
    if (!best) continue;
    const [dx, dy] = s.viewer.toDisplay(sp.x + best[0] + best[1] / 2, sp.y + row + 0.5);
    const x = Math.round(rect.left + dx);
    const y = Math.round(rect.top + dy);
    if (!s.masks.contains(o, ...s.viewer.toImage(x, y))) continue;
    found.push({{ key: o.key, id: o.id, x, y }});
  }}
  return found;
}})"""

# Arms the clocks for one stroke (pointerdown … pointerup → next frame → acknowledged) or one undo
# (keydown → next frame → acknowledged). Listeners on window in the capture phase run before the
# studio's own; event time stamps include any wait for the page's main thread.
ARM = f"""(kind) => {STUDIO}.then((s) => {{
  window.benchDone = new Promise((resolve) => {{
    let down = null;
    const finish = (start) => {{
      s.viewer.addEventListener("rendered", () => {{
        const drawn = performance.now();
        s.store.whenIdle().then(() => resolve({{ down, start, drawn, saved: performance.now() }}));
      }}, {{ once: true }});
    }};
    if (kind === "stroke") {{
      window.addEventListener("pointerdown", (e) => {{ down = e.timeStamp; }}, {{ once: true, capture: true }});
      window.addEventListener("pointerup", (e) => finish(e.timeStamp), {{ once: true, capture: true }});
    }} else {{
      const key = (e) => {{
        if (!(e.ctrlKey && e.key.toLowerCase() === "z")) return;
        window.removeEventListener("keydown", key, true);
        finish(e.timeStamp);
      }};
      window.addEventListener("keydown", key, true);
    }}
  }});
}})"""

STATE = f"""(key) => {STUDIO}.then((s) => {{
  const o = s.store.get(key);
  return {{ version: o.version, state: o.state, counts: o.rle.counts, objects: s.store.ordered().length,
           problems: s.store.problems().length }};
}})"""

# The reference: a page with nothing but a canvas; every RLE decoded (compressed string → runs →
# pixels, column-major into a row-major RGBA buffer) and the buffer put on the canvas at once.
REFERENCE = """([rles, h, w, runs]) => {
  const canvas = document.getElementById("c");
  const ctx = canvas.getContext("2d");
  const colours = rles.map((r) => {
    const v = parseInt(r.colour.slice(1), 16);
    return (115 << 24) | ((v & 255) << 16) | (((v >> 8) & 255) << 8) | ((v >> 16) & 255); // ABGR, 45 %
  });
  const counts = (text) => {
    const out = [];
    let p = 0;
    while (p < text.length) {
      let x = 0, k = 0, more = 1;
      while (more) {
        const c = text.charCodeAt(p) - 48;
        x |= (c & 0x1f) << (5 * k);
        more = c & 0x20;
        p++;
        k++;
        if (!more && c & 0x10) x |= -1 << (5 * k);
      }
      if (out.length > 2) x += out[out.length - 2];
      out.push(x);
    }
    return out;
  };
  let painted = 0;
  const times = [];
  for (let run = 0; run < runs; run++) {
    const start = performance.now();
    const image = new ImageData(w, h);
    const pixels = new Uint32Array(image.data.buffer);
    for (let m = 0; m < rles.length; m++) {
      const runsOf = counts(rles[m].counts);
      const colour = colours[m];
      let at = 0;
      for (let j = 0; j < runsOf.length; j++) {
        const n = runsOf[j];
        if (j % 2 === 1) {
          let i = at;
          const end = at + n;
          while (i < end) {
            const col = Math.floor(i / h);
            const stop = Math.min(end, (col + 1) * h);
            for (let row = i - col * h, p = row * w + col; i < stop; i++, p += w) pixels[p] = colour;
          }
        }
        at += n;
      }
    }
    ctx.putImageData(image, 0, 0);
    ctx.getImageData(0, 0, 1, 1);
    times.push(performance.now() - start);
    if (run === 0) for (let i = 0; i < pixels.length; i++) if (pixels[i]) painted++;
  }
  return { times, painted };
}"""


def measure(base: str, info: dict[str, Any], loads: int, strokes: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium"
    url = base + info["path"]
    out: dict[str, Any] = {"loads": [], "strokes": [], "undos": [], "stroke_frames": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(SOCKET_CLOCK)
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(base + "/")
        page.get_by_label("Username").fill(info["username"])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(rf"/o/{ORG}/"))

        # 1. Navigation start → every mask painted, over several loads (the first with a cold cache).
        for _ in range(loads):
            page.goto(url, wait_until="commit")
            page.wait_for_function("() => performance.getEntriesByName('studio:masks-painted').length > 0")
            out["loads"].append(
                page.evaluate(
                    """() => {
                      const nav = performance.getEntriesByType("navigation")[0];
                      return { html: nav.responseEnd, dom: nav.domContentLoadedEventEnd,
                               open: window.benchSocket.open, listed: window.benchSocket.listed,
                               painted: performance.getEntriesByName("studio:masks-painted")[0].startTime };
                    }"""
                )
            )
        out["page"] = page.evaluate(INSTALL)
        assert out["page"]["objects"] == info["objects"] == out["page"]["sprites"], out["page"]
        out["layer"] = page.evaluate(MASK_LAYER, 7)

        # 2 and 3. Brush strokes onto existing objects, each undone.
        page.keyboard.press("b")
        for _ in range(2):
            page.keyboard.press("]")  # 12 -> 16 -> 24 px
        assert page.get_by_test_id("brush-size").inner_text() == str(BRUSH_SIZE)
        targets = page.evaluate(TARGETS, strokes)
        assert len(targets) == strokes, targets
        for target in targets:
            page.evaluate(f"(key) => {STUDIO}.then((s) => s.select(key))", target["key"])
            before = page.evaluate(STATE, target["key"])
            page.evaluate(ARM, "stroke")
            page.mouse.move(target["x"], target["y"])
            page.mouse.down()
            page.mouse.move(target["x"] + STROKE_LENGTH, target["y"] + STROKE_LENGTH / 3, steps=STROKE_STEPS)
            page.mouse.up()
            stroke = page.evaluate("() => window.benchDone")
            frames = page.evaluate("() => window.benchFrames.splice(0)")
            out["stroke_frames"] += [took for start, took in frames if stroke["down"] <= start <= stroke["start"]]
            after = page.evaluate(STATE, target["key"])
            assert after["version"] == before["version"] + 1 and after["counts"] != before["counts"], (before, after)
            assert after["objects"] == info["objects"] and after["state"] == "saved", after
            out["strokes"].append(stroke)

            page.evaluate(ARM, "undo")
            page.keyboard.press("Control+z")
            undo = page.evaluate("() => window.benchDone")
            page.evaluate("() => window.benchFrames.splice(0)")
            undone = page.evaluate(STATE, target["key"])
            assert undone["version"] == after["version"] + 1 and undone["counts"] == before["counts"], undone
            assert undone["state"] == "saved" and undone["problems"] == 0, undone
            out["undos"].append(undo)
        assert errors == [], errors

        # The reference, on a page of its own.
        rles = json.loads(Path(info["rle_file"]).read_text())
        reference = context.new_page()
        reference.set_content(f'<canvas id="c" width="{WIDTH}" height="{HEIGHT}" style="width: 100%"></canvas>')
        out["reference"] = reference.evaluate(REFERENCE, [rles, HEIGHT, WIDTH, 7])
        context.close()
        browser.close()
    return out


# --- the report ------------------------------------------------------------------------------------------


def stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def line(label: str, values: list[float], extra: str = "") -> str:
    median, p95 = stats(values)
    return f"  {label:<66} median {median:8.1f} ms   p95 {p95:8.1f} ms   (n={len(values)}){extra}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=7, help="page loads timed (default 7)")
    parser.add_argument("--strokes", type=int, default=10, help="brush strokes and undos timed (default 10)")
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        print(json.dumps(seed(Path(args.seed))))
        return

    started = time.perf_counter()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    try:
        info = prepare(data_dir)
        with daphne(server_env(data_dir), data_dir / "daphne.log") as base:
            result = measure(base, info, args.loads, args.strokes)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    page, layer, reference = result["page"], result["layer"], result["reference"]
    shapes = info["shapes"]
    print(
        f"studio_canvas: {info['objects']} objects ({shapes['polygon']} polygons, {shapes['blob']} brush blobs, "
        f"{len(LABELS)} labels, extents {SMALLEST}-{LARGEST} px) on a {WIDTH} x {HEIGHT} photograph"
    )
    print(
        f"  masks: median area {info['area_median']} px, largest {info['area_max']} px, together "
        f"{info['union_area'] / (WIDTH * HEIGHT):.0%} of the image; {info['rle_chars'] / 1024:.0f} KiB of RLE"
    )
    print(
        f"  chromium headless, software canvas, viewport {VIEWPORT['width']} x {VIEWPORT['height']}; canvas "
        f"{page['canvas'][0]} x {page['canvas'][1]} CSS px at fit (scale {page['scale']:.3f}); saves over the "
        f"{'studio socket' if page['transport'] == 'socket' else 'REST API'}; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    loads = result["loads"]
    print("first paint (navigation start -> performance mark 'studio:masks-painted')")
    print(line("all 500 masks painted, every load", [load["painted"] for load in loads]))
    print(line("  the same, warm loads only (after the first)", [load["painted"] for load in loads[1:]]))
    print(f"  {'  first load (cold cache)':<66} median {loads[0]['painted']:8.1f} ms   (n=1)")
    print(line("  of which: HTML received", [load["html"] for load in loads]))
    print(line("  of which: DOMContentLoaded", [load["dom"] for load in loads]))
    print(line("  of which: studio socket open", [load["open"] for load in loads]))
    print(line("  of which: the 500 annotations received on it", [load["listed"] for load in loads]))
    print(line("studio mask layer, cold (decode 500 sprites + draw)", layer["cold"]))
    print(line("studio mask layer, warm (sprites kept: every later frame)", layer["warm"]))
    print(
        f"brush stroke ({BRUSH_SIZE} px brush, pointerdown, {STROKE_STEPS} moves, pointerup, adding to a "
        "selected object)"
    )
    strokes, undos = result["strokes"], result["undos"]
    print(line("pointerup -> next frame drawn (mask redrawn)", [s["drawn"] - s["start"] for s in strokes]))
    print(line("pointerup -> acknowledged (saved, new version back)", [s["saved"] - s["start"] for s in strokes]))
    print(
        line(
            f"pointerdown -> pointerup ({STROKE_STEPS} moves, as fast as the page takes them)",
            [s["start"] - s["down"] for s in strokes],
        )
    )
    print(line("one frame during a stroke (image + 500 masks + brush)", result["stroke_frames"], "  60 Hz: 16.7 ms"))
    print("undo (Ctrl+Z, the stroke's object back to its previous mask)")
    print(line("keydown -> next frame drawn (mask redrawn)", [u["drawn"] - u["start"] for u in undos]))
    print(
        line("keydown -> acknowledged (previous mask saved as new version)", [u["saved"] - u["start"] for u in undos])
    )
    print("reference: a bare page decoding the same 500 RLE into one RGBA buffer + putImageData")
    print(line("decode 500 RLE + putImageData (4000 x 3000)", reference["times"]))
    assert reference["painted"] == info["union_area"], (reference["painted"], info["union_area"])
    ref = stats(reference["times"])[0]
    painted = stats([load["painted"] for load in loads[1:]])[0]
    print(
        f"  ratios to the bare work: studio mask layer cold {stats(layer['cold'])[0] / ref:.2f}x, warm "
        f"{stats(layer['warm'])[0] / ref:.2f}x; navigation -> all masks painted (warm loads) {painted / ref:.2f}x"
    )
    print(f"  (bench ran {time.perf_counter() - started:.0f} s, of which {info['seconds']:.0f} s making the objects)")


if __name__ == "__main__":
    main()
