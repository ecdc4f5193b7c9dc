"""The studio's RLE module, run in the browser, agrees with pycocotools bit for bit: it decodes what
pycocotools encodes and encodes what pycocotools decodes to the same string, on awkward masks; it
rasterises polygons and boxes as pycocotools' frPyObjects does; and brush strokes follow the rule
the module documents, so a stored stroke can be recomputed anywhere."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from tests.browser.test_hardening import watch
from tests.browser.test_workspace_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RLE_MODULE = "/static/js/studio/rle.js"


def coco_encode(mask: np.ndarray) -> str:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def coco_decode(counts: str, h: int, w: int) -> np.ndarray:
    return coco_mask.decode({"size": [h, w], "counts": counts.encode()}).astype(bool)


def column_major_b64(mask: np.ndarray) -> str:
    return base64.b64encode(mask.astype(np.uint8).tobytes(order="F")).decode()


def from_column_major_b64(data: str, h: int, w: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape((h, w), order="F").astype(bool)


def awkward_masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(6)
    masks: dict[str, np.ndarray] = {}
    masks["empty"] = np.zeros((5, 7), bool)
    masks["full"] = np.ones((5, 7), bool)
    masks["1x1 empty"] = np.zeros((1, 1), bool)
    masks["1x1 full"] = np.ones((1, 1), bool)
    for name, (y, x) in {"first pixel": (0, 0), "last pixel": (10, 8), "middle pixel": (5, 4)}.items():
        mask = np.zeros((11, 9), bool)
        mask[y, x] = True
        masks[f"one pixel, {name}"] = mask
    row = np.zeros((1, 17), bool)
    row[0, [0, 3, 4, 5, 16]] = True
    masks["one row"] = row
    masks["one column"] = row.T.copy()
    ring = np.zeros((13, 7), bool)
    ring[2:11, 1:6] = True
    ring[4:9, 2:5] = False
    masks["odd size with a hole"] = ring
    parts = np.zeros((31, 23), bool)
    parts[1:5, 2:9] = True
    parts[12:30, 15:22] = True
    parts[20, 0] = True
    parts[7:9, 11:13] = True
    masks["several parts"] = parts
    masks["checkerboard"] = (np.indices((9, 11)).sum(axis=0) % 2).astype(bool)
    last_column = np.zeros((6, 5), bool)
    last_column[:, -1] = True
    masks["last column"] = last_column
    first_column = np.zeros((6, 5), bool)
    first_column[:, 0] = True
    masks["first column"] = first_column
    # Long runs: counts of several characters, and differences to the count two before that are
    # negative (the delta coding's sign bit).
    blobs = np.zeros((301, 199), bool)
    for _ in range(12):
        cy, cx, r = rng.integers(0, 301), rng.integers(0, 199), rng.integers(3, 60)
        yy, xx = np.ogrid[:301, :199]
        blobs |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    masks["random blobs, 301 x 199"] = blobs
    sparse = np.zeros((1000, 1000), bool)
    sparse[[3, 500, 999], [0, 640, 999]] = True
    sparse[400:700, 100:101] = True
    masks["a few pixels far apart, 1000 x 1000"] = sparse
    masks["noise"] = rng.random((37, 41)) < 0.5
    return masks


def unexpected(errors: list[str]) -> list[str]:
    """Console errors less the refused studio-socket handshake: the live test server speaks HTTP only,
    so the page cannot open its socket there and saves over REST instead, as it should."""
    return [e for e in errors if not e.startswith("WebSocket connection to")]


@pytest.fixture
def studio_page(world: Any, live_server: Any, page: Any) -> Any:
    """A real studio page (its CSP allows modules from this site), with the RLE module imported."""
    errors = watch(page)
    sign_in(page, live_server.url, "annotator")
    page.goto(f"{live_server.url}/o/demo-lab/tasks/{world.demo.task.pk}/items/{world.demo.media.pk}/studio/")
    page.wait_for_load_state("load")
    assert page.evaluate(f"import('{RLE_MODULE}').then((m) => typeof m.decode)") == "function"
    yield page
    assert page.evaluate("window.__cspViolations") == []
    assert unexpected(errors) == []


def test_it_decodes_and_encodes_awkward_masks_as_pycocotools_does(studio_page: Any) -> None:
    masks = awkward_masks()
    cases = [
        {"name": name, "h": m.shape[0], "w": m.shape[1], "counts": coco_encode(m), "mask": column_major_b64(m)}
        for name, m in masks.items()
    ]
    results = studio_page.evaluate(
        """async ([url, cases]) => {
          const rle = await import(url);
          const toB64 = (bytes) => {
            let text = "";
            for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
            return btoa(text);
          };
          const fromB64 = (data) => Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
          return cases.map((c) => {
            const decoded = rle.decode({ size: [c.h, c.w], counts: c.counts });
            const counts = rle.countsFromString(c.counts);
            return {
              name: c.name,
              decoded: toB64(decoded),
              encoded: rle.encode(fromB64(c.mask), c.h, c.w).counts,
              area: rle.area(counts),
              bbox: rle.bbox(counts, c.h, c.w),
              size: rle.encode(fromB64(c.mask), c.h, c.w).size,
            };
          });
        }""",
        [RLE_MODULE, cases],
    )
    assert [r["name"] for r in results] == list(masks)
    for case, result in zip(cases, results, strict=True):
        name, h, w = case["name"], case["h"], case["w"]
        # pycocotools -> browser: the same pixels, every one.
        decoded = from_column_major_b64(result["decoded"], h, w)
        assert decoded.shape == (h, w), name
        assert np.array_equal(decoded, masks[name]), name
        # browser -> pycocotools: the same string, and it decodes to the same pixels.
        assert result["encoded"] == case["counts"], name
        assert np.array_equal(coco_decode(result["encoded"], h, w), masks[name]), name
        assert result["size"] == [h, w], name
        # The measures pycocotools reports.
        rle = {"size": [h, w], "counts": case["counts"].encode()}
        assert result["area"] == int(coco_mask.area(rle)), name
        assert result["bbox"] == coco_mask.toBbox(rle).tolist(), name


def awkward_polygons() -> list[tuple[str, int, int, list[list[float]]]]:
    rng = np.random.default_rng(7)
    polygons = [
        ("triangle", 40, 50, [[5, 5], [40, 8], [20, 35]]),
        ("square on pixel edges", 10, 10, [[2, 2], [6, 2], [6, 6], [2, 6]]),
        ("square on pixel centres", 10, 10, [[2.5, 2.5], [6.5, 2.5], [6.5, 6.5], [2.5, 6.5]]),
        ("concave", 30, 30, [[2, 2], [28, 2], [28, 28], [15, 10], [2, 28]]),
        ("bow tie", 30, 40, [[3, 3], [35, 25], [35, 3], [3, 25]]),
        ("corners outside the image", 20, 25, [[-0.6, -0.4], [25.7, 0.2], [24.9, 20.8], [0.3, 19.6]]),
        ("smaller than a pixel", 10, 10, [[4.1, 4.1], [4.6, 4.2], [4.3, 4.7]]),
        ("all on one line", 10, 10, [[1, 1], [5, 5], [8, 8]]),
        ("one pixel wide image", 9, 1, [[0, 0], [1, 0], [1, 9], [0, 9]]),
        ("fractional vertices", 23, 17, [[1.37, 2.91], [15.02, 3.5], [16.99, 21.49], [0.01, 22.73]]),
    ]
    circle = [[50 + 37.3 * np.cos(t), 40 + 29.1 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 61)[:-1]]
    polygons.append(("circle of 60 vertices", 80, 100, [[round(x, 2), round(y, 2)] for x, y in circle]))
    for n in range(40):
        h, w = int(rng.integers(1, 70)), int(rng.integers(1, 70))
        count = int(rng.integers(3, 12))
        points = np.round(rng.uniform(-3, max(h, w) + 3, (count, 2)), int(rng.integers(0, 3))).tolist()
        polygons.append((f"random {n}", h, w, points))
    return polygons


def awkward_boxes() -> list[tuple[str, int, int, list[float]]]:
    return [
        ("whole pixels", 20, 30, [3, 4, 12, 15]),
        ("fractional", 20, 30, [2.25, 3.5, 11.75, 16.01]),
        ("whole image", 12, 9, [0, 0, 9, 12]),
        ("touching the far edges", 12, 9, [4, 5, 9, 12]),
        ("one pixel", 12, 9, [4, 5, 5, 6]),
        ("thinner than a pixel", 12, 9, [4.2, 1, 4.6, 10]),
        ("one row image", 1, 40, [3.3, 0, 30.7, 1]),
    ]


def test_it_rasterises_polygons_and_boxes_as_pycocotools_frpyobjects(studio_page: Any) -> None:
    polygons = awkward_polygons()
    boxes = awkward_boxes()
    results = studio_page.evaluate(
        """async ([url, polygons, boxes]) => {
          const rle = await import(url);
          return {
            polygons: polygons.map(([name, h, w, points]) => rle.polygonToRle(points, h, w)),
            boxes: boxes.map(([name, h, w, box]) => rle.boxToRle(box, h, w)),
          };
        }""",
        [RLE_MODULE, polygons, boxes],
    )
    for (name, h, w, points), got in zip(polygons, results["polygons"], strict=True):
        expected = coco_mask.merge(coco_mask.frPyObjects([[c for p in points for c in p]], h, w))
        assert got == {"size": [h, w], "counts": expected["counts"].decode()}, name
    for (name, h, w, (x0, y0, x1, y1)), got in zip(boxes, results["boxes"], strict=True):
        expected = coco_mask.frPyObjects(np.array([[x0, y0, x1 - x0, y1 - y0]], dtype=float), h, w)[0]
        assert got == {"size": [h, w], "counts": expected["counts"].decode()}, name
        assert coco_decode(got["counts"], h, w).any(), f"{name}: an empty box proves little"


def brush_rule(points: list[list[float]], size: float, h: int, w: int) -> np.ndarray:
    """The documented rule: a pixel is painted when its centre lies within size / 2 of the stroke."""
    cy, cx = np.mgrid[0:h, 0:w] + 0.5
    painted = np.zeros((h, w), bool)
    segments = [(points[0], points[0])] if len(points) == 1 else list(zip(points, points[1:], strict=False))
    for (ax, ay), (bx, by) in segments:
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        t = np.clip(((cx - ax) * dx + (cy - ay) * dy) / length2, 0, 1) if length2 else np.zeros_like(cx)
        ex, ey = cx - (ax + t * dx), cy - (ay + t * dy)
        painted |= ex * ex + ey * ey <= (size / 2) ** 2
    return painted


def test_it_paints_and_erases_brush_strokes_by_the_documented_rule(studio_page: Any) -> None:
    h, w = 48, 64
    strokes = [
        {"mode": "paint", "size": 12, "points": [[10.25, 10.5], [30.75, 12.25], [40.5, 30.5]]},
        {"mode": "paint", "size": 5, "points": [[60.3, 44.1]]},  # a dot, partly off the image
        {"mode": "erase", "size": 4, "points": [[5, 11], [45, 15]]},
        {"mode": "paint", "size": 3, "points": [[-10, -10], [-5, -3]]},  # entirely outside: nothing
    ]
    got = studio_page.evaluate(
        """async ([url, strokes, h, w]) => {
          const rle = await import(url);
          let counts = rle.emptyCounts(h, w);
          for (const stroke of strokes) counts = rle.applyStroke(counts, stroke, h, w);
          return rle.fromCounts(counts, h, w);
        }""",
        [RLE_MODULE, strokes, h, w],
    )
    expected = np.zeros((h, w), bool)
    for stroke in strokes:
        region = brush_rule(stroke["points"], stroke["size"], h, w)
        expected = expected & ~region if stroke["mode"] == "erase" else expected | region
    assert expected.any() and not expected.all()
    assert got == {"size": [h, w], "counts": coco_encode(expected)}
