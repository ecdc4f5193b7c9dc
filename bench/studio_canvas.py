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
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from studio_canvas_lib.page_scripts import ARM, INSTALL, MASK_LAYER, REFERENCE, SOCKET_CLOCK, STATE, STUDIO, TARGETS
from studio_canvas_lib.scene import HEIGHT, LABELS, LARGEST, ORG, PASSWORD, SMALLEST, WIDTH, daphne, prepare, server_env

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

BRUSH_SIZE = 24  # image pixels: the studio's default 12, "]" twice
STROKE_STEPS = 20
STROKE_LENGTH = 60  # display pixels


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
    args = parser.parse_args()

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
