"""A project's dataset statistics, as academic dataset papers tabulate them: items, objects and
categories; objects per item; mask areas by COCO size class; per-label counts; per-answer counts of
every question; per-annotator throughput; progress per task.

``project_statistics`` reads them in a fixed number of queries (ten), whatever the project's size:
counts, areas and times are aggregated in the database. Two tallies are finished here, over rows
streamed with ``.iterator()`` so memory holds one chunk at a time: the objects-per-item histogram
(one count per item holding objects) and the answers, kept as JSON objects keyed by question id
(keys the database's JSON lookups would take for array indexes).

What is counted:

- Objects are annotations that are not ``proposed``: a model's pre-annotation still awaiting a
  person is counted apart (``proposed`` figures) and left out of every other figure. Objects on
  video frames count once per frame.
- Size classes follow COCO, on the mask's pixel area: small < 32², medium < 96², large ≥ 96².
- Categories are the labels objects carry (mask and box labels); classification labels describe
  whole items, so their questions are per-item questions.
- An annotator's items are those they marked done; their objects are those they last wrote
  (``Annotation.author``: accepting a pre-annotation makes it the acceptor's). Their active span runs
  from their first activity (first object written or item done) to their last; items per hour is
  items done over that span, not defined while the span is zero.

The caller fetched ``project`` through the tenancy door (a page: ``annotation.selectors.project_get``;
the command: the id it was given); nothing here reaches outside that project.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.functions import Coalesce

from annotation.datasets.tables import DATETIME, FLOAT, INT, PERCENT, Column, Table
from annotation.models import Annotation, Label, MediaItem, Project, Question, Task

SMALL_BELOW = 32 * 32
MEDIUM_BELOW = 96 * 96
SIZE_CLASSES = (
    ("small", "Small", "area < 32²"),
    ("medium", "Medium", "32² ≤ area < 96²"),
    ("large", "Large", "area ≥ 96²"),
)
# Objects per item: one bin per count up to five, then ranges widening as real datasets thin out.
HISTOGRAM_BINS: tuple[tuple[int, int | None], ...] = (
    (0, 0),
    (1, 1),
    (2, 2),
    (3, 3),
    (4, 4),
    (5, 5),
    (6, 10),
    (11, 20),
    (21, 50),
    (51, 100),
    (101, 200),
    (201, 500),
    (501, 1000),
    (1001, None),
)
ANSWER_CHUNK = 2000
NO_ANSWER = "(no answer)"


@dataclass
class LabelFigures:
    id: int
    name: str
    kind: str
    color: str
    objects: int = 0
    items: int = 0
    area_sum: int = 0
    small: int = 0
    medium: int = 0
    large: int = 0
    proposed: int = 0

    @property
    def mean_area(self) -> float | None:
        return self.area_sum / self.objects if self.objects else None

    @property
    def sizes(self) -> dict[str, int]:
        return {"small": self.small, "medium": self.medium, "large": self.large}


@dataclass
class HistogramBin:
    low: int
    high: int | None  # None: no upper bound
    items: int = 0

    @property
    def name(self) -> str:
        if self.high is None:
            return f"{self.low}+"
        return str(self.low) if self.low == self.high else f"{self.low}–{self.high}"

    def holds(self, count: int) -> bool:
        return count >= self.low and (self.high is None or count <= self.high)


@dataclass
class AnswerFigures:
    question_id: int
    question: str
    scope: str  # "object" (answered per object of ``label``) or "item"
    label: str
    choice: str
    count: int
    share: float | None  # percent of the objects of the label, or of the items


@dataclass
class AnnotatorFigures:
    user_id: int
    username: str
    items_done: int = 0
    objects: int = 0
    first: datetime | None = None
    last: datetime | None = None

    @property
    def span_hours(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        return (self.last - self.first).total_seconds() / 3600

    @property
    def items_per_hour(self) -> float | None:
        span = self.span_hours
        return self.items_done / span if span else None


@dataclass
class TaskFigures:
    id: int
    name: str
    assignee: str
    state: str
    done: int
    total: int

    @property
    def percent(self) -> float | None:
        return 100 * self.done / self.total if self.total else None


@dataclass
class DatasetStatistics:
    project_id: int
    project_name: str
    items: int = 0
    images: int = 0
    videos: int = 0
    done: int = 0
    categories: int = 0
    labels: list[LabelFigures] = field(default_factory=list)
    histogram: list[HistogramBin] = field(default_factory=list)
    answers: list[AnswerFigures] = field(default_factory=list)
    annotators: list[AnnotatorFigures] = field(default_factory=list)
    tasks: list[TaskFigures] = field(default_factory=list)

    @property
    def object_labels(self) -> list[LabelFigures]:
        return [label for label in self.labels if label.kind != Label.Kind.CLASSIFICATION]

    @property
    def objects(self) -> int:
        return sum(label.objects for label in self.labels)

    @property
    def proposed(self) -> int:
        return sum(label.proposed for label in self.labels)

    @property
    def sizes(self) -> dict[str, int]:
        return {key: sum(label.sizes[key] for label in self.labels) for key, _, _ in SIZE_CLASSES}

    @property
    def mean_objects_per_item(self) -> float | None:
        return self.objects / self.items if self.items else None

    # --- tables: what the page shows under its charts and what the downloads hold -------------

    def tables(self) -> list[Table]:
        return [
            self.summary_table(),
            self.labels_table(),
            self.histogram_table(),
            self.sizes_table(),
            self.answers_table(),
            self.annotators_table(),
            self.tasks_table(),
        ]

    def summary_table(self) -> Table:
        table = Table(
            "summary",
            "Dataset summary",
            [Column("figure", "Figure"), Column("value", "Value", FLOAT, digits=2)],
            note="Pre-annotations awaiting review are counted apart and left out of the other figures",
        )
        for name, value in (
            ("Items", self.items),
            ("Images", self.images),
            ("Videos", self.videos),
            ("Items done", self.done),
            ("Objects", self.objects),
            ("Categories", self.categories),
            ("Objects per item (mean)", self.mean_objects_per_item),
            ("Pre-annotations awaiting review", self.proposed),
        ):
            table.add(name, value)
        return table

    def labels_table(self) -> Table:
        table = Table(
            "labels",
            "Objects per label",
            [
                Column("label", "Label"),
                Column("kind", "Kind"),
                Column("objects", "Objects", INT),
                Column("items", "Items", INT),
                Column("mean_area", "Mean area (px)", FLOAT, digits=1),
                Column("small", "Small", INT),
                Column("medium", "Medium", INT),
                Column("large", "Large", INT),
                Column("proposed", "Awaiting review", INT),
            ],
            note="Items: items holding at least one object of the label; sizes by COCO area class",
        )
        for label in self.object_labels:
            table.add(
                label.name,
                label.kind,
                label.objects,
                label.items,
                label.mean_area,
                label.small,
                label.medium,
                label.large,
                label.proposed,
            )
        return table

    def histogram_table(self) -> Table:
        table = Table(
            "objects_per_item",
            "Objects per item",
            [Column("objects", "Objects"), Column("items", "Items", INT), Column("share", "Share (%)", PERCENT)],
        )
        for bin_ in self.histogram:
            table.add(bin_.name, bin_.items, 100 * bin_.items / self.items if self.items else None)
        return table

    def sizes_table(self) -> Table:
        table = Table(
            "sizes",
            "Objects by size class",
            [
                Column("size", "Size class"),
                Column("range", "Mask area (px)"),
                Column("objects", "Objects", INT),
                Column("share", "Share (%)", PERCENT),
            ],
        )
        sizes, total = self.sizes, self.objects
        for key, name, range_ in SIZE_CLASSES:
            table.add(name, range_, sizes[key], 100 * sizes[key] / total if total else None)
        return table

    def answers_table(self) -> Table:
        table = Table(
            "answers",
            "Answers per question",
            [
                Column("question", "Question"),
                Column("about", "About"),
                Column("answer", "Answer"),
                Column("count", "Count", INT),
                Column("share", "Share (%)", PERCENT),
            ],
            note="Per-object questions count the label's objects; per-item questions count items",
        )
        for row in self.answers:
            if row.scope == "object":
                about = f"each {row.label} object"
            else:
                about = f"each item ({row.label})" if row.label else "each item"
            table.add(row.question, about, row.choice, row.count, row.share)
        return table

    def annotators_table(self) -> Table:
        table = Table(
            "annotators",
            "Annotators",
            [
                Column("annotator", "Annotator"),
                Column("items_done", "Items done", INT),
                Column("objects", "Objects", INT),
                Column("first", "First activity", DATETIME),
                Column("last", "Last activity", DATETIME),
                Column("hours", "Active span (h)", FLOAT, digits=1),
                Column("items_per_hour", "Items per hour", FLOAT, digits=1),
            ],
            note="Objects: those the annotator last wrote; the span runs from first to last activity",
        )
        for row in self.annotators:
            table.add(
                row.username, row.items_done, row.objects, row.first, row.last, row.span_hours, row.items_per_hour
            )
        return table

    def tasks_table(self) -> Table:
        table = Table(
            "tasks",
            "Progress per task",
            [
                Column("task", "Task"),
                Column("assignee", "Assignee"),
                Column("state", "State"),
                Column("done", "Done", INT),
                Column("total", "Items", INT),
                Column("percent", "Done (%)", PERCENT),
            ],
        )
        for task in self.tasks:
            table.add(task.name, task.assignee, task.state, task.done, task.total, task.percent)
        return table

    def as_dict(self) -> dict[str, Any]:
        """The figures for JSON: totals, and every table's rows."""
        return {
            "project": {"id": self.project_id, "name": self.project_name},
            "items": self.items,
            "images": self.images,
            "videos": self.videos,
            "done": self.done,
            "objects": self.objects,
            "proposed": self.proposed,
            "categories": self.categories,
            "sizes": self.sizes,
            "labels": [{**asdict(label), "mean_area": label.mean_area} for label in self.object_labels],
            "objects_per_item": [
                {"bin": b.name, "low": b.low, "high": b.high, "items": b.items} for b in self.histogram
            ],
            "answers": [asdict(row) for row in self.answers],
            "annotators": [
                {
                    **asdict(row),
                    "first": row.first.isoformat() if row.first else None,
                    "last": row.last.isoformat() if row.last else None,
                    "span_hours": row.span_hours,
                    "items_per_hour": row.items_per_hour,
                }
                for row in self.annotators
            ],
            "tasks": [{**asdict(task), "percent": task.percent} for task in self.tasks],
        }


