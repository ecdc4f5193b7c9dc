"""Create the demo organisations, users, project, labels and photographs (DEBUG only).

The photographs are the sample images shipped inside scikit-image, so nothing is downloaded.
Running the command again leaves existing demo data as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import skimage.data
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation.media_services import media_create_image
from annotation.models import Label, Project
from annotation.projects.services import label_create, project_create, question_create
from annotation.tasks.services import tasks_assign, tasks_split
from platform_core.models import Membership, Organization, Role
from platform_core.tenancy import resolve_tenant

DEMO_PASSWORD = "demo"  # noqa: S105 - refused outside DEBUG below

USERS = [
    # username, organisation slug, role
    ("manager", "demo-lab", Role.MANAGER),
    ("annotator", "demo-lab", Role.ANNOTATOR),
    ("outsider", "other-lab", Role.OWNER),
]

LABELS = [
    # name, colour, kind, guideline notes (Markdown)
    ("person", "#e6194b", Label.Kind.MASK, "Include hair, clothes and anything **held**; leave out shadows."),
    ("animal", "#3cb44b", Label.Kind.MASK, "Pets and wildlife. One mask per animal, even when they touch."),
    ("vehicle", "#4363d8", Label.Kind.MASK, "Cars, bikes, rockets: the whole body, *including* the wheels."),
    ("cup", "#f58231", Label.Kind.MASK, "The cup and its handle; not the saucer."),
    ("dense scene", "#911eb4", Label.Kind.CLASSIFICATION, "Tick when more than ten objects would need a mask."),
]
QUALITY = ["good", "partially visible", "barely visible", "not visible"]
TASK_SIZE = 3

PHOTOGRAPHS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg"]


class Command(BaseCommand):
    help = "Create the demo organisations, users (password 'demo'), project, labels and photographs. DEBUG only."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("The demo data has well-known passwords: run it only with DEBUG=1.")
        with transaction.atomic():
            orgs = {
                slug: Organization.objects.get_or_create(slug=slug, defaults={"name": name})[0]
                for slug, name in [("demo-lab", "Demo Lab"), ("other-lab", "Other Lab")]
            }
            User = get_user_model()
            users = {}
            for username, org_slug, role in USERS:
                user, created = User.objects.get_or_create(username=username)
                if created:
                    user.set_password(DEMO_PASSWORD)
                    user.save(update_fields=["password"])
                Membership.objects.get_or_create(user=user, organization=orgs[org_slug], defaults={"role": role})
                users[username] = user
            project = Project.objects.for_org(orgs["demo-lab"]).filter(name="Street and kitchen scenes").first()
            if project is None:
                project = self._create_project(orgs["demo-lab"], users["manager"])
            other = Project.objects.for_org(orgs["other-lab"]).filter(name="Other Lab private project").first()
            if other is None:
                other = project_create(
                    organization=orgs["other-lab"],
                    name="Other Lab private project",
                    description="Belongs to Other Lab; Demo Lab users never see it.",
                    created_by=users["outsider"],
                )
                label_create(project=other, name="secret", color="#000000")
                self._add_photo(other, "camera.png", users["outsider"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: sign in as manager, annotator (Demo Lab) or outsider (Other Lab), password "
                f"'{DEMO_PASSWORD}'. Project '{project.name}' has {project.media.count()} images."
            )
        )

    def _create_project(self, org: Organization, manager: Any) -> Project:
        project = project_create(
            organization=org,
            name="Street and kitchen scenes",
            description="Segment every person, animal, vehicle and cup; flag dense scenes.",
            created_by=manager,
        )
        labels = [
            label_create(project=project, name=name, color=colour, kind=kind, guidelines=notes)
            for name, colour, kind, notes in LABELS
        ]
        question_create(project=project, label=labels[0], text="Quality", choices=QUALITY, default="good")
        question_create(project=project, text="Lighting", choices=["day", "night", "indoor"], required=True)
        for file_name in PHOTOGRAPHS:
            self._add_photo(project, file_name, manager)
        # Two tasks of three photographs: the first for the annotator, the second left to assign.
        tenant = resolve_tenant(manager, org.slug)
        tasks = tasks_split(tenant=tenant, project=project, size=TASK_SIZE, actor=manager)
        annotator = get_user_model().objects.get(username="annotator")
        tasks_assign(tenant=tenant, tasks=tasks[:1], assignees=[annotator], actor=manager)
        return project

    def _add_photo(self, project: Project, file_name: str, user: Any) -> None:
        path = Path(skimage.data.__file__).parent / file_name
        media_create_image(project=project, name=file_name, data=path.read_bytes(), uploaded_by=user)
