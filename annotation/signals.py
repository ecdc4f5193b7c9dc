"""Stored files follow their rows: a deleted media item (directly, or by a project or organisation
cascade) removes its file and thumbnail from storage once the deletion has committed."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from annotation.models import MediaItem


@receiver(post_delete, sender=MediaItem, dispatch_uid="annotation.media_file_cleanup")
def delete_stored_file(sender: type[MediaItem], instance: MediaItem, **kwargs: Any) -> None:
    # The file and its thumbnail.
    for stored in (instance.file, instance.thumbnail):
        if not stored.name:
            continue
        storage, name = stored.storage, stored.name
        # After commit only: a rolled-back deletion must still find its file.
        transaction.on_commit(lambda storage=storage, name=name: storage.delete(name))
