"""manage.py split_dataset --project <id> --ratios 0.8,0.1,0.1 --seed 0 --name v1"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.datasets.command_support import command_project
from annotation.datasets.splits import dataset_split_create, split_counts


class Command(BaseCommand):
    help = (
        "Split a project's items into train / val / test by ratios with a seed, stratified by each item's most "
        "frequent label, and save the split under a name (exports take --split <id> --subset train|val|test). "
        "The same items, objects, ratios and seed give the same split."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", type=int, required=True, help="the project's id")
        parser.add_argument("--ratios", default="0.8,0.1,0.1", help="train,val,test shares adding up to 1")
        parser.add_argument("--seed", type=int, default=0, help="the shuffle's seed (default 0)")
        parser.add_argument("--name", required=True, help="the split's name, unique in the project")

    def handle(self, *args: Any, **options: Any) -> None:
        project = command_project(options["project"])
        try:
            split = dataset_split_create(
                project=project, name=options["name"], ratios=options["ratios"], seed=options["seed"]
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        counts = split_counts(split)
        summary = ", ".join(f"{subset} {count}" for subset, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Split {split.name!r} (id {split.pk}) of {project.name!r}: {summary}."))
