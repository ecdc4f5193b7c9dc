"""Create the demo organisations, users, project, labels and photographs (DEBUG only), and a
PartInventory-style crowd project (``crowd.presets``) whose open batches a visitor can work as a
crowd worker through the study links printed at the end.

The photographs are the sample images shipped inside scikit-image, so nothing is downloaded. The
crowd project's parts are simple shapes (ellipses and bars) drawn over the same photographs and
stored as masks through pycocotools; how many separate shapes a part has is its true answer
("one" or "many"), which makes some of them gold. Running the command again leaves existing demo
data as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import skimage.data
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation.annotations.services import annotation_create
from annotation.masks import mask_encode
from annotation.media_services import media_create_image
from annotation.models import Annotation, Label, Project
from annotation.projects.services import label_create, project_create, question_create
from annotation.tasks.services import tasks_assign, tasks_split
from annotation.video_files import make_demo_clip
from annotation.video_services import media_create_video
from crowd.models import CrowdBatch, GoldItem
from crowd.presets import PartInventory, partinventory_gold, partinventory_project
from crowd.selectors import batch_entry_urls
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

CROWD_PROJECT = "PartInventory parts"
# Per photograph: how many separate shapes each part is drawn as (a part left out is absent).
PART_SHAPES = [
    {"head": 1, "torso": 1, "leg": 2, "tail": 1},
    {"head": 1, "torso": 1, "leg": 1, "tail": 2},
    {"head": 1, "torso": 1, "leg": 3},
    {"head": 1, "torso": 1, "leg": 1, "tail": 1},
    {"head": 2, "torso": 1, "leg": 2, "tail": 1},
    {"head": 1, "torso": 1, "leg": 1},
]
# Which part objects are gold, by (part, photograph index): the leg gold makes the qualification
# test (three items); the rest hides in each part's batch.
GOLD = {
    ("leg", 0): GoldItem.Purpose.QUALIFICATION,
    ("leg", 1): GoldItem.Purpose.QUALIFICATION,
    ("leg", 2): GoldItem.Purpose.BOTH,
    ("leg", 3): GoldItem.Purpose.HIDDEN,
    ("head", 0): GoldItem.Purpose.HIDDEN,
    ("torso", 1): GoldItem.Purpose.HIDDEN,
    ("tail", 3): GoldItem.Purpose.HIDDEN,
}


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
            crowd = Project.objects.for_org(orgs["demo-lab"]).filter(name=CROWD_PROJECT).first()
            if crowd is None:
                crowd = self._create_crowd_project(orgs["demo-lab"], users["manager"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: sign in as manager, annotator (Demo Lab) or outsider (Other Lab), password "
                f"'{DEMO_PASSWORD}'. Project '{project.name}' has "
                f"{project.media.filter(kind='image').count()} images and a video."
            )
        )
        self._print_crowd_urls(crowd)

    def _create_project(self, org: Organization, manager: Any) -> Project:
        project = project_create(
            organization=org,
            name="Street and kitchen scenes",
            description="Segment every person, animal, vehicle and cup; flag dense scenes.",
            media_type=Project.MediaType.BOTH,
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
        # A short clip, a slow pan over one of the photographs, after the tasks: it is in none.
        media_create_video(
            project=project, name="coffee-pan.mp4", data=make_demo_clip(skimage.data.coffee()), uploaded_by=manager
        )
        return project

    def _add_photo(self, project: Project, file_name: str, user: Any) -> None:
        path = Path(skimage.data.__file__).parent / file_name
        media_create_image(project=project, name=file_name, data=path.read_bytes(), uploaded_by=user)

    # --- the crowd project ------------------------------------------------------------------
    def _create_crowd_project(self, org: Organization, manager: Any) -> Project:
        preset = partinventory_project(organization=org, manager=manager, name=CROWD_PROJECT)
        tenant = resolve_tenant(manager, org.slug)
        for index, (file_name, shapes) in enumerate(zip(PHOTOGRAPHS, PART_SHAPES, strict=True)):
            path = Path(skimage.data.__file__).parent / file_name
            media = media_create_image(
                project=preset.project, name=file_name, data=path.read_bytes(), uploaded_by=manager
            )
            for part, count in shapes.items():
                mask = _part_mask(part, count, height=media.height, width=media.width)
                annotation = annotation_create(
                    tenant=tenant,
                    media=media,
                    label=preset.labels[part],
                    rle=mask_encode(mask),
                    author=manager,
                    source=Annotation.Source.IMPORT,
                    source_detail={"demo": "part shapes"},
                )
                self._maybe_gold(preset, annotation, part, index, count)
        return preset.project

    def _maybe_gold(self, preset: PartInventory, annotation: Annotation, part: str, index: int, count: int) -> None:
        purpose = GOLD.get((part, index))
        if purpose is not None:
            answer = "one" if count == 1 else "many"
            partinventory_gold(preset=preset, annotation=annotation, answer=answer, purpose=purpose)

    def _print_crowd_urls(self, project: Project) -> None:
        batches = CrowdBatch.objects.filter(project=project, state=CrowdBatch.State.OPEN).order_by("pk")
        self.stdout.write(
            f"Crowd project '{project.name}': work a batch as a crowd worker through its study link "
            "(put any worker, study and session ids in place of the {{%…%}} fields):"
        )
        for batch in batches:
            for kind, url in batch_entry_urls(batch):
                self.stdout.write(f"{kind} {url} ({batch.name})")


def _part_mask(part: str, count: int, *, height: int, width: int) -> np.ndarray:
    """``count`` separate shapes for ``part``, in the layout of a four-legged animal seen from the side."""
    rows, cols = np.mgrid[0:height, 0:width]
    y, x = rows / height, cols / width
    mask = np.zeros((height, width), dtype=bool)
    for n in range(count):
        if part == "head":
            cx = 0.2 + 0.25 * n
            mask |= ((x - cx) / 0.09) ** 2 + ((y - 0.22) / 0.1) ** 2 <= 1
        elif part == "torso":
            mask |= (x >= 0.3) & (x <= 0.72) & (y >= 0.35) & (y <= 0.6)
        elif part == "leg":
            x0 = 0.33 + 0.12 * n
            mask |= (x >= x0) & (x <= x0 + 0.06) & (y >= 0.63) & (y <= 0.92)
        else:  # tail
            y0 = 0.38 + 0.1 * n
            mask |= (x >= 0.75) & (x <= 0.93) & (y >= y0) & (y <= y0 + 0.04)
    return mask
