"""The base fixture set: an organisation with owner, manager, reviewer and annotator; another
organisation with its own owner (the outsider); in each, a project with a label, a per-object
question, an image, a task holding the image (Demo Lab's task is the annotator's) and one
annotation (a box) on the image, drawn by the task's assignee. And, for whatever segments images:
a tiny SAM 2.1 checkpoint with random weights, written once per session by the platform's own
command, and a real photograph."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skimage.data
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from annotation.masks import box_to_rle, rle_area, rle_bbox
from annotation.models import Annotation, Label, MediaItem, Project, Question, Task
from platform_core.models import Invitation, Job, Membership, Organization, Role
from tests.factories import LabelFactory, MembershipFactory, OrganizationFactory, ProjectFactory, make_image


@dataclass
class Side:
    org: Organization
    project: Project
    label: Label
    media: MediaItem
    question: Question
    task: Task
    membership: Membership  # the task assignee's
    invitation: Invitation  # an open link invitation
    job: Job  # a finished import started by the task assignee, with a result file
    annotation: Annotation  # a box on the image, version 1, by the task assignee


@dataclass
class World:
    demo: Side
    other: Side
    owner: Any
    manager: Any
    reviewer: Any
    annotator: Any
    outsider: Any


def _side(org: Organization, assignee: Any) -> Side:
    project = ProjectFactory(organization=org)
    label = LabelFactory(project=project)
    media = make_image(project)
    question = Question.objects.create(
        project=project, label=label, text="Quality", choices=["good", "partially visible", "bad"]
    )
    task = Task.objects.create(project=project, name="Task 1", assignee=assignee)
    media.task = task
    media.save(update_fields=["task"])
    membership = Membership.objects.get(organization=org, user=assignee)
    invitation = Invitation.objects.create(
        organization=org, role=Role.ANNOTATOR, expires_at=timezone.now() + timedelta(days=7)
    )
    job = Job.objects.create(
        organization=org,
        project=project,
        kind="import_media",
        state=Job.State.SUCCEEDED,
        progress_done=1,
        progress_total=1,
        created_by=assignee,
        finished_at=timezone.now(),
        report={"imported": 1, "skipped": [{"name": "notes.txt", "reason": "not an image"}]},
    )
    job.result_file.save("report.csv", ContentFile(b"name,reason\nnotes.txt,not an image\n"))
    rle = box_to_rle([8, 6, 24, 20], height=media.height, width=media.width)
    annotation = Annotation.objects.create(
        media=media,
        label=label,
        rle=rle,
        bbox=rle_bbox(rle),
        area=rle_area(rle),
        drawn={"box": [8, 6, 24, 20]},
        author=assignee,
    )
    return Side(
        org=org,
        project=project,
        label=label,
        media=media,
        question=question,
        task=task,
        membership=membership,
        invitation=invitation,
        job=job,
        annotation=annotation,
    )


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
        demo=_side(demo_org, users[Role.ANNOTATOR]),
        other=_side(other_org, outsider),
        owner=users[Role.OWNER],
        manager=users[Role.MANAGER],
        reviewer=users[Role.REVIEWER],
        annotator=users[Role.ANNOTATOR],
        outsider=outsider,
    )


@pytest.fixture(scope="session")
def sam2_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sam2-checkpoints")
    call_command("sam2_random_checkpoint", "--model", "tiny", "--dir", str(directory), stdout=io.StringIO())
    return directory


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photograph, 600 × 400 (a cup of coffee on a saucer)."""
    return skimage.data.coffee()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # tests/settings.py made a throw-away data folder for this run.
    shutil.rmtree(settings.DATA_DIR, ignore_errors=True)
