"""What the dataset imports (COCO and YouTube-VIS) share: their options; which label of the project
each category of a file goes to, and the labels an import creates for the categories the project
lacks; and how a file's ``{question text: answer}`` attributes become answers.

Labels: a category goes to the project's mask or box label of the same name (case does not matter).
Unknown categories are created as labels when asked (``create_labels``), with the category's
``color``, ``kind`` (mask unless the file says box) and ``questions``; otherwise their objects are
skipped and the report names the categories. A category named like one of the project's
classification labels is never imported: such labels describe whole items, not objects.

Answers: an attribute ``{question text: answer}`` answers the question of that text (exactly, else
regardless of case) when the answer is one of its choices (again exactly, else regardless of case
when only one choice fits); what cannot be mapped is told to the import's report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from annotation.datasets.coco_reading import CocoCategory, QuestionSpec
from annotation.models import Label, Project, Question
from annotation.projects.services import label_create, question_create

# Colours for created labels whose category has none (matplotlib's ten).
COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


COCO = "coco"
YOUTUBE_VIS = "youtube-vis"
IMPORT_FORMATS = {COCO: "COCO", YOUTUBE_VIS: "YouTube-VIS"}


def import_format(root: dict[str, Any]) -> str:
    """The format of a parsed dataset file whose format nobody named: YouTube-VIS when it has a
    list of ``videos`` and no ``images`` (COCO-video files, which have both, are COCO), else COCO."""
    return YOUTUBE_VIS if isinstance(root.get("videos"), list) and "images" not in root else COCO


@dataclass(frozen=True)
class ImportOptions:
    """``create_labels``: make labels for unknown categories. ``proposed``: the objects await a
    person (pre-annotations); False imports them as accepted objects."""

    create_labels: bool = False
    proposed: bool = True

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ImportOptions:
        return cls(create_labels=data.get("create_labels") is True, proposed=data.get("proposed", True) is not False)


REPORTED = 1000  # rows each list of an import's report holds (it counts them all)

Progress = Callable[[int, int, str], None]
Commit = Callable[[dict[str, Any]], None]


class CreatedReport(Protocol):
    labels_created: list[str]
    questions_created: int


class UnmappedReport(Protocol):
    def unmapped(self, where: str, question: Any, answer: Any, reason: str) -> None: ...


class CategoryLabels:
    """The plan (``plan``, reads only) and its writes (``create``, inside the import's transaction)."""

    def __init__(self, project: Project, *, create_labels: bool) -> None:
        self.project = project
        self.create_labels = create_labels
        self.category_label: dict[int, str] = {}  # category id -> folded label name (existing or to create)
        self.classification: set[str] = set()  # folded names of the project's classification labels
        self.to_create: dict[str, CocoCategory] = {}
        self.unknown: list[str] = []  # names of the categories with no label, sorted
        self.used_colours = 0

    def plan(self, categories: Iterable[CocoCategory]) -> None:
        labels = {label.name.casefold(): label for label in self.project.labels.all()}
        unknown: dict[str, str] = {}
        for category in categories:
            folded = category.name.casefold()
            label = labels.get(folded)
            if label is not None and label.kind != Label.Kind.CLASSIFICATION:
                self.category_label[category.id] = folded
            elif label is not None:
                continue  # its objects are skipped, with the reason
            elif self.create_labels:
                self.to_create.setdefault(folded, category)
                self.category_label[category.id] = folded
            else:
                unknown.setdefault(folded, category.name)
        self.unknown = sorted(unknown.values(), key=str.casefold)
        self.classification = {name for name, label in labels.items() if label.kind == Label.Kind.CLASSIFICATION}
        self.used_colours = len(labels)

    def reason(self, category: CocoCategory) -> str:
        """Why the objects of a category that goes to no label are skipped."""
        if category.name.casefold() in self.classification:
            return f"“{category.name}” is a classification label here: objects need a mask or box label"
        return f"category “{category.name}” has no label in the project (create labels to import it)"

    def next_colour(self, given: str | None) -> str:
        colour = given or COLOURS[self.used_colours % len(COLOURS)]
        self.used_colours += 1
        return colour

    def create(self, report: CreatedReport) -> None:
        """Create the planned labels with their questions."""
        if not self.create_labels:
            return
        for category in self.to_create.values():
            kind = category.kind or Label.Kind.MASK
            label = label_create(
                project=self.project, name=category.name, color=self.next_colour(category.color), kind=kind
            )
            report.labels_created.append(label.name)
            self.create_questions(category.questions, label, report)

    def create_questions(self, specs: Iterable[QuestionSpec], label: Label | None, report: CreatedReport) -> None:
        seen: set[str] = set()
        for spec in specs:
            if spec.text.casefold() in seen:
                continue  # the file asks the same twice: once is enough
            seen.add(spec.text.casefold())
            question_create(
                project=self.project, text=spec.text, choices=spec.choices, label=label, default=spec.default
            )
            report.questions_created += 1

    def object_labels(self) -> dict[str, Label]:
        """The project's mask and box labels by folded name, with their questions (read once)."""
        return {
            label.name.casefold(): label
            for label in self.project.labels.exclude(kind=Label.Kind.CLASSIFICATION).prefetch_related("questions")
        }


# --- answers ---------------------------------------------------------------------------------------


class AnswerMap:
    """Turns ``{question text: answer}`` into ``{question id: choice}`` for some questions."""

    def __init__(self, questions: Iterable[tuple[str, Question]], about: str) -> None:
        self.about = about
        self.exact: dict[str, Question] = {}
        self.folded: dict[str, Question] = {}
        self.texts: dict[str, str] = {}  # question id -> the text the file uses for it
        for text, question in questions:
            self.texts.setdefault(str(question.pk), text)
            self.exact.setdefault(text, question)
            self.folded.setdefault(text.casefold(), question)

    def map(self, attributes: dict[str, Any], where: str, report: UnmappedReport) -> dict[str, str]:
        answers: dict[str, str] = {}
        for text, value in attributes.items():
            question = self.exact.get(text) or self.folded.get(str(text).casefold())
            if question is None:
                report.unmapped(where, text, value, f"{self.about} has no question of this text")
                continue
            choice = _choice(question, value)
            if choice is None:
                report.unmapped(where, text, value, f"not one of the choices of “{question.text}”")
                continue
            answers[str(question.pk)] = choice
        return answers


def label_answer_map(label: Label) -> AnswerMap:
    return AnswerMap(((q.text, q) for q in label.questions.all()), about=f"the label “{label.name}”")


class LabelAnswerMaps:
    """Each label's answer map, made once per import: ``maps(label)``."""

    def __init__(self) -> None:
        self._maps: dict[int, AnswerMap] = {}

    def __call__(self, label: Label) -> AnswerMap:
        if label.pk not in self._maps:
            self._maps[label.pk] = label_answer_map(label)
        return self._maps[label.pk]


@dataclass(kw_only=True)
class UnmappedAnswers:
    """The part of an import's report that lists the answers no question's choice took (the first
    ``REPORTED``, all counted): what ``AnswerMap.map`` tells its report."""

    unmapped_answers: list[dict[str, Any]] = field(default_factory=list)
    unmapped_answers_count: int = 0

    def unmapped(self, where: str, question: Any, answer: Any, reason: str) -> None:
        self.unmapped_answers_count += 1
        if len(self.unmapped_answers) < REPORTED:
            self.unmapped_answers.append(
                {"where": where, "question": str(question)[:200], "answer": str(answer)[:100], "reason": reason}
            )


def _choice(question: Question, value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value in question.choices:
        return value
    folded = [choice for choice in question.choices if choice.casefold() == value.strip().casefold()]
    return folded[0] if len(folded) == 1 else None
