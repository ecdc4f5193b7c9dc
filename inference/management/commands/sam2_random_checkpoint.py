"""manage.py sam2_random_checkpoint [--model tiny] [--dir <folder>] [--seed 0] [--force]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference import registry
from inference.checkpoints import CheckpointError, write_random_checkpoint


class Command(BaseCommand):
    help = (
        "Write a SAM 2.1 checkpoint with random weights in the official format ({'model': state_dict}) "
        "under the model's official file name, for tests, benchmarks and plumbing. Its masks are noise: "
        "the model is reported as untrained. Refuses to replace a real checkpoint without --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", choices=list(registry.MODELS), default="tiny")
        parser.add_argument("--dir", help="the checkpoint folder (default: SAM2_CHECKPOINT_DIR)")
        parser.add_argument("--seed", type=int, default=0, help="the random seed of the weights")
        parser.add_argument("--force", action="store_true", help="replace a checkpoint that is already there")

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["dir"] or settings.SAM2_CHECKPOINT_DIR)
        try:
            path = write_random_checkpoint(
                key=options["model"], directory=directory, seed=options["seed"], force=options["force"]
            )
        except CheckpointError as exc:
            raise CommandError(str(exc)) from exc
        size_mib = path.stat().st_size / 1048576
        self.stdout.write(f"Wrote {path} ({size_mib:.0f} MiB, random weights: the model is marked untrained).")