# --- reads ----------------------------------------------------------------------------------------


def _item_counts(project: Project) -> dict[str, int]:
    items = MediaItem.objects.filter(project=project).order_by()
    return items.aggregate(
        items=Count("id"),
        images=Count("id", filter=Q(kind=MediaItem.Kind.IMAGE)),
        videos=Count("id", filter=Q(kind=MediaItem.Kind.VIDEO)),
        done=Count("id", filter=Q(done_at__isnull=False)),
    )


def _label_figures(project: Project) -> list[LabelFigures]:
    labels = {
        row["id"]: LabelFigures(**row)
        for row in project.labels.order_by("order", "name", "id").values("id", "name", "kind", "color")
    }
    rows = (
        Annotation.objects.filter(label__project=project)
        .order_by()
        .values("label_id", "proposed")
        .annotate(
            objects=Count("id"),
            items=Count("media_id", distinct=True),
            area_sum=Coalesce(Sum("area"), 0),
            small=Count("id", filter=Q(area__lt=SMALL_BELOW)),
            medium=Count("id", filter=Q(area__gte=SMALL_BELOW, area__lt=MEDIUM_BELOW)),
            large=Count("id", filter=Q(area__gte=MEDIUM_BELOW)),
        )
    )
    for row in rows:
        label = labels.get(row["label_id"])
        if label is None:
            continue
        if row["proposed"]:
            label.proposed += row["objects"]
        else:
            label.objects, label.items, label.area_sum = row["objects"], row["items"], row["area_sum"]
            label.small, label.medium, label.large = row["small"], row["medium"], row["large"]
    return list(labels.values())


