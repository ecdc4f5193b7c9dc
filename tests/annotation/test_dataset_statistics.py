"""Dataset statistics: figures counted by hand on a small world (known rectangles, so known areas,
size classes at their boundaries, a histogram), a fixed number of queries, LaTeX (booktabs rules,
escaping) and CSV (parses back) renderings, the page (charts as inline SVG, tables, downloads; for
reviewers and above, 403 for annotators, 404 for other organisations) and the command."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.annotations.services import annotation_create
from annotation.datasets.charts import Bar, bar_chart
from annotation.datasets.statistics import project_statistics
from annotation.datasets.tables import latex_escape, table_csv, tables_latex
from annotation.masks import mask_encode
from annotation.models import Annotation, Label, MediaItem, Project, Question, Task
from platform_core.tenancy import resolve_tenant
from tests.conftest import World
from tests.factories import ProjectFactory, make_image


def rect(x: int, y: int, w: int, h: int, *, width: int = 120, height: int = 100) -> dict:
    """The RLE of a ``w`` × ``h`` rectangle at (x, y): exactly ``w * h`` pixels."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y : y + h, x : x + w] = True
    return mask_encode(mask)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


@dataclass
class StatsWorld:
    project: Project
    cat: Label
    sign: Label
    scene: Label
    pose: Question
    light: Question
    where: Question
    items: dict[str, MediaItem]


