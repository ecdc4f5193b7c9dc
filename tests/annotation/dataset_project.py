"""A project to export, made through the platform's own services: a mask label and a box label with
questions, a classification label, a per-item question, three images (two with the same file name)
holding masks of several shapes (blobs, a ring with a hole, a single pixel, two separate parts, a
box, a triangle), overlapping objects, answers, a model's pre-annotation awaiting a person, and a
video with an object on a frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from annotation.annotations.services import annotation_create
from annotation.datasets.export import dataset_export_run
from annotation.datasets.options import ExportOptions
from annotation.masks import box_to_rle, mask_encode, polygon_to_rle, rle_area, rle_bbox
from annotation.models import Annotation, Label, MediaItem, Project, Question
from platform_core.tenancy import resolve_tenant
from tests.conftest import World
from tests.factories import ProjectFactory, make_image


@dataclass
class DatasetProject:
    project: Project
    cat: Label
    box: Label
    scene: Label  # classification
    pose: Question  # about cat objects
    light: Question  # about each item
    indoor: Question  # of the classification label
    street: MediaItem  # "street/photo 1.png", 96 × 64
    garden: MediaItem  # "photo 1.png", 80 × 60
    scan: MediaItem  # "scan.bmp" (stored as PNG), no objects
    video: MediaItem
    objects: dict[str, Annotation] = field(default_factory=dict)
    proposed: Annotation | None = None


def ellipse(height: int, width: int, centre: tuple[int, int], axes: tuple[int, int], angle: float = 0) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def make_dataset_project(world: World) -> DatasetProject:
    tenant = resolve_tenant(world.manager, world.demo.org.slug)
    project = ProjectFactory(organization=world.demo.org, name="Pets & things", media_type=Project.MediaType.BOTH)
    cat = Label.objects.create(project=project, name="cat", color="#ff8800", kind=Label.Kind.MASK, order=0)
    box = Label.objects.create(project=project, name="sign", color="#0044ff", kind=Label.Kind.BOX, order=1)
    scene = Label.objects.create(
        project=project, name="scene", color="#22aa22", kind=Label.Kind.CLASSIFICATION, order=2
    )
    pose = Question.objects.create(project=project, label=cat, text="Pose", choices=["sitting", "lying"], default="")
    light = Question.objects.create(project=project, text="Light", choices=["day", "night"], default="day")
    indoor = Question.objects.create(project=project, label=scene, text="Where", choices=["indoor", "outdoor"])

    street = make_image(project, name="street/photo 1.png", width=96, height=64)
    garden = make_image(project, name="photo 1.png", width=80, height=60)
    scan = make_image(project, name="scan.bmp", width=40, height=30)
    MediaItem.objects.filter(pk=street.pk).update(answers={str(light.pk): "night", str(indoor.pk): "outdoor"})
    MediaItem.objects.filter(pk=garden.pk).update(answers={str(light.pk): "day"})
    video = MediaItem.objects.create(
        project=project,
        kind=MediaItem.Kind.VIDEO,
        file=f"org-{project.organization_id}/project-{project.pk}/clip.mp4",
        original_name="clip.mp4",
        content_type="video/mp4",
        width=64,
        height=48,
        size_bytes=10,
    )
    dataset = DatasetProject(project, cat, box, scene, pose, light, indoor, street, garden, scan, video)

    def add(name: str, media: MediaItem, label: Label, rle: dict, **extra: Any) -> Annotation:
        annotation = annotation_create(tenant=tenant, media=media, label=label, rle=rle, author=world.manager, **extra)
        dataset.objects[name] = annotation
        return annotation

    h, w = street.height, street.width
    add("blob", street, cat, mask_encode(ellipse(h, w, (30, 30), (18, 11), 25)), answers={str(pose.pk): "sitting"})
    ring = ellipse(h, w, (70, 36), (16, 14)) & ~ellipse(h, w, (70, 36), (6, 5))
    add("ring", street, cat, mask_encode(ring), answers={str(pose.pk): "lying"})
    # On top of the blob and the ring: the box covers parts of both.
    add("sign", street, box, box_to_rle([40, 20, 62, 44], height=h, width=w), drawn={"box": [40, 20, 62, 44]})
    speck = np.zeros((h, w), dtype=bool)
    speck[5, 90] = True
    add("speck", street, cat, mask_encode(speck))
    parts = ellipse(h, w, (12, 56), (6, 4)) | ellipse(h, w, (88, 56), (5, 5))
    add("parts", street, cat, mask_encode(parts))

    h, w = garden.height, garden.width
    add("triangle", garden, cat, polygon_to_rle([[5, 5], [60, 12], [20, 50]], height=h, width=w))
    add("under", garden, cat, mask_encode(ellipse(h, w, (55, 40), (20, 12), 80)), z_order=-1)
    dataset.proposed = annotation_create(
        tenant=tenant,
        media=garden,
        label=cat,
        rle=mask_encode(ellipse(h, w, (60, 20), (10, 8))),
        author=world.manager,
        source=Annotation.Source.MODEL,
        source_detail={"model": "tiny", "method": "automatic", "job": 1, "score": 0.875, "prompts": []},
        proposed=True,
    )

    # An object on the video's first frame (stored as an import would store it).
    rle = box_to_rle([4, 4, 20, 20], height=video.height, width=video.width)
    Annotation.objects.create(media=video, label=cat, frame=0, rle=rle, bbox=rle_bbox(rle), area=rle_area(rle))
    return dataset


def run_export(project: Project, folder: Path, **options: Any) -> tuple[dict[str, Any], Path]:
    """The export of ``project`` with ``options``, written into ``folder``: (report, file)."""
    parsed = ExportOptions.parse(options)
    out = folder / f"export{parsed.extension}"
    return dataset_export_run(project=project, options=parsed, out=out), out
