from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from annotation.models import MediaItem


def test_it_removes_the_stored_file_when_a_project_is_deleted(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    storage, name, pk = world.demo.media.file.storage, world.demo.media.file.name, world.demo.media.pk
    assert storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        world.demo.project.delete()
    assert not MediaItem.objects.filter(pk=pk).exists()
    assert not storage.exists(name)
    assert world.other.media.file.storage.exists(world.other.media.file.name)


def test_it_keeps_the_file_when_the_deletion_rolls_back(world: Any, django_capture_on_commit_callbacks: Any) -> None:
    storage, name, pk = world.demo.media.file.storage, world.demo.media.file.name, world.demo.media.pk
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            world.demo.media.delete()
            raise RuntimeError("abort")
    assert MediaItem.objects.filter(pk=pk).exists()
    assert storage.exists(name)
