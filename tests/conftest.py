"""The base fixture set: an organisation with owner, manager, reviewer and annotator; another
organisation with its own owner (the outsider); a project with labels and an image in each."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from annotation.models import Label, MediaItem, Project
from platform_core.models import Organization, Role
from tests.factories import LabelFactory, MembershipFactory, OrganizationFactory, ProjectFactory, make_image


@dataclass
class Side:
    org: Organization
    project: Project
    label: Label
    media: MediaItem


@dataclass
class World:
    demo: Side
    other: Side
    owner: Any
    manager: Any
    reviewer: Any
    annotator: Any
    outsider: Any


def _side(org: Organization) -> Side:
    project = ProjectFactory(organization=org)
    return Side(org=org, project=project, label=LabelFactory(project=project), media=make_image(project))


@pytest.fixture
def world(db: None) -> World:
    demo_org = OrganizationFactory(name="Demo Lab", slug="demo-lab")
    other_org = OrganizationFactory(name="Other Lab", slug="other-lab")
    users = {
        role: MembershipFactory(organization=demo_org, role=role, user__username=role).user
        for role in (Role.OWNER, Role.MANAGER, Role.REVIEWER, Role.ANNOTATOR)
    }
    outsider = MembershipFactory(organization=other_org, role=Role.OWNER, user__username="outsider").user
    return World(
        demo=_side(demo_org),
        other=_side(other_org),
        owner=users[Role.OWNER],
        manager=users[Role.MANAGER],
        reviewer=users[Role.REVIEWER],
        annotator=users[Role.ANNOTATOR],
        outsider=outsider,
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # tests/settings.py made a throw-away data folder for this run.
    shutil.rmtree(settings.DATA_DIR, ignore_errors=True)
