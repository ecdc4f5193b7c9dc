"""Merging projects of one organisation into another (the target), as a job (kind
``merge_datasets``): each item of the sources is copied into the target (its file's bytes stored
again, a new ``MediaItem``) with its answers and its annotations; the sources are left as they were.

Labels are mapped source → target: an explicit mapping ``{source label id: target label id}``
first, else the target's label of the same name (case does not matter); a source label with
neither is created in the target when asked (``create_labels``: same name, colour, kind and
guidelines, and its questions), else its annotations are skipped and reported. Questions follow
their label by text (per-item questions by text alone, created when asked); an answer the target's
question does not offer as a choice is left out and reported.

Copied annotations keep their geometry, frame and track, stacking order, answers, author, source
and whether they await a person; their ``source_detail`` gains ``merged_from`` ``{"project",
"annotation"}``. Items keep their name and size (not their task or done state: the target's work
is its own).

Each item is copied in one transaction together with the job's cursor (``params["resume"]``: the
report so far and the last source item done), so a retried job goes on after the last item it
committed, and a run that lost its job (cancelled, or superseded by a retry) commits nothing.
Items of a source are taken in id order, sources in the order given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import Http404

from annotation.annotations.services import annotation_create
from annotation.datasets.import_job import job_project
from annotation.models import Annotation, Label, MediaItem, Project, Question
from annotation.projects.services import label_create, question_create
from platform_core.jobs import JobCancelled, JobProgress, job_manager_tenant, job_runner, job_start
from platform_core.models import Job
from platform_core.tenancy import Tenant

KIND = "merge_datasets"
MAX_SOURCES = 20
REPORTED = 1000

Progress = Callable[[int, int, str], None]


# --- starting ----------------------------------------------------------------------------------------


def _whole(value: Any, field_name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() or len(str(value)) > 18:
        raise ValidationError({field_name: f"Give each {what} as its id, a whole number."})
    return int(value)


def check_sources(tenant: Tenant, project: Project, sources: Any) -> list[int]:
    """The ids of the projects to merge into ``project``: of the same organisation, not the target,
    each once, in the order given."""
    if not isinstance(sources, list | tuple) or not sources:
        raise ValidationError({"sources": "Choose at least one project to merge in."})
    if len(sources) > MAX_SOURCES:
        raise ValidationError({"sources": f"At most {MAX_SOURCES} projects at once."})
    ids: list[int] = []
    for value in sources:
        pk = _whole(value, "sources", "project")
        if pk == project.pk:
            raise ValidationError({"sources": "A project cannot be merged into itself."})
        if pk not in ids:
            ids.append(pk)
    found = set(Project.objects.for_org(tenant.org).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        # The same words for another organisation's project and none at all.
        raise ValidationError({"sources": f"No project {', '.join(missing)} in this organisation."})
    return ids


def check_mapping(tenant: Tenant, project: Project, sources: list[int], mapping: Any) -> dict[str, int]:
    """``{source label id: target label id}`` (as text keys, the way JSON keeps them), each source
    label of a source project, each target label of ``project`` and of a compatible kind."""
    if mapping in (None, ""):
        return {}
    if not isinstance(mapping, dict):
        raise ValidationError({"mapping": "Give the mapping as {source label id: target label id}."})
    cleaned: dict[str, int] = {}
    labels = Label.objects.for_org(tenant.org)
    for key, value in mapping.items():
        source_id = _whole(key, "mapping", "source label")
        target_id = _whole(value, "mapping", "target label")
        source = labels.filter(project_id__in=sources, pk=source_id).first()
        if source is None:
            raise ValidationError({"mapping": f"No label {source_id} in the projects to merge."})
        target = labels.filter(project=project, pk=target_id).first()
        if target is None:
            raise ValidationError({"mapping": f"No label {target_id} in this project."})
        if (source.kind == Label.Kind.CLASSIFICATION) != (target.kind == Label.Kind.CLASSIFICATION):
            pair = f"“{source.name}” and “{target.name}”"
            raise ValidationError({"mapping": f"{pair}: a classification label maps to a classification label only."})
        cleaned[str(source_id)] = target_id
    return cleaned


def dataset_merge_start(
    *,
    tenant: Tenant,
    project: Project,
    actor: Any,
    sources: Any,
    mapping: Any = None,
    create_labels: bool = False,
) -> Job:
    """Start merging the projects ``sources`` (ids) into ``project`` (fetched through the tenancy
    door); owners and managers only. ValidationError per field for a bad input."""
    if project.organization_id != tenant.org.pk:
        raise Http404("No such project.")
    if not tenant.can_manage:
        raise PermissionDenied("Only managers and owners merge datasets.")
    source_ids = check_sources(tenant, project, sources)
    params = {
        "sources": source_ids,
        "mapping": check_mapping(tenant, project, source_ids, mapping),
        "create_labels": bool(create_labels),
    }
    return job_start(organization=tenant.org, kind=KIND, params=params, created_by=actor, project=project)


# --- the report ----------------------------------------------------------------------------------------


@dataclass
class MergeState:
    items: int = 0
    annotations: int = 0
    labels_created: list[str] = field(default_factory=list)
    questions_created: int = 0
    per_source: list[dict[str, Any]] = field(default_factory=list)
    skipped_items: list[dict[str, Any]] = field(default_factory=list)
    skipped_items_count: int = 0
    skipped_annotations: list[dict[str, Any]] = field(default_factory=list)
    skipped_annotations_count: int = 0
    unmapped_answers: list[dict[str, Any]] = field(default_factory=list)
    unmapped_answers_count: int = 0
    cursor: dict[str, int] | None = None  # {"project": source id, "item": last item id done}

    @classmethod
    def from_resume(cls, data: dict[str, Any] | None) -> MergeState:
        return cls(**data) if data else cls()

    def as_resume(self) -> dict[str, Any]:
        return {**self.report(), "cursor": self.cursor}

    def report(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "annotations": self.annotations,
            "labels_created": list(self.labels_created),
            "questions_created": self.questions_created,
            "per_source": [dict(row) for row in self.per_source],
            "skipped_items": list(self.skipped_items),
            "skipped_items_count": self.skipped_items_count,
            "skipped_annotations": list(self.skipped_annotations),
            "skipped_annotations_count": self.skipped_annotations_count,
            "unmapped_answers": list(self.unmapped_answers),
            "unmapped_answers_count": self.unmapped_answers_count,
        }

    def copy(self) -> MergeState:
        return MergeState.from_resume(self.as_resume())

    def source_row(self, source: Project) -> dict[str, Any]:
        for row in self.per_source:
            if row["project"] == source.pk:
                return row
        row = {"project": source.pk, "name": source.name, "items": 0, "annotations": 0}
        self.per_source.append(row)
        return row

    def skip_item(self, source: Project, item: MediaItem, reason: str) -> None:
        self.skipped_items_count += 1
        if len(self.skipped_items) < REPORTED:
            self.skipped_items.append(
                {"project": source.name, "item": item.pk, "name": item.original_name, "reason": reason}
            )

    def skip_annotation(self, annotation: Annotation, reason: str) -> None:
        self.skipped_annotations_count += 1
        if len(self.skipped_annotations) < REPORTED:
            self.skipped_annotations.append(
                {"annotation": annotation.pk, "item": annotation.media_id, "reason": reason}
            )

    def unmapped(self, where: str, question: str, answer: Any, reason: str) -> None:
        self.unmapped_answers_count += 1
        if len(self.unmapped_answers) < REPORTED:
            self.unmapped_answers.append(
                {"where": where, "question": question, "answer": str(answer), "reason": reason}
            )


# --- mapping -----------------------------------------------------------------------------------------


class SourceMapping:
    """One source project's labels and questions, mapped onto the target's (labels and questions
    created in the target when asked)."""

    def __init__(
        self, *, source: Project, target: Project, explicit: dict[str, int], create_labels: bool, state: MergeState
    ) -> None:
        self.source = source
        self.target = target
        self.labels: dict[int, Label | None] = {}
        self.reasons: dict[int, str] = {}
        self.questions: dict[int, Question | None] = {}
        self.question_texts: dict[int, str] = {}
        target_labels = {label.pk: label for label in target.labels.all()}
        by_name = {label.name.casefold(): label for label in target_labels.values()}
        for label in source.labels.order_by("order", "name", "id"):
            mapped = target_labels.get(explicit[str(label.pk)]) if str(label.pk) in explicit else None
            mapped = mapped or by_name.get(label.name.casefold())
            if mapped is None and create_labels:
                mapped = label_create(
                    project=target, name=label.name, color=label.color, kind=label.kind, guidelines=label.guidelines
                )
                by_name[mapped.name.casefold()] = mapped
                state.labels_created.append(mapped.name)
            if mapped is None:
                self.reasons[label.pk] = (
                    f"the label “{label.name}” has no label in the target (map it, or create labels)"
                )
            elif (label.kind == Label.Kind.CLASSIFICATION) != (mapped.kind == Label.Kind.CLASSIFICATION):
                self.reasons[label.pk] = (
                    f"“{label.name}” cannot go to “{mapped.name}”: one of them is a classification label"
                )
                mapped = None
            self.labels[label.pk] = mapped
        self._questions(create_labels, state)

    def _questions(self, create_labels: bool, state: MergeState) -> None:
        existing: dict[tuple[int | None, str], Question] = {
            (q.label_id, q.text.casefold()): q for q in self.target.questions.all()
        }
        for question in self.source.questions.order_by("label_id", "order", "id"):
            self.question_texts[question.pk] = question.text
            if question.label_id is None:
                target_label = None
            else:
                target_label = self.labels.get(question.label_id)
                if target_label is None:
                    self.questions[question.pk] = None
                    continue
            key = (target_label.pk if target_label else None, question.text.casefold())
            mapped = existing.get(key)
            if mapped is None and create_labels:
                mapped = question_create(
                    project=self.target,
                    text=question.text,
                    choices=list(question.choices),
                    label=target_label,
                    default=question.default,
                    required=question.required,
                )
                existing[key] = mapped
                state.questions_created += 1
            self.questions[question.pk] = mapped

    def answers(self, answers: Any, where: str, state: MergeState) -> dict[str, str]:
        """Source answers ``{question id: choice}`` as the target's."""
        mapped: dict[str, str] = {}
        for key, value in (answers or {}).items():
            source_id = int(key) if str(key).isdigit() else None
            if source_id not in self.question_texts:
                continue  # an answer to a question deleted since: nothing names it any more
            text = self.question_texts[source_id]
            question = self.questions.get(source_id)
            if question is None:
                state.unmapped(where, text, value, "the target has no such question")
            elif value not in question.choices:
                state.unmapped(where, text, value, f"not one of the choices of the target's “{question.text}”")
            else:
                mapped[str(question.pk)] = value
        return mapped


