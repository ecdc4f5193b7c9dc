"""Bulk import of photographs through the import job vs raw Pillow on the same files.

Makes ``--count`` photographs (default 500) from scikit-image's sample photographs at 0.5×, 1×,
2× and 3× (longest side capped at 4096 px), as JPEG and PNG, some carrying an EXIF orientation as
phones write it. Then, each in a fresh process so peak memory is its own:

- platform: one ``import_media`` job over the folder (through the Tasks API's immediate backend):
  per file the checks, decoding, orientation, re-encoding, WebP thumbnail, storage writes, the
  database row and the job's progress and resume cursor;
- raw: per file ``Image.open`` + ``ImageOps.exif_transpose`` + ``save`` (same format and quality)
  + ``thumbnail`` saved as WebP, written to a folder.

Prints both times, their ratio (goal ≤ 1.5×) and the peak resident memory of each process (and
how much of it the work added). Wall-clock time is the figure that counts; the CPU time of each
process is printed beside it because, on a machine busy with other work, it varies far less (the
gap between the two ratios is time spent waiting: the platform's file and database writes, or
other processes). Runs on a throw-away DATA_DIR with SQLite and local files.

    .venv/bin/python bench/import_media.py [--count N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOGRAPHS = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "camera.png",
    "moon.png",
]
SCALES = [0.5, 1.0, 2.0, 3.0]
LONGEST = 4096
JPEG_QUALITY = 92  # what the platform writes
ORIENTATION = 0x0112


def rss_now() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


# --- the photographs ---------------------------------------------------------------------------


def make_photos(folder: Path, count: int) -> int:
    import skimage.data
    from PIL import Image

    source = Path(skimage.data.__file__).parent
    rng = random.Random(5)  # noqa: S311 - variety, not secrecy
    total = 0
    for index in range(count):
        name = PHOTOGRAPHS[index % len(PHOTOGRAPHS)]
        scale = SCALES[(index // len(PHOTOGRAPHS)) % len(SCALES)]
        with Image.open(source / name) as original:
            image = original.convert("RGB") if original.mode not in ("RGB", "L") else original.copy()
        # A different crop each time, so no two files are the same.
        width, height = image.size
        keep = rng.uniform(0.8, 1.0)
        left, top = rng.randint(0, int(width * (1 - keep))), rng.randint(0, int(height * (1 - keep)))
        image = image.crop((left, top, left + int(width * keep), top + int(height * keep)))
        factor = min(scale, LONGEST / max(image.size))
        image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))))
        exif = Image.Exif()
        if index % 5 == 0:
            exif[ORIENTATION] = 6  # a phone held upright
        if index % 4 == 3:
            path = folder / f"{index:04d}-{Path(name).stem}-{scale}x.png"
            image.save(path, format="PNG", exif=exif.tobytes())
        else:
            path = folder / f"{index:04d}-{Path(name).stem}-{scale}x.jpg"
            image.save(path, format="JPEG", quality=90, exif=exif.tobytes())
        total += path.stat().st_size
    return total


# --- the two contenders (each run in its own process) ------------------------------------------


def run_raw(folder: Path) -> dict[str, float]:
    from PIL import Image, ImageOps

    out = Path(tempfile.mkdtemp(prefix="bench-raw-"))
    files = sorted(folder.iterdir())
    baseline = rss_now()
    started, cpu = time.perf_counter(), time.process_time()
    for path in files:
        with Image.open(path) as image:
            fmt = image.format
            upright = ImageOps.exif_transpose(image)
        options = {"quality": JPEG_QUALITY} if fmt == "JPEG" else {}
        upright.save(out / path.name, format=fmt, **options)
        upright.thumbnail((320, 320))
        upright.save(out / f"{path.stem}.webp", format="WEBP", quality=80)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    shutil.rmtree(out)
    return {"seconds": seconds, "cpu": cpu, "files": len(files), "peak": rss_peak(), "baseline": baseline}


def run_platform(folder: Path) -> dict[str, float]:
    data_dir = tempfile.mkdtemp(prefix="annotation-bench-")
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

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotation.media_import import media_import_start_path
    from annotation.models import Project
    from platform_core.models import Job, Membership, Organization, Role

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", password="bench-pw-1234")
    Membership.objects.create(user=user, organization=org, role=Role.MANAGER)
    project = Project.objects.create(organization=org, name="Bench")
    baseline = rss_now()
    started, cpu = time.perf_counter(), time.process_time()
    job = media_import_start_path(project=project, source=str(folder), user=user)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.message
    assert job.report["imported"] == len(list(folder.iterdir())), job.report
    shutil.rmtree(data_dir)
    return {"seconds": seconds, "cpu": cpu, "files": job.report["imported"], "peak": rss_peak(), "baseline": baseline}


def child(kind: str, folder: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, str(folder)]
    result = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603 - this very script
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="how many photographs (default 500)")
    parser.add_argument("--child", choices=["raw", "platform"], help=argparse.SUPPRESS)
    parser.add_argument("folder", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = run_raw if args.child == "raw" else run_platform
        print(json.dumps(run(Path(args.folder))))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    try:
        size = make_photos(folder, args.count)
        raw = child("raw", folder)
        platform = child("platform", folder)
    finally:
        shutil.rmtree(folder)
    mb = 1024 * 1024
    print(f"import_media ({args.count} photographs, {size / mb:.0f} MiB, 0.5×–3× of scikit-image's samples)")
    for label, result in (("platform import job", platform), ("raw Pillow", raw)):
        seconds, peak, added = result["seconds"], result["peak"] / mb, (result["peak"] - result["baseline"]) / mb
        print(
            f"  {label:<20} {seconds:7.2f} s  {seconds / result['files'] * 1e3:6.1f} ms/file  "
            f"({result['cpu']:.2f} s CPU)   peak RSS {peak:5.0f} MiB (+{added:.0f} MiB for the work)"
        )
    print(
        f"  ratio platform/raw: {platform['seconds'] / raw['seconds']:.2f}x (goal <= 1.5x); "
        f"CPU time {platform['cpu'] / raw['cpu']:.2f}x"
    )


if __name__ == "__main__":
    main()
