"""The statistics page of a project (reviewers, managers and owners): charts and tables of the dataset,
the evaluation form and its results, and the downloads of every table.

One URL serves it all, by its query:

- ``format=csv`` (with ``table=<key>``: that table; without: a zip of one CSV per table),
  ``format=latex`` (booktabs tables; ``table=`` picks one), ``format=json``;
- ``prediction=objects|preannotations`` with ``truth=this|<project id>``: the evaluation of this
  project's objects or pre-annotations against the objects of this project or of another one of
  the organisation (a foreign or missing project is a 404, like any id here): images by IoU, Dice
  and AP, videos by J and F per object. With a ``format``, the downloads hold the evaluation's
  tables too;
- an htmx request (the evaluation form) gets the evaluation fragment alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.http import urlencode
from django.utils.text import slugify
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from annotation.datasets.charts import Bar, Stack, bar_chart, column_chart, stacked_chart
from annotation.datasets.evaluation import (
    OBJECTS,
    SELECTIONS,
    AnnotationSet,
    Comparison,
    Evaluation,
    evaluate,
    reference_projects,
)
from annotation.datasets.statistics import SIZE_CLASSES, DatasetStatistics, project_statistics
from annotation.datasets.tables import Table, table_csv, table_latex, tables_latex, tables_zip
from annotation.datasets.video_scores import ObjectFigures
from annotation.models import Project
from annotation.selectors import project_get
from platform_core.models import Role
from platform_core.tenancy import Tenant, member_required

DOWNLOADS = ("csv", "latex", "json")
VIDEO_CHART_BARS = 40
THIS_PROJECT = "this"


def comparison_from_query(tenant: Tenant, project: Project, query: Mapping[str, str]) -> Comparison | None:
    """The comparison the query asks for (None when it asks for none); ValidationError for a bad one."""
    prediction, truth = query.get("prediction", ""), query.get("truth", "")
    if not prediction and not truth:
        return None
    if prediction not in SELECTIONS:
        raise ValidationError(f"Choose what to evaluate: {' or '.join(SELECTIONS.values())}.")
    if truth in ("", THIS_PROJECT):
        reference = project
    elif truth.isdigit():
        reference = project_get(tenant, int(truth))
    else:
        raise ValidationError("Choose the ground truth: this project or another project.")
    return Comparison(AnnotationSet(project, prediction), AnnotationSet(reference, OBJECTS))


def _attachment(response: HttpResponse, name: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _download(
    project: Project, format_: str, key: str, stats: DatasetStatistics, evaluation: Evaluation | None
) -> HttpResponse:
    tables = stats.tables() + (evaluation.tables() if evaluation else [])
    chosen: Table | None = None
    if key:
        chosen = next((table for table in tables if table.key == key), None)
        if chosen is None:
            return HttpResponseBadRequest(f"No table {key[:40]!r}: use one of {', '.join(t.key for t in tables)}.")
    base = f"{slugify(project.name) or 'project'}-statistics"
    if format_ == "csv":
        if chosen is not None:
            response = HttpResponse(table_csv(chosen), content_type="text/csv; charset=utf-8")
            return _attachment(response, f"{base}-{chosen.key}.csv")
        return _attachment(HttpResponse(tables_zip(tables), content_type="application/zip"), f"{base}.zip")
    if format_ == "latex":
        if chosen is not None:
            text = table_latex(chosen)
        else:
            heading = f"Dataset statistics of {project.name}"
            if evaluation is not None:
                heading += f"; evaluation of {evaluation.title}"
            text = tables_latex(tables, heading=heading)
        suffix = f"-{chosen.key}" if chosen is not None else ""
        return _attachment(HttpResponse(text, content_type="text/x-tex; charset=utf-8"), f"{base}{suffix}.tex")
    if chosen is not None:
        data: dict[str, Any] = chosen.as_dict()
    else:
        data = {"statistics": stats.as_dict(), "evaluation": evaluation.as_dict() if evaluation else None}
    response = HttpResponse(json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json")
    return _attachment(response, f"{base}{f'-{chosen.key}' if chosen is not None else ''}.json")


def _charts(stats: DatasetStatistics) -> dict[str, Any]:
    labels = stats.object_labels
    series = [(f"size-{key}", name) for key, name, _ in SIZE_CLASSES]
    stacks = [Stack("All objects", list(stats.sizes.values()))]
    stacks += [Stack(label.name, [label.small, label.medium, label.large]) for label in labels]
    return {
        "labels": bar_chart(
            [Bar(label.name, label.objects, label.color) for label in labels],
            chart_id="chart-labels",
            title="Objects per label",
        )
        if labels
        else "",
        "histogram": column_chart(
            [Bar(bin_.name, bin_.items) for bin_ in stats.histogram],
            chart_id="chart-histogram",
            title="Items by number of objects",
            x_title="objects per item",
        )
        if stats.histogram
        else "",
        "sizes": stacked_chart(stacks, chart_id="chart-sizes", title="Objects by size class", series=series)
        if labels
        else "",
    }


def _evaluation_chart(evaluation: Evaluation | None) -> str:
    scored = [figures for figures in evaluation.classes if figures.items] if evaluation else []
    if not scored:
        return ""
    return bar_chart(
        [Bar(f.name, f.mean_iou or 0.0, text=f"{f.mean_iou or 0.0:.3f}") for f in scored],
        chart_id="chart-evaluation",
        title="Mean IoU per class",
        scale_max=1.0,
    )


def _video_chart(evaluation: Evaluation | None) -> str:
    """J&F per ground-truth object (the first ``VIDEO_CHART_BARS``; the table holds them all)."""
    videos = evaluation.videos if evaluation else None
    scored = [o for o in videos.objects if o.jf is not None][:VIDEO_CHART_BARS] if videos else []
    if not scored:
        return ""
    return bar_chart(
        [Bar(_object_name(o), o.jf or 0.0, text=f"{o.jf:.3f}") for o in scored],
        chart_id="chart-video-evaluation",
        title="J&F per object",
        scale_max=1.0,
    )


def _object_name(figures: ObjectFigures) -> str:
    track = f" #{figures.track}" if figures.track is not None else ""
    return f"{figures.video} · {figures.label}{track}"


@member_required(role=Role.REVIEWER)
@require_GET
@vary_on_headers("HX-Request")
def dataset_statistics(request: HttpRequest, project_id: int) -> HttpResponse:
    tenant = request.tenant
    project = project_get(tenant, project_id)
    error = ""
    try:
        comparison = comparison_from_query(tenant, project, request.GET)
    except ValidationError as exc:
        comparison, error = None, " ".join(exc.messages)
    format_ = request.GET.get("format", "")
    if format_:
        if format_ not in DOWNLOADS:
            return HttpResponseBadRequest(f"Unknown format: use {', '.join(DOWNLOADS)}.")
        if error:
            return HttpResponseBadRequest(error)
        evaluation = evaluate(comparison) if comparison else None
        return _download(project, format_, request.GET.get("table", ""), project_statistics(project), evaluation)

    evaluation = evaluate(comparison) if comparison else None
    context: dict[str, Any] = {
        "project": project,
        "evaluation": evaluation,
        "evaluation_tables": evaluation.tables() if evaluation else [],
        "evaluation_chart": _evaluation_chart(evaluation),
        "video_chart": _video_chart(evaluation),
        "evaluation_error": error,
        "evaluation_query": urlencode(
            {"prediction": comparison.prediction.selection, "truth": request.GET.get("truth") or THIS_PROJECT}
        )
        if comparison
        else "",
        "references": reference_projects(tenant, project),
        "selected": {"prediction": request.GET.get("prediction", OBJECTS), "truth": request.GET.get("truth", "")},
    }
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "annotation/dataset_statistics.html#evaluation", context)
    stats = project_statistics(project)
    context.update(
        stats=stats,
        tables={table.key: table for table in stats.tables()},
        charts=_charts(stats),
    )
    return render(request, "annotation/dataset_statistics.html", context)
