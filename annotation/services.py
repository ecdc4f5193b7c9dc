"""Writes on projects, labels and media. Each service is atomic and validates before it stores."""

from __future__ import annotations

from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction

from annotation.image_files import normalise_image
from annotation.models import Label, MediaItem, Project


def project_create(*, organization: Any, name: str, description: str = "", created_by: Any = None) -> Project:
    project = Project(organization=organization, name=name, description=description, created_by=created_by)
    project.full_clean()
    project.save()
    return project


def label_create(*, project: Project, name: str, color: str, kind: str = Label.Kind.MASK, order: int = 0) -> Label:
    label = Label(project=project, name=name, color=color, kind=kind, order=order)
    label.full_clean()
    label.save()
    return label


def media_create_image(*, project: Project, name: str, data: bytes, uploaded_by: Any = None) -> MediaItem:
    """Store one uploaded image; a bad file raises ValidationError and stores nothing."""
    image = normalise_image(data)
    item = MediaItem(
        project=project,
        kind=MediaItem.Kind.IMAGE,
        original_name=name[:255],
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size_bytes=len(image.data),
        uploaded_by=uploaded_by,
    )
    with transaction.atomic():
        item.file.save(f"upload{image.extension}", ContentFile(image.data), save=False)
        try:
            item.full_clean()
            item.save()
        except Exception:
            # The row is rolled back; do not leave an orphan file in storage.
            item.file.storage.delete(item.file.name)
            raise
    return item
