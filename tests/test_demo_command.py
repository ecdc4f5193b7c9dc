from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from annotation.models import MediaItem, Project
from platform_core.models import Membership, Organization


@pytest.mark.django_db
def test_it_refuses_to_create_demo_users_outside_debug(settings: Any) -> None:
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("demo")
    assert not Organization.objects.exists()


@pytest.mark.django_db
def test_it_creates_the_demo_once(settings: Any) -> None:
    settings.DEBUG = True
    call_command("demo")
    call_command("demo")  # a second run changes nothing
    assert set(Organization.objects.values_list("name", flat=True)) == {"Demo Lab", "Other Lab"}
    assert set(Membership.objects.values_list("user__username", "organization__slug", "role")) == {
        ("manager", "demo-lab", "manager"),
        ("annotator", "demo-lab", "annotator"),
        ("outsider", "other-lab", "owner"),
    }
    for username in ("manager", "annotator", "outsider"):
        assert authenticate(username=username, password="demo") is not None
    project = Project.objects.get(organization__slug="demo-lab")
    assert project.labels.count() == 5
    photos = MediaItem.objects.filter(project=project)
    assert photos.count() == 6
    astronaut = photos.get(original_name="astronaut.png")
    assert (astronaut.width, astronaut.height) == (512, 512)
    assert all(item.file.storage.exists(item.file.name) for item in photos)
