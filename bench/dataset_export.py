"""COCO export of a generated project through the export job vs pycocotools' own encode + json.dump.

Generates, in a throw-away SQLite database (bulk_create, no files), two projects of 320 × 240
images with ``--per-image`` objects each (default 10), random filled ellipses encoded with
pycocotools: a large one with ``--annotations`` objects (default 100,000) and a small one with a
tenth of them. Then, each in a fresh process so that peak memory is its own:

- platform: one ``export_dataset`` job (COCO, the stored RLE) through the Tasks API's immediate
  backend: the streamed reads, the JSON written entry by entry, the job's progress and the result
  file saved to storage;
- raw: pycocotools' ``encode`` of the same masks (drawn again from the same seeds, the drawing not
  timed) + ``area`` + ``toBbox``, the equivalent COCO dict built in memory and ``json.dump``-ed.

Prints both times and their ratio (goal <= 2x), and the platform's peak memory for the small and
the large project: peak resident memory added by the export, and the peak of Python's own
allocations (tracemalloc, in a separate run, as tracing slows the export down). Streaming shows as
the two being about equal although the large project is ten times the small one.

    .venv/bin/python bench/dataset_export.py [--annotations N] [--per-image K]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 320, 240


def rss_now() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def object_masks(image_index: int, count: int) -> list[Any]:
    """The ``count`` masks of image ``image_index``: the same every time they are drawn."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(image_index)
    masks = []
    for _ in range(count):
        mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        centre = (int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT)))
        axes = (int(rng.integers(4, 70)), int(rng.integers(4, 50)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        masks.append(mask)
    return masks


def setup_django(data_dir: str) -> None:
    os.environ["DATA_DIR"] = data_dir
    for name in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET"):
        os.environ.pop(name, None)  # a throw-away SQLite and local files, whatever the shell says
    os.environ["SECRET_KEY"] = "bench-only"
    os.environ["DJANGO_SETTINGS_MODULE"] = "platform_core.settings"
    os.environ["LOG_LEVEL"] = "WARNING"
    # Jobs run in this process, as soon as they are started (no transaction is open here).
    os.environ["TASKS_BACKEND"] = "django_tasks.backends.immediate.ImmediateBackend"
    sys.path.insert(0, str(ROOT))

    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at")
    django.setup()


# --- generating the projects -------------------------------------------------------------------


def generate(data_dir: str, sizes: dict[str, int], per_image: int) -> dict[str, Any]:
    setup_django(data_dir)
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from pycocotools import mask as coco_mask

    from annotation.models import Annotation, Label, MediaItem, Project
    from platform_core.models import Membership, Organization, Role

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", password="bench-pw-1234")
    Membership.objects.create(user=user, organization=org, role=Role.MANAGER)
    started = time.perf_counter()
    projects = {}
    first_image = 0
    for name, wanted in sizes.items():
        project = Project.objects.create(organization=org, name=f"Bench {name}")
        labels = Label.objects.bulk_create(
            Label(project=project, name=f"class {i}", color=f"#{i * 40:02x}80c0", order=i) for i in range(5)
        )
        images = wanted // per_image
        items = MediaItem.objects.bulk_create(
            MediaItem(
                project=project,
                file=f"org-{org.pk}/project-{project.pk}/{index:06d}.jpg",
                original_name=f"{index:06d}.jpg",
                content_type="image/jpeg",
                width=WIDTH,
                height=HEIGHT,
                size_bytes=1,
            )
            for index in range(images)
        )
        rows = []
        for offset, item in enumerate(items):
            for z, mask in enumerate(object_masks(first_image + offset, per_image)):
                rle = coco_mask.encode(np.asfortranarray(mask))
                rows.append(
                    Annotation(
                        media=item,
                        label=labels[z % len(labels)],
                        rle={"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")},
                        bbox=[float(v) for v in coco_mask.toBbox(rle)],
                        area=int(coco_mask.area(rle)),
                        z_order=z,
                    )
                )
            if len(rows) >= 20000:
                Annotation.objects.bulk_create(rows, batch_size=2000)
                rows = []
        Annotation.objects.bulk_create(rows, batch_size=2000)
        projects[name] = {"id": project.pk, "images": images, "first_image": first_image}
        first_image += images
    return {"projects": projects, "seconds": time.perf_counter() - started}


# --- the contenders (each in its own process) --------------------------------------------------


def run_platform(data_dir: str, project_id: int, trace: bool) -> dict[str, Any]:
    setup_django(data_dir)
    import tracemalloc

    from django.contrib.auth import get_user_model

    from annotation.datasets.export_job import dataset_export_start
    from annotation.datasets.options import ExportOptions
    from annotation.models import Project
    from platform_core.models import Job
    from platform_core.tenancy import resolve_tenant

    user = get_user_model().objects.get(username="bench")
    tenant = resolve_tenant(user, "bench")
    project = Project.objects.get(pk=project_id)
    baseline = rss_now()
    if trace:
        tracemalloc.start()
    started, cpu = time.perf_counter(), time.process_time()
    job = dataset_export_start(tenant=tenant, project=project, actor=user, options=ExportOptions())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    traced = tracemalloc.get_traced_memory()[1] if trace else 0
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    size = job.result_file.size
    job.result_file.delete(save=False)
    return {
        "seconds": seconds,
        "cpu": cpu,
        "annotations": job.report["annotations"],
        "bytes": size,
        "peak": rss_peak(),
        "baseline": baseline,
        "traced": traced,
    }


def run_raw(data_dir: str, images: int, first_image: int, per_image: int) -> dict[str, Any]:
    import numpy as np
    from pycocotools import mask as coco_mask

    baseline = rss_now()
    seconds = 0.0
    cpu = 0.0
    coco: dict[str, Any] = {"info": {}, "licenses": [], "images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i, "name": f"class {i}", "supercategory": ""} for i in range(5)]
    annotation_id = 0
    for offset in range(images):
        masks = object_masks(first_image + offset, per_image)  # drawing: not timed
        started, started_cpu = time.perf_counter(), time.process_time()
        image_id = offset + 1
        coco["images"].append({"id": image_id, "file_name": f"{offset:06d}.jpg", "width": WIDTH, "height": HEIGHT})
        for z, mask in enumerate(masks):
            rle = coco_mask.encode(np.asfortranarray(mask))
            annotation_id += 1
            coco["annotations"].append(
                {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": z % 5,
                    "segmentation": {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode("ascii")},
                    "area": float(coco_mask.area(rle)),
                    "bbox": coco_mask.toBbox(rle).tolist(),
                    "iscrowd": 0,
                }
            )
        seconds += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
    out = Path(data_dir) / "raw.json"
    started, started_cpu = time.perf_counter(), time.process_time()
    with out.open("w") as handle:
        json.dump(coco, handle)
    seconds += time.perf_counter() - started
    cpu += time.process_time() - started_cpu
    size = out.stat().st_size
    out.unlink()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "annotations": annotation_id,
        "bytes": size,
        "peak": rss_peak(),
        "baseline": baseline,
    }


def child(*args: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", *args]
    result = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603 - this very script
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", type=int, default=100_000, help="objects in the large project")
    parser.add_argument("--per-image", type=int, default=10, help="objects per image (default 10)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, data_dir, *rest = args.child
        if kind == "generate":
            large, per_image = int(rest[0]), int(rest[1])
            result = generate(data_dir, {"small": large // 10, "large": large}, per_image)
        elif kind == "platform":
            result = run_platform(data_dir, int(rest[0]), trace=rest[1] == "trace")
        else:
            result = run_raw(data_dir, int(rest[0]), int(rest[1]), int(rest[2]))
        print(json.dumps(result))
        return

    data_dir = tempfile.mkdtemp(prefix="bench-export-")
    try:
        made = child("generate", data_dir, str(args.annotations), str(args.per_image))
        small, large = made["projects"]["small"], made["projects"]["large"]
        platform = child("platform", data_dir, str(large["id"]), "plain")
        platform_small = child("platform", data_dir, str(small["id"]), "plain")
        traced = child("platform", data_dir, str(large["id"]), "trace")
        traced_small = child("platform", data_dir, str(small["id"]), "trace")
        raw = child("raw", data_dir, str(large["images"]), str(large["first_image"]), str(args.per_image))
    finally:
        shutil.rmtree(data_dir)

    mb = 1024 * 1024
    count = platform["annotations"]
    print(
        f"dataset_export: COCO (compressed RLE) of {count} annotations on {large['images']} images of "
        f"{WIDTH}x{HEIGHT} (generated in {made['seconds']:.0f} s)"
    )
    for label, result in (("platform export job", platform), ("pycocotools + json", raw)):
        seconds = result["seconds"]
        print(
            f"  {label:<20} {seconds:7.2f} s  {seconds / result['annotations'] * 1e6:6.1f} us/annotation  "
            f"({result['cpu']:.2f} s CPU)  {result['bytes'] / mb:5.1f} MiB of JSON  "
            f"peak RSS +{(result['peak'] - result['baseline']) / mb:.0f} MiB"
        )
    print(
        f"  ratio platform/raw: {platform['seconds'] / raw['seconds']:.2f}x (goal <= 2x); "
        f"CPU time {platform['cpu'] / raw['cpu']:.2f}x"
    )
    print("  platform peak memory, small vs large project (flat: about equal)")
    for label, plain, trace in (
        (f"{platform_small['annotations']:>7} annotations", platform_small, traced_small),
        (f"{platform['annotations']:>7} annotations", platform, traced),
    ):
        print(
            f"    {label}: peak RSS +{(plain['peak'] - plain['baseline']) / mb:5.1f} MiB over the process, "
            f"Python allocations peak {trace['traced'] / mb:5.1f} MiB ({plain['seconds']:.2f} s)"
        )


if __name__ == "__main__":
    main()