def make_stats_world(world: World) -> StatsWorld:
    """Four 120 × 100 images:

    - A: cats of 10×10 (100 px, small) and 32×32 (1024, medium: the boundary), a sign of 100×100
      (10 000, large); drawn by the annotator at 10:00, last changed 10:30; done by them at 10:45;
    - B: a cat of 31×33 (1023, small) and a pre-annotated cat (awaiting review, left out); done
      by the annotator at 12:00;
    - C: nothing;
    - D: a cat of 96×96 (9216, large: the boundary) and a sign of 10×10; drawn and done by the
      manager at 09:00.
    """
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    project = ProjectFactory(organization=world.demo.org, name="Stats & co")
    cat = Label.objects.create(project=project, name="cat", color="#ff8800", order=0)
    sign = Label.objects.create(project=project, name="sign", color="#0044ff", kind=Label.Kind.BOX, order=1)
    scene = Label.objects.create(project=project, name="scene", kind=Label.Kind.CLASSIFICATION, order=2)
    pose = Question.objects.create(project=project, label=cat, text="Pose", choices=["sitting", "lying"])
    light = Question.objects.create(project=project, text="Light", choices=["day", "night"])
    where = Question.objects.create(project=project, label=scene, text="Where", choices=["indoor", "outdoor"])
    items = {name: make_image(project, name=f"{name}.png", width=120, height=100) for name in "ABCD"}
    first = Task.objects.create(project=project, name="First", assignee=world.annotator)
    second = Task.objects.create(project=project, name="Second")
    MediaItem.objects.filter(pk__in=[items["A"].pk, items["B"].pk]).update(task=first)
    MediaItem.objects.filter(pk__in=[items["C"].pk, items["D"].pk]).update(task=second)

    def add(item: str, label: Label, rle: dict, author: Any, **extra: Any) -> Annotation:
        return annotation_create(tenant=tenant, media=items[item], label=label, rle=rle, author=author, **extra)

    sitting, lying = {str(pose.pk): "sitting"}, {str(pose.pk): "lying"}
    by_annotator = [
        add("A", cat, rect(0, 0, 10, 10), world.annotator, answers=sitting),
        add("A", cat, rect(20, 20, 32, 32), world.annotator, answers=lying),
        add("A", sign, rect(0, 0, 100, 100), world.annotator),
    ]
    by_manager = [
        add("B", cat, rect(50, 50, 31, 33), world.manager, answers=sitting),
        add("D", cat, rect(0, 0, 96, 96), world.manager),
        add("D", sign, rect(100, 0, 10, 10), world.manager),
    ]
    add(
        "B",
        cat,
        rect(0, 0, 20, 20),
        world.manager,
        answers=lying,
        source=Annotation.Source.MODEL,
        source_detail={"score": 0.5},
        proposed=True,
    )
    Annotation.objects.filter(pk__in=[a.pk for a in by_annotator]).update(created_at=at(10), updated_at=at(10, 30))
    # B's cat was drawn by the manager; its author is the manager.
    Annotation.objects.filter(pk__in=[a.pk for a in by_manager]).update(created_at=at(9), updated_at=at(9))
    Annotation.objects.filter(proposed=True, media__project=project).update(created_at=at(8), updated_at=at(8))
    MediaItem.objects.filter(pk=items["A"].pk).update(
        done_at=at(10, 45), done_by=world.annotator, answers={str(light.pk): "day", str(where.pk): "indoor"}
    )
    MediaItem.objects.filter(pk=items["B"].pk).update(
        done_at=at(12), done_by=world.annotator, answers={str(light.pk): "night"}
    )
    MediaItem.objects.filter(pk=items["C"].pk).update(answers={str(light.pk): "day"})
    # A choice since removed from the question is still counted, after the question's own.
    MediaItem.objects.filter(pk=items["D"].pk).update(
        done_at=at(9), done_by=world.manager, answers={str(light.pk): "dusk"}
    )
    return StatsWorld(
        project, cat, sign, scene, pose, light, where, {k: MediaItem.objects.get(pk=v.pk) for k, v in items.items()}
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stats_url(project: Project, org_slug: str = "demo-lab") -> str:
    return reverse("dataset_statistics", kwargs={"org_slug": org_slug, "project_id": project.pk})


# --- figures ---------------------------------------------------------------------------------------


def test_it_counts_items_objects_and_categories(world: World) -> None:
    stats = project_statistics(make_stats_world(world).project)
    assert (stats.items, stats.images, stats.videos, stats.done) == (4, 4, 0, 3)
    assert (stats.objects, stats.proposed, stats.categories) == (6, 1, 2)
    assert stats.mean_objects_per_item == 1.5


def test_it_makes_the_objects_per_item_histogram(world: World) -> None:
    stats = project_statistics(make_stats_world(world).project)
    # C holds none, B one (its pre-annotation is left out), D two, A three.
    assert [(b.name, b.items) for b in stats.histogram] == [("0", 1), ("1", 1), ("2", 1), ("3", 1)]
    rows = {row[0]: row[1:] for row in stats.histogram_table().rows}
    assert rows["3"] == [1, 25.0]


def test_it_puts_areas_in_coco_size_classes_at_the_boundaries(world: World) -> None:
    stats = project_statistics(make_stats_world(world).project)
    cat, sign = stats.object_labels
    # 100 and 1023 are small, 1024 = 32² is medium, 9216 = 96² is large.
    assert (cat.name, cat.objects, cat.items, cat.proposed) == ("cat", 4, 3, 1)
    assert cat.sizes == {"small": 2, "medium": 1, "large": 1}
    assert cat.mean_area == (100 + 1024 + 1023 + 9216) / 4
    assert (sign.objects, sign.items, sign.mean_area, sign.sizes) == (2, 2, 5050, {"small": 1, "medium": 0, "large": 1})
    assert stats.sizes == {"small": 3, "medium": 1, "large": 2}
    shares = {row[0]: row[3] for row in stats.sizes_table().rows}
    assert shares == pytest.approx({"Small": 50.0, "Medium": 100 / 6, "Large": 100 / 3})


def test_it_counts_answers_per_question_with_the_unanswered(world: World) -> None:
    stats = project_statistics(make_stats_world(world).project)
    rows = [(a.question, a.scope, a.choice, a.count, a.share) for a in stats.answers]
    assert rows == [
        # Per-item questions first: Light has four items to answer for, one with a removed choice.
        ("Light", "item", "day", 2, 50.0),
        ("Light", "item", "night", 1, 25.0),
        ("Light", "item", "dusk", 1, 25.0),
        ("Light", "item", "(no answer)", 0, 0.0),
        # Of the four cats (the pre-annotation's "lying" is left out), one is not answered.
        ("Pose", "object", "sitting", 2, 50.0),
        ("Pose", "object", "lying", 1, 25.0),
        ("Pose", "object", "(no answer)", 1, 25.0),
        # The classification label's question is answered on the item.
        ("Where", "item", "indoor", 1, 25.0),
        ("Where", "item", "outdoor", 0, 0.0),
        ("Where", "item", "(no answer)", 3, 75.0),
    ]
    about = {row[0]: row[1] for row in stats.answers_table().rows}
    assert about == {"Light": "each item", "Pose": "each cat object", "Where": "each item (scene)"}


def test_it_measures_annotators_throughput(world: World) -> None:
    stats = project_statistics(make_stats_world(world).project)
    people = {row.username: row for row in stats.annotators}
    assert set(people) == {"annotator", "manager"}
    annotator = people["annotator"]
    # First object at 10:00, last item done at 12:00: two items in two hours.
    assert (annotator.items_done, annotator.objects) == (2, 3)
    assert (annotator.first, annotator.last) == (at(10), at(12))
    assert annotator.span_hours == 2.0 and annotator.items_per_hour == 1.0
    manager = people["manager"]
    # Everything at 09:00 (the pre-annotation is not theirs until accepted): no span, no rate.
    assert (manager.items_done, manager.objects, manager.first, manager.last) == (1, 3, at(9), at(9))
    assert manager.items_per_hour is None


def test_it_shows_progress_per_task(world: World) -> None:
    stats = project_statistics(make_stats_world(world).project)
    assert [(t.name, t.assignee, t.done, t.total, t.percent) for t in stats.tasks] == [
        ("First", "annotator", 2, 2, 100.0),
        ("Second", "", 1, 2, 50.0),
    ]


def test_it_reads_a_fixed_number_of_queries(world: World, django_assert_max_num_queries: Any) -> None:
    made = make_stats_world(world)
    with CaptureQueriesContext(connection) as before:
        project_statistics(made.project)
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    for index in range(30):
        item = made.items["ABCD"[index % 4]]
        answers = {str(made.pose.pk): "sitting"} if index % 2 else {}
        rle = rect(index, index % 50, 5, 5)
        annotation_create(tenant=tenant, media=item, label=made.cat, rle=rle, author=world.manager, answers=answers)
    with django_assert_max_num_queries(10):
        stats = project_statistics(made.project)
    assert stats.objects == 36
    with CaptureQueriesContext(connection) as after:
        project_statistics(made.project)
    assert len(after) == len(before)


def test_it_counts_an_empty_project(world: World) -> None:
    stats = project_statistics(ProjectFactory(organization=world.demo.org))
    assert (stats.items, stats.objects, stats.histogram, stats.answers, stats.annotators) == (0, 0, [], [], [])
    assert [row[1] for row in stats.sizes_table().rows] == ["area < 32²", "32² ≤ area < 96²", "area ≥ 96²"]
    assert all(row[3] is None for row in stats.sizes_table().rows)


# --- renderings --------------------------------------------------------------------------------------


def test_it_escapes_latex_specials() -> None:
    assert latex_escape(r"a&b%c$d#e_f{g}h~i^j\k") == (
        r"a\&b\%c\$d\#e\_f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )
    assert latex_escape("two\nlines") == "two lines"
    # What the tables write themselves, in forms pdfLaTeX prints as meant.
    assert latex_escape("32² ≤ area < 96²") == r"32\textsuperscript{2} $\leq$ area \textless{} 96\textsuperscript{2}"
    assert latex_escape("6–10") == "6--10"


def test_it_writes_booktabs_latex(world: World) -> None:
    made = make_stats_world(world)
    Label.objects.filter(pk=made.sign.pk).update(name="sign_&_100%")
    stats = project_statistics(made.project)
    text = tables_latex(stats.tables(), heading="Dataset statistics of Stats & co")
    tables = len(stats.tables())
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}", r"\begin{table}"):
        assert text.count(rule) == tables, rule
    assert r"sign\_\&\_100\% & box & 2 & 2 & 5,050.0 & 1 & 0 & 1 & 0 \\" in text
    assert r"\label{tab:labels}" in text and r"\caption{Objects per label." in text
    # Every row has as many cells as its table's column specification.
    for spec, body in re.findall(r"\\begin\{tabular\}\{([lr]+)\}(.*?)\\end\{tabular\}", text, re.S):
        rows = [line for line in body.splitlines() if line.rstrip().endswith(r"\\")]
        assert rows and all(len(re.split(r"(?<!\\)&", row)) == len(spec) for row in rows)
    # Nothing unescaped slipped through (a bare %, _, # or $ outside the math this module writes).
    body = text.split("\n", 2)[2].replace(r"$\leq$", "").replace(r"$\geq$", "")
    assert not re.search(r"(?<!\\)[%_#$<>]", body)


def test_it_writes_csv_that_parses_back(world: World) -> None:
    made = make_stats_world(world)
    Label.objects.filter(pk=made.cat.pk).update(name='cat, "the" one')
    stats = project_statistics(made.project)
    rows = list(csv.DictReader(io.StringIO(table_csv(stats.labels_table()))))
    assert rows[0] == {
        "Label": 'cat, "the" one',
        "Kind": "mask",
        "Objects": "4",
        "Items": "3",
        "Mean area (px)": "2840.75",
        "Small": "2",
        "Medium": "1",
        "Large": "1",
        "Awaiting review": "1",
    }
    annotators = list(csv.DictReader(io.StringIO(table_csv(stats.annotators_table()))))
    manager = next(row for row in annotators if row["Annotator"] == "manager")
    assert manager["First activity"] == "2026-03-02T09:00:00+00:00" and manager["Items per hour"] == ""


def test_it_keeps_spreadsheets_from_running_names_as_formulas(world: World) -> None:
    made = make_stats_world(world)
    Label.objects.filter(pk=made.cat.pk).update(name="=HYPERLINK(1)")
    rows = list(csv.reader(io.StringIO(table_csv(project_statistics(made.project).labels_table()))))
    assert rows[1][0] == "'=HYPERLINK(1)"


def test_it_draws_charts_as_escaped_svg_without_styles() -> None:
    svg = str(
        bar_chart(
            [Bar("<script>alert(1)</script>", 3, "#ff0000"), Bar("b", 1, "red; x: y")], chart_id="c", title="T & U"
        )
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "T &amp; U" in svg
    assert svg.count('fill="#ff0000"') == 1 and "red; x" not in svg  # only plain #rrggbb colours
    assert "style" not in svg


# --- the page --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["owner", "manager", "reviewer"])
def test_it_shows_the_page_with_charts_and_tables(world: World, who: str) -> None:
    made = make_stats_world(world)
    response = client_for(getattr(world, who)).get(stats_url(made.project))
    assert response.status_code == 200
    page = response.content.decode()
    for chart in ("chart-labels", "chart-histogram", "chart-sizes"):
        assert f'aria-labelledby="{chart}-title"' in page
    for key in ("summary", "labels", "objects_per_item", "sizes", "answers", "annotators", "tasks"):
        assert f'data-testid="table-{key}"' in page
    assert 'fill="#ff8800"' in page and 'class="size-medium"' in page
    # The pages' Content-Security-Policy allows no inline style or script.
    assert "style=" not in page and "<style" not in page
    assert not re.search(r"<script(?![^>]*\ssrc=)", page)
    assert "Stats &amp; co" in page and "Pre-annotations of this project" in page


def test_it_links_the_page_from_the_project_page_for_reviewers_up(world: World) -> None:
    made = make_stats_world(world)
    for user, shown in ((world.owner, True), (world.reviewer, True), (world.annotator, False)):
        response = client_for(user).get(made.project.get_absolute_url())
        assert response.status_code == 200
        assert (f'href="{stats_url(made.project)}"' in response.content.decode()) is shown


def test_it_refuses_annotators(world: World) -> None:
    made = make_stats_world(world)
    client = client_for(world.annotator)
    assert client.get(stats_url(made.project)).status_code == 403
    assert client.get(stats_url(made.project) + "?format=json").status_code == 403


def test_it_answers_404_to_another_organisation(world: World) -> None:
    made = make_stats_world(world)
    outsider = client_for(world.outsider)
    assert outsider.get(stats_url(made.project)).status_code == 404
    assert outsider.get(stats_url(made.project) + "?format=csv").status_code == 404
    # Their own organisation in the URL, Demo Lab's project: still nothing.
    assert outsider.get(stats_url(made.project, "other-lab")).status_code == 404
    assert outsider.get(stats_url(world.other.project, "other-lab")).status_code == 200


def test_it_downloads_one_table_as_csv(world: World) -> None:
    made = make_stats_world(world)
    response = client_for(world.manager).get(stats_url(made.project), {"format": "csv", "table": "sizes"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="stats-co-statistics-sizes.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["Size class"], r["Objects"]) for r in rows] == [("Small", "3"), ("Medium", "1"), ("Large", "2")]


def test_it_downloads_every_table_as_a_zip_of_csv(world: World) -> None:
    made = make_stats_world(world)
    response = client_for(world.reviewer).get(stats_url(made.project), {"format": "csv"})
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        histogram = list(csv.reader(io.StringIO(archive.read("objects_per_item.csv").decode())))
    assert names == [
        f"{key}.csv" for key in ("summary", "labels", "objects_per_item", "sizes", "answers", "annotators", "tasks")
    ]
    assert histogram[0] == ["Objects", "Items", "Share (%)"] and histogram[1] == ["0", "1", "25.0"]


def test_it_downloads_latex_and_json(world: World) -> None:
    made = make_stats_world(world)
    client = client_for(world.manager)
    latex = client.get(stats_url(made.project), {"format": "latex"})
    assert latex["Content-Type"] == "text/x-tex; charset=utf-8"
    assert r"% Dataset statistics of Stats & co" in latex.content.decode()
    assert latex.content.decode().count(r"\bottomrule") == 7
    data = json.loads(client.get(stats_url(made.project), {"format": "json"}).content)
    assert data["evaluation"] is None
    figures = data["statistics"]
    assert (figures["items"], figures["objects"], figures["proposed"], figures["sizes"]) == (
        4,
        6,
        1,
        {"small": 3, "medium": 1, "large": 2},
    )
    assert [label["name"] for label in figures["labels"]] == ["cat", "sign"]
    one = json.loads(client.get(stats_url(made.project), {"format": "json", "table": "tasks"}).content)
    assert one["rows"][1] == {"task": "Second", "assignee": "", "state": "New", "done": 1, "total": 2, "percent": 50.0}


def test_it_refuses_unknown_formats_and_tables(world: World) -> None:
    made = make_stats_world(world)
    client = client_for(world.manager)
    assert client.get(stats_url(made.project), {"format": "xlsx"}).status_code == 400
    response = client.get(stats_url(made.project), {"format": "csv", "table": "nope"})
    assert response.status_code == 400 and "labels" in response.content.decode()


def test_it_reads_a_fixed_number_of_queries_for_the_page(world: World) -> None:
    made = make_stats_world(world)
    client = client_for(world.manager)
    client.get(stats_url(made.project))  # warm: session and content types
    with CaptureQueriesContext(connection) as before:
        client.get(stats_url(made.project))
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    for index in range(20):
        annotation_create(
            tenant=tenant, media=made.items["C"], label=made.cat, rle=rect(index, 0, 3, 3), author=world.annotator
        )
    with CaptureQueriesContext(connection) as after:
        assert client.get(stats_url(made.project)).status_code == 200
    assert len(after) == len(before)


# --- the command -----------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("dataset_stats", *args, stdout=out)
    return out.getvalue()


def test_it_prints_statistics_from_the_command(world: World, tmp_path: Path) -> None:
    made = make_stats_world(world)
    project = str(made.project.pk)
    data = json.loads(run("--project", project, "--format", "json"))
    assert data["statistics"]["objects"] == 6 and data["evaluation"] is None
    latex = run("--project", project)
    assert latex.count(r"\toprule") == 7 and latex.startswith("% Dataset statistics of Stats & co\n")
    labels = list(csv.DictReader(io.StringIO(run("--project", project, "--format", "csv", "--table", "labels"))))
    assert [row["Label"] for row in labels] == ["cat", "sign"]
    out = tmp_path / "all.zip"
    assert "Wrote 7 tables" in run("--project", project, "--format", "csv", "--out", str(out))
    assert len(zipfile.ZipFile(out).namelist()) == 7


def test_it_explains_what_the_command_cannot_do(world: World) -> None:
    made = make_stats_world(world)
    with pytest.raises(CommandError, match="--out FILE.zip"):
        run("--project", str(made.project.pk), "--format", "csv")
    with pytest.raises(CommandError, match="No table 'nope'"):
        run("--project", str(made.project.pk), "--table", "nope")
    with pytest.raises(CommandError, match="No project with id 0"):
        run("--project", "0")
