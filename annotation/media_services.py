"""Writes on media items: storing an upload as an image (normalised, with its thumbnail) or a video
(``annotation.video_services``), and making the thumbnail of an item stored before thumbnails
existed."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from annotation.image_files import ImageSource, make_thumbnail, normalise_image
from annotation.models import MediaItem, Project
from annotation.video_files import VideoSource, is_video_name, looks_like_video
from annotation.video_services import media_create_video

logger = logging.getLogger(__name__)


def media_create(*, project: Project, name: str, data: ImageSource | VideoSource, uploaded_by: Any = None) -> MediaItem:
    """Store one upload as a video when its first bytes announce a video container, or its name
    says video (a PNG named ``clip.mp4`` is then refused as no video); as an image otherwise.
    Either way a bad file raises ValidationError and stores nothing."""
    if looks_like_video(data) or is_video_name(name):
        return media_create_video(project=project, name=name, data=data, uploaded_by=uploaded_by)
    return media_create_image(project=project, name=name, data=data, uploaded_by=uploaded_by)


def media_create_image(*, project: Project, name: str, data: ImageSource, uploaded_by: Any = None) -> MediaItem:
    """Store one uploaded image and its thumbnail; a bad file raises ValidationError and stores nothing.

    ``data`` is the file's bytes, a path, or an open binary file such as an ``UploadedFile`` (read
    where it lies rather than copied into memory first).
    """
    if not project.accepts("image"):
        raise ValidationError(
            f"The project “{project.name}” takes {project.get_media_type_display().lower()} only.",
            code="wrong_media_type",
        )
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
    stored: list[str] = []
    try:
        with transaction.atomic():
            item.file.save(f"upload{image.extension}", ContentFile(image.data), save=False)
            stored.append(item.file.name)
            item.thumbnail.save("thumbnail.webp", ContentFile(image.thumbnail), save=False)
            stored.append(item.thumbnail.name)
            item.full_clean()
            item.save()
    except Exception:
        # The row is rolled back; do not leave orphan files in storage.
        for name_in_storage in stored:
            item.file.storage.delete(name_in_storage)
        raise
    return item


def media_read_bytes(item: MediaItem) -> bytes:
    """The stored file's bytes. Opened through the storage, not the FieldFile, whose one open file
    would be shared by the threads that read the same item at once."""
    with item.file.storage.open(item.file.name, "rb") as handle:
        return handle.read()


def media_thumbnail_ensure(*, item: MediaItem) -> bool:
    """Give an image stored before thumbnails existed its thumbnail; False when none can be made.

    Safe under concurrent requests: the row is only updated while it still has no thumbnail, and
    a request that loses the race deletes the file it made.
    """
    if item.thumbnail:
        return True
    if item.kind != MediaItem.Kind.IMAGE:
        return False
    try:
        with item.file.storage.open(item.file.name, "rb") as handle:
            data = make_thumbnail(handle)
    except (OSError, ValidationError):
        logger.warning("No thumbnail could be made for media item %s", item.pk, exc_info=True)
        return False
    field = item.thumbnail
    field.save("thumbnail.webp", ContentFile(data), save=False)
    won = MediaItem.objects.filter(pk=item.pk, thumbnail="").update(thumbnail=field.name)
    if not won:
        field.storage.delete(field.name)
        item.refresh_from_db(fields=["thumbnail"])
    return bool(item.thumbnail)
