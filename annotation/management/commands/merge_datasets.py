"""manage.py merge_datasets --into <project id> --from <id> [--from <id> ...] [--from-coco <file>]
[--map <source label id>=<target label id> ...] [--create-labels] [--user <username>]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.datasets.coco_import import dataset_import_run
from annotation.datasets.coco_reading import ImportRefused
from annotation.datasets.command_support import command_project, command_tenant
from annotation.datasets.merge import check_mapping, check_sources, dataset_merge_run
from annotation.models import Project


class Command(BaseCommand):
    help = (
        "Merge datasets into one project here and now: every item of the --from projects (same organisation) is "
        "copied in with its answers and annotations, labels mapped by name (or --map source=target label ids); "
        "each --from-coco file (a COCO .json or a zip with images) is imported as accepted objects. "
        "--create-labels creates the labels the target lacks. Prints the report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--into", type=int, required=True, help="the target project's id")
        parser.add_argument("--from", dest="sources", type=int, action="append", default=[], help="a project's id")
        parser.add_argument("--from-coco", action="append", default=[], help="a COCO .json or .zip file")
        parser.add_argument("--map", action="append", default=[], help="source label id=target label id")
        parser.add_argument("--create-labels", action="store_true", help="create the labels the target lacks")
        parser.add_argument("--user", help="the manager the merge acts as (default: the organisation's first owner)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = command_project(options["into"])
        tenant, user = command_tenant(project, options["user"])
        if not options["sources"] and not options["from_coco"]:
            raise CommandError("Name at least one --from project or --from-coco file.")
        mapping: dict[str, str] = {}
        for pair in options["map"]:
            source, sep, target = pair.partition("=")
            if not sep:
                raise CommandError(f"--map {pair!r}: write source label id=target label id.")
            mapping[source.strip()] = target.strip()
        report: dict[str, Any] = {}
        try:
            if options["sources"]:
                ids = check_sources(tenant, project, options["sources"])
                cleaned = check_mapping(tenant, project, ids, mapping)
                sources = [Project.objects.for_org(tenant.org).get(pk=pk) for pk in ids]
                state = dataset_merge_run(
                    tenant=tenant,
                    project=project,
                    sources=sources,
                    actor=user,
                    mapping=cleaned,
                    create_labels=options["create_labels"],
                )
                report["projects"] = state.report()
            for name in options["from_coco"]:
                path = Path(name).expanduser().resolve()
                if not path.is_file():
                    raise CommandError(f"{name}: no such file.")
                params = {
                    "source": "zip" if path.suffix.lower() == ".zip" else "json",
                    "path": str(path),
                    "label": path.name,
                    "create_labels": options["create_labels"],
                    "proposed": False,
                }
                report.setdefault("coco", []).append(
                    dataset_import_run(tenant=tenant, project=project, params=params, actor=user)
                )
        except ImportRefused as exc:
            raise CommandError(exc.message) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(json.dumps(report, indent=2, ensure_ascii=False))
        items = report.get("projects", {}).get("items", 0) + sum(r["created_items"] for r in report.get("coco", []))
        annotations = report.get("projects", {}).get("annotations", 0) + sum(
            r["annotations"] for r in report.get("coco", [])
        )
        line = f"{items} items and {annotations} annotations merged into {project.name!r}."
        self.stdout.write(self.style.SUCCESS(line))
