"""Stored files follow their rows: a deleted media item (directly, or by a project or organisation
cascade) removes its file, its thumbnail and a video's frames from storage once the deletion has
committed."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from annotation.models import MediaItem
from annotation.video_services import video_frames_delete


@receiver(post_delete, sender=MediaItem, dispatch_uid="annotation.media_file_cleanup")
def delete_stored_file(sender: type[MediaItem], instance: MediaItem, **kwargs: Any) -> None:
    # The file and its thumbnail.
    for stored in (instance.file, instance.thumbnail):
        if not stored.name:
            continue
        storage, name = stored.storage, stored.name
        # After commit only: a rolled-back deletion must still find its file.
        transaction.on_commit(lambda storage=storage, name=name: storage.delete(name))
    # A video's extracted frames.
    if instance.frames_prefix:
        storage, prefix = instance.file.storage, instance.frames_prefix
        transaction.on_commit(lambda: video_frames_delete(storage, prefix))