# --- running -----------------------------------------------------------------------------------------


def dataset_merge_run(
    *,
    tenant: Tenant,
    project: Project,
    sources: Iterable[Project],
    actor: Any,
    mapping: dict[str, int] | None = None,
    create_labels: bool = False,
    state: MergeState | None = None,
    commit: Callable[[MergeState], None] | None = None,
    progress: Progress | None = None,
) -> MergeState:
    """Copy every item of ``sources`` (after ``state.cursor``) into ``project`` as ``actor``, a
    manager or owner of ``tenant``; returns the final state. ``commit(state)`` runs inside each
    item's transaction."""
    state = state or MergeState()
    commit = commit or (lambda _state: None)
    sources = list(sources)
    for source in sources:
        if source.organization_id != project.organization_id or source.pk == project.pk:
            raise ValueError("Only other projects of the same organisation can be merged in.")
    total = MediaItem.objects.filter(project__in=sources).count()
    done = 0
    skipping = state.cursor is not None
    for source in sources:
        items = MediaItem.objects.filter(project=source).order_by("pk")
        if skipping:
            if source.pk != state.cursor["project"]:
                done += items.count()
                continue  # done by an earlier run of this job
            done += items.filter(pk__lte=state.cursor["item"]).count()
            items = items.filter(pk__gt=state.cursor["item"])
            skipping = False
        with transaction.atomic():
            labels = SourceMapping(
                source=source, target=project, explicit=mapping or {}, create_labels=create_labels, state=state
            )
        state.source_row(source)
        for item in items.iterator(chunk_size=200):
            state = _copy_one(tenant, project, source, item, labels, actor, state, commit)
            done += 1
            if progress:
                progress(done, total, f"{source.name}: {item.original_name}")
    return state


