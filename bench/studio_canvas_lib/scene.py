"""The scene bench/studio_canvas.py measures: a throw-away data folder and SQLite database, the
organisation, annotator, 4000 × 3000 photograph and 500 objects (made in a process of its own, with
Django: ``python bench/studio_canvas_lib/scene.py <data dir>``), and daphne serving it."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
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
    command = [sys.executable, __file__, str(data_dir)]
    result = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300)  # noqa: S603 - this very module
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


if __name__ == "__main__":
    print(json.dumps(seed(Path(sys.argv[1]))))
