"""manage.py sam2_checkpoints download [--model tiny ...] [--base-url URL] [--dir <folder>]
manage.py sam2_checkpoints list"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from inference import registry
from inference.checkpoints import OFFICIAL_BASE_URL, CheckpointError, download_checkpoint


class _Raw:
    """The command's stderr without the newline Django adds to every write (for a progress bar)."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> None:
        self.wrapper.write(text, ending="")

    def flush(self) -> None:
        self.wrapper.flush()


class Command(BaseCommand):
    help = (
        "Official SAM 2.1 checkpoints. `download` fetches them (all four unless --model is given) into "
        "SAM2_CHECKPOINT_DIR with a progress bar, resumes an interrupted download, and checks that each "
        "file loads into its model's config before putting it in place. `list` says what is there."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        download = actions.add_parser("download", help="fetch official checkpoints")
        download.add_argument("--model", action="append", choices=list(registry.MODELS), help="repeatable")
        download.add_argument("--base-url", default=OFFICIAL_BASE_URL, help=f"default {OFFICIAL_BASE_URL}")
        download.add_argument("--dir", help="the checkpoint folder (default: SAM2_CHECKPOINT_DIR)")
        download.add_argument("--retries", type=int, default=3, help="resumes after a dropped connection")
        download.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up")
        download.add_argument("--force", action="store_true", help="download even when the file is there")
        listing = actions.add_parser("list", help="show which checkpoints are present")
        listing.add_argument("--dir", help="the checkpoint folder (default: SAM2_CHECKPOINT_DIR)")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["dir"] or settings.SAM2_CHECKPOINT_DIR)
        if options["action"] == "list":
            self._list(directory)
            return
        failed = []
        for key in options["model"] or list(registry.MODELS):
            spec = registry.MODELS[key]
            target = directory / spec.checkpoint
            if target.exists() and not registry.untrained_marker_for(target).exists() and not options["force"]:
                self.stdout.write(f"{key}: {target} is already there.")
                continue
            try:
                path = download_checkpoint(
                    key=key,
                    directory=directory,
                    base_url=options["base_url"],
                    retries=options["retries"],
                    timeout=options["timeout"],
                    progress=_Raw(self.stderr),
                )
            except CheckpointError as exc:
                self.stderr.write(f"{key}: {exc}")
                failed.append(key)
                continue
            self.stdout.write(f"{key}: {path} verified and in place.")
        if failed:
            raise CommandError(f"Not downloaded: {', '.join(failed)}.")

    def _list(self, directory: Path) -> None:
        self.stdout.write(f"Checkpoint folder: {directory}")
        for key, spec in registry.MODELS.items():
            path = directory / spec.checkpoint
            if not path.is_file():
                state = "missing"
            elif registry.untrained_marker_for(path).is_file():
                state = "present, random weights (untrained)"
            else:
                state = f"present, {path.stat().st_size / 1048576:.0f} MiB"
            self.stdout.write(f"  {key:<10} {spec.checkpoint:<28} {state}")