def _copy_one(
    tenant: Tenant,
    project: Project,
    source: Project,
    item: MediaItem,
    labels: SourceMapping,
    actor: Any,
    state: MergeState,
    commit: Callable[[MergeState], None],
) -> MergeState:
    after = state.copy()
    after.cursor = {"project": source.pk, "item": item.pk}
    if not project.accepts(item.kind):
        after.skip_item(source, item, f"a {item.kind}: the target takes {project.get_media_type_display().lower()}")
        commit(after)
        return after
    stored: list[str] = []
    try:
        with transaction.atomic():
            copy = _copy_item(project, item, labels.answers(item.answers, f"item {item.pk}", after), actor, stored)
            row = after.source_row(source)
            row["items"] += 1
            after.items += 1
            annotations = Annotation.objects.filter(media=item).select_related("author").order_by("z_order", "pk")
            for annotation in annotations:
                label = labels.labels.get(annotation.label_id)
                if label is None:
                    after.skip_annotation(
                        annotation, labels.reasons.get(annotation.label_id, "its label is not mapped")
                    )
                    continue
                annotation_create(
                    tenant=tenant,
                    media=copy,
                    label=label,
                    rle=annotation.rle,
                    author=annotation.author,
                    frame=annotation.frame,
                    track=annotation.track,
                    drawn=annotation.drawn,
                    answers=labels.answers(annotation.answers, f"annotation {annotation.pk}", after),
                    source=annotation.source,
                    source_detail={
                        **(annotation.source_detail or {}),
                        "merged_from": {"project": source.pk, "annotation": annotation.pk},
                    },
                    z_order=annotation.z_order,
                    proposed=annotation.proposed,
                )
                row["annotations"] += 1
                after.annotations += 1
            commit(after)
    except FileNotFoundError:
        _delete(stored)
        skipped = state.copy()
        skipped.cursor = after.cursor
        skipped.skip_item(source, item, "its stored file is missing")
        commit(skipped)
        return skipped
    except BaseException:
        _delete(stored)
        raise
    return after


