"""Writes on projects, labels and questions. Each service is atomic and validates before it stores."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Max

from annotation.models import Label, Project, Question

PROJECT_FIELDS = ("name", "description", "media_type")
LABEL_FIELDS = ("name", "color", "kind", "guidelines")
QUESTION_FIELDS = ("text", "choices", "default", "required")


def _apply(obj: Any, fields: tuple[str, ...], changes: dict[str, Any]) -> list[str]:
    unknown = set(changes) - set(fields)
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    changed = [name for name, value in changes.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, changes[name])
    return changed


def project_create(
    *,
    organization: Any,
    name: str,
    description: str = "",
    media_type: str = Project.MediaType.IMAGES,
    created_by: Any = None,
) -> Project:
    project = Project(
        organization=organization, name=name, description=description, media_type=media_type, created_by=created_by
    )
    project.full_clean()
    project.save()
    return project


def project_update(*, project: Project, **changes: Any) -> Project:
    changed = _apply(project, PROJECT_FIELDS, changes)
    if "media_type" in changed:
        kinds = set(project.media.values_list("kind", flat=True).distinct())
        if any(not project.accepts(kind) for kind in kinds):
            raise ValidationError({"media_type": "The project already holds media of another type."})
    if changed:
        project.full_clean()
        project.save(update_fields=changed)
    return project


def project_delete(*, project: Project, confirm_name: str | None = None) -> None:
    """Delete a project with everything in it; a non-empty project asks for its name first."""
    if project.media.exists() and confirm_name != project.name:
        if confirm_name:
            message = f"“{confirm_name}” does not match the project's name: type “{project.name}” to delete it."
        else:
            message = "Type the project's name to delete it with its media and annotations."
        raise ValidationError(message, code="confirm")
    project.delete()


def label_create(
    *,
    project: Project,
    name: str,
    color: str,
    kind: str = Label.Kind.MASK,
    guidelines: str = "",
    order: int | None = None,
) -> Label:
    with transaction.atomic():
        if order is None:
            last = project.labels.aggregate(last=Max("order"))["last"]
            order = 0 if last is None else last + 1
        label = Label(project=project, name=name, color=color.lower(), kind=kind, guidelines=guidelines, order=order)
        label.full_clean()
        label.save()
    return label


def label_update(*, label: Label, **changes: Any) -> Label:
    if "color" in changes and isinstance(changes["color"], str):
        changes["color"] = changes["color"].lower()
    changed = _apply(label, LABEL_FIELDS, changes)
    if changed:
        label.full_clean()
        label.save(update_fields=changed)
    return label


def label_delete(*, label: Label) -> int:
    """Delete a label with its annotations and questions; returns how many annotations went with it."""
    with transaction.atomic():
        count = label.annotations.count()
        label.delete()
    return count


def label_reorder(*, project: Project, label_ids: list[int]) -> list[Label]:
    """Put the project's labels in the given order (the first nine are the studio's keys 1…9)."""
    with transaction.atomic():
        labels = {label.pk: label for label in project.labels.select_for_update()}
        if sorted(label_ids) != sorted(labels) or len(set(label_ids)) != len(label_ids):
            raise ValidationError("Give every label of the project exactly once.", code="bad_order")
        for position, label_id in enumerate(label_ids):
            labels[label_id].order = position
        Label.objects.bulk_update(labels.values(), ["order"])
    return [labels[label_id] for label_id in label_ids]


def label_move(*, label: Label, offset: int) -> None:
    """Move a label up (-1) or down (+1) in its project's order."""
    ordered = list(label.project.labels.values_list("pk", flat=True))
    position = ordered.index(label.pk)
    target = max(0, min(len(ordered) - 1, position + offset))
    ordered.insert(target, ordered.pop(position))
    label_reorder(project=label.project, label_ids=ordered)


def _clean_choices(choices: Any) -> Any:
    if isinstance(choices, str):
        # Forms send one choice a line.
        choices = [line.strip() for line in choices.splitlines() if line.strip()]
    elif isinstance(choices, list):
        choices = [c.strip() if isinstance(c, str) else c for c in choices]
    return choices


def question_create(
    *,
    project: Project,
    text: str,
    choices: list[str] | str,
    label: Label | None = None,
    default: str = "",
    required: bool = False,
) -> Question:
    if label is not None and label.project_id != project.pk:
        raise ValidationError({"label": "The label belongs to another project."})
    with transaction.atomic():
        siblings = project.questions.filter(label=label)
        # The unique constraint does not hold for item questions (label NULL): check here for both.
        if siblings.filter(text=text.strip()).exists():
            about = f"each “{label.name}”" if label is not None else "each item"
            raise ValidationError({"text": f"The question “{text.strip()}” is already asked about {about}."})
        last = siblings.aggregate(last=Max("order"))["last"]
        order = 0 if last is None else last + 1
        question = Question(
            project=project,
            label=label,
            text=text.strip(),
            choices=_clean_choices(choices),
            default=default.strip(),
            required=required,
            order=order,
        )
        question.full_clean()
        question.save()
    return question


def question_update(*, question: Question, **changes: Any) -> Question:
    if "choices" in changes:
        changes["choices"] = _clean_choices(changes["choices"])
    changed = _apply(question, QUESTION_FIELDS, changes)
    if changed:
        question.full_clean()
        question.save(update_fields=changed)
    return question


def question_delete(*, question: Question) -> None:
    with transaction.atomic():
        siblings = question.project.questions.filter(label=question.label_id, order__gt=question.order)
        question.delete()
        siblings.update(order=F("order") - 1)