def _histogram(project: Project, items: int) -> list[HistogramBin]:
    # One row per item holding objects, streamed and tallied here: grouping the counts again in
    # the database needs a correlated subquery per item, which PostgreSQL runs far slower.
    per_item = (
        Annotation.objects.filter(label__project=project, proposed=False)
        .order_by()
        .values("media_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    tally = Counter(per_item.iterator(chunk_size=ANSWER_CHUNK))
    tally[0] = items - sum(tally.values())
    bins = [HistogramBin(low, high) for low, high in HISTOGRAM_BINS]
    for count, n in tally.items():
        next(b for b in bins if b.holds(count)).items += n
    # Up to the last bin that holds items: a long tail of empty bins says nothing.
    filled = [index for index, bin_ in enumerate(bins) if bin_.items]
    return bins[: filled[-1] + 1] if filled else []


def _answer_scope(question: Question) -> str:
    if question.label is None or question.label.kind == Label.Kind.CLASSIFICATION:
        return "item"  # classification labels' answers are kept on the item
    return "object"


def _answer_figures(project: Project, labels: list[LabelFigures], items: int) -> list[AnswerFigures]:
    # Per-item questions first, then each label's in label order (NULLs sort differently per database).
    questions = list(
        project.questions.select_related("label").order_by(
            F("label__order").asc(nulls_first=True), F("label_id").asc(nulls_first=True), "order", "id"
        )
    )
    if not questions:
        return []
    scopes = {question.pk: _answer_scope(question) for question in questions}
    counted: dict[str, Counter[tuple[int, str]]] = {"object": Counter(), "item": Counter()}

    def count(scope: str, answers: Any) -> None:
        if not isinstance(answers, dict):
            return
        for key, choice in answers.items():
            if str(key).isdigit() and scopes.get(int(key)) == scope and isinstance(choice, str) and choice:
                counted[scope][(int(key), choice)] += 1

    if "object" in scopes.values():
        object_answers = (
            Annotation.objects.filter(label__project=project, proposed=False)
            .exclude(answers={})
            .order_by()
            .values_list("answers", flat=True)
        )
        for answers in object_answers.iterator(chunk_size=ANSWER_CHUNK):
            count("object", answers)
    if "item" in scopes.values():
        item_answers = MediaItem.objects.filter(project=project).exclude(answers={}).order_by()
        for answers in item_answers.values_list("answers", flat=True).iterator(chunk_size=ANSWER_CHUNK):
            count("item", answers)

    objects_of = {label.id: label.objects for label in labels}
    rows: list[AnswerFigures] = []
    for question in questions:
        scope = scopes[question.pk]
        whole = objects_of.get(question.label_id, 0) if scope == "object" else items
        label = question.label.name if question.label is not None else ""
        found = {choice: n for (qid, choice), n in counted[scope].items() if qid == question.pk}
        # The question's choices in order (zero included), then answers to choices since removed.
        choices = list(question.choices) + sorted(set(found) - set(question.choices))
        for choice in [*choices, NO_ANSWER]:
            n = found.get(choice, 0) if choice != NO_ANSWER else max(whole - sum(found.values()), 0)
            share = 100 * n / whole if whole else None
            rows.append(AnswerFigures(question.pk, question.text, scope, label, choice, n, share))
    return rows


def _annotator_figures(project: Project) -> list[AnnotatorFigures]:
    people: dict[int, AnnotatorFigures] = {}

    def person(user_id: int, username: str) -> AnnotatorFigures:
        return people.setdefault(user_id, AnnotatorFigures(user_id, username))

    def widen(figures: AnnotatorFigures, first: datetime | None, last: datetime | None) -> None:
        if first is not None and (figures.first is None or first < figures.first):
            figures.first = first
        if last is not None and (figures.last is None or last > figures.last):
            figures.last = last

    done = (
        MediaItem.objects.filter(project=project, done_by__isnull=False, done_at__isnull=False)
        .order_by()
        .values("done_by_id", "done_by__username")
        .annotate(items=Count("id"), first=Min("done_at"), last=Max("done_at"))
    )
    for row in done:
        figures = person(row["done_by_id"], row["done_by__username"])
        figures.items_done = row["items"]
        widen(figures, row["first"], row["last"])
    drawn = (
        Annotation.objects.filter(label__project=project, proposed=False, author__isnull=False)
        .order_by()
        .values("author_id", "author__username")
        .annotate(objects=Count("id"), first=Min("created_at"), last=Max("updated_at"))
    )
    for row in drawn:
        figures = person(row["author_id"], row["author__username"])
        figures.objects = row["objects"]
        widen(figures, row["first"], row["last"])
    return sorted(people.values(), key=lambda figures: (figures.username.casefold(), figures.user_id))


def _task_figures(project: Project) -> list[TaskFigures]:
    rows = (
        Task.objects.filter(project=project)
        .order_by("id")
        .annotate(total=Count("items"), done=Count("items", filter=Q(items__done_at__isnull=False)))
        .values("id", "name", "assignee__username", "state", "total", "done")
    )
    return [
        TaskFigures(
            id=row["id"],
            name=row["name"],
            assignee=row["assignee__username"] or "",
            state=Task.State(row["state"]).label if row["state"] in Task.State.values else row["state"],
            done=row["done"],
            total=row["total"],
        )
        for row in rows
    ]


def project_statistics(project: Project) -> DatasetStatistics:
    """Every figure of ``project``'s dataset, in ten queries."""
    counts = _item_counts(project)
    labels = _label_figures(project)
    return DatasetStatistics(
        project_id=project.pk,
        project_name=project.name,
        items=counts["items"],
        images=counts["images"],
        videos=counts["videos"],
        done=counts["done"],
        categories=sum(1 for label in labels if label.kind != Label.Kind.CLASSIFICATION),
        labels=labels,
        histogram=_histogram(project, counts["items"]),
        answers=_answer_figures(project, labels, counts["items"]),
        annotators=_annotator_figures(project),
        tasks=_task_figures(project),
    )
