"""manage.py dataset_stats --project <id> [--format latex|csv|json] [--table KEY] [--out FILE]
[--evaluate-against <project id>] [--evaluate-preannotations]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.datasets.evaluation import OBJECTS, PREANNOTATIONS, AnnotationSet, Comparison, evaluate
from annotation.datasets.statistics import project_statistics
from annotation.datasets.tables import table_csv, table_latex, tables_latex, tables_zip
from annotation.models import Project


class Command(BaseCommand):
    help = (
        "Print (or write to --out) a project's dataset statistics: items, objects, categories, objects per "
        "item, COCO size classes, per-label counts, answers per question, annotators' throughput and task "
        "progress (pre-annotations awaiting review are counted apart). --format latex gives booktabs tables, "
        "json every figure, csv one table (--table KEY) or, with --out FILE.zip, a zip of one CSV per table. "
        "Evaluation: --evaluate-against ID scores this project's objects against project ID's (images "
        "matched by file name); --evaluate-preannotations scores this project's pre-annotations (on "
        "finished images) against its people's objects, or against project ID's with --evaluate-against. "
        "Evaluation gives mean IoU and Dice per class and overall, and COCOeval AP for segm and bbox "
        "(AP 0 for an empty prediction set; figures COCOeval leaves undefined are null / --); on videos (matched "
        "by file name too), DAVIS' J, F and J&F per object and overall (tables evaluation_videos and "
        "evaluation_video_objects), tracks paired by track number in one project, by best mean IoU across two."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", type=int, required=True, help="the project's id")
        parser.add_argument("--format", choices=["latex", "csv", "json"], default="latex")
        parser.add_argument("--table", default="", help="only this table (its key, e.g. labels, sizes, answers)")
        parser.add_argument("--out", default="", help="write here instead of printing (a .zip for every CSV table)")
        parser.add_argument(
            "--evaluate-against", type=int, metavar="ID", help="ground truth: the objects of project ID"
        )
        parser.add_argument(
            "--evaluate-preannotations",
            action="store_true",
            help="prediction: this project's pre-annotations (else its objects)",
        )

    def _project(self, pk: int) -> Project:
        # A command acts for no member of any organisation: whoever runs it on the server may read
        # every project, so projects are looked up by id; the evaluation still refuses a reference
        # project of another organisation.
        try:
            return Project.objects.select_related("organization").get(pk=pk)
        except Project.DoesNotExist:
            raise CommandError(f"No project with id {pk}.") from None

    def handle(self, *args: Any, **options: Any) -> None:
        project = self._project(options["project"])
        evaluation = None
        if options["evaluate_against"] is not None or options["evaluate_preannotations"]:
            reference = project
            if options["evaluate_against"] is not None:
                reference = self._project(options["evaluate_against"])
                if reference.organization_id != project.organization_id:
                    raise CommandError("The reference project belongs to another organisation.")
            prediction = PREANNOTATIONS if options["evaluate_preannotations"] else OBJECTS
            try:
                comparison = Comparison(AnnotationSet(project, prediction), AnnotationSet(reference, OBJECTS))
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            evaluation = evaluate(comparison)
        stats = project_statistics(project)
        tables = stats.tables() + (evaluation.tables() if evaluation else [])
        if options["table"]:
            tables = [table for table in tables if table.key == options["table"]]
            if not tables:
                keys = [t.key for t in stats.tables() + (evaluation.tables() if evaluation else [])]
                raise CommandError(f"No table {options['table']!r}: use one of {', '.join(keys)}.")
        out = Path(options["out"]) if options["out"] else None
        if out is not None and not out.parent.is_dir():
            raise CommandError(f"No folder {str(out.parent)!r} to write {out.name!r} into.")

        format_ = options["format"]
        if format_ == "csv" and len(tables) > 1:
            if out is None or out.suffix.lower() != ".zip":
                raise CommandError("Several CSV tables go into a zip: give --out FILE.zip, or pick one with --table.")
            out.write_bytes(tables_zip(tables))
            self.stdout.write(self.style.SUCCESS(f"Wrote {len(tables)} tables to {out}."))
            return
        if format_ == "csv":
            text = table_csv(tables[0])
        elif format_ == "latex":
            heading = f"Dataset statistics of {project.name}"
            if evaluation is not None:
                heading += f"; evaluation of {evaluation.title}"
            text = table_latex(tables[0]) if options["table"] else tables_latex(tables, heading=heading)
        elif options["table"]:
            text = json.dumps(tables[0].as_dict(), indent=2, ensure_ascii=False) + "\n"
        else:
            data = {"statistics": stats.as_dict(), "evaluation": evaluation.as_dict() if evaluation else None}
            text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        if out is None:
            self.stdout.write(text, ending="")
        else:
            out.write_text(text, encoding="utf-8")
            self.stdout.write(self.style.SUCCESS(f"Wrote {out}."))