def _copy_item(project: Project, item: MediaItem, answers: dict[str, str], actor: Any, stored: list[str]) -> MediaItem:
    copy = MediaItem(
        project=project,
        kind=item.kind,
        original_name=item.original_name,
        content_type=item.content_type,
        width=item.width,
        height=item.height,
        size_bytes=item.size_bytes,
        uploaded_by=actor,
        answers=answers,
    )
    for field_name in ("file", "thumbnail"):
        source_file = getattr(item, field_name)
        if not source_file.name:
            continue
        with source_file.storage.open(source_file.name, "rb") as handle:
            target = getattr(copy, field_name)
            target.save(PurePosixPath(source_file.name).name, File(handle), save=False)
            stored.append(target.name)
    copy.full_clean()
    copy.save()
    return copy


def _delete(stored: list[str]) -> None:
    # The rows are rolled back; the files were already written.
    for name in stored:
        default_storage.delete(name)


@job_runner(KIND, label="Dataset merge")
def run_merge_datasets(job: Job, progress: JobProgress) -> dict[str, Any]:
    project = job_project(job)
    tenant = job_manager_tenant(job)
    params = job.params
    found = {p.pk: p for p in Project.objects.for_org(job.organization).filter(pk__in=params["sources"])}
    missing = [str(pk) for pk in params["sources"] if pk not in found]
    if missing:
        raise ValueError(f"Project {', '.join(missing)} has been deleted since the merge was asked for.")
    attempt = job.attempts

    def commit(state: MergeState) -> None:
        # Only the run that owns the job may record progress; the item copied with it rolls back otherwise.
        owned = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, attempts=attempt)
        if not owned.update(params={**params, "resume": state.as_resume()}, report=state.report()):
            raise JobCancelled(f"Job {job.pk} was cancelled or taken over by a newer run.")

    def report_progress(done: int, total: int, message: str) -> None:
        progress.update(done=done, total=total, message=message)

    state = dataset_merge_run(
        tenant=tenant,
        project=project,
        sources=[found[pk] for pk in params["sources"]],
        actor=job.created_by,
        mapping=params.get("mapping") or {},
        create_labels=bool(params.get("create_labels")),
        state=MergeState.from_resume(params.get("resume")),
        commit=commit,
        progress=report_progress,
    )
    return state.report()
