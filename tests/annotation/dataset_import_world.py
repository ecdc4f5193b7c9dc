"""The world of the COCO import tests: a project to import into, a valid COCO file of it, and running
an import that must be refused (nothing imported: no annotation, item, label or file)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.files.storage import default_storage

from annotation.datasets.coco_import import dataset_import_run
from annotation.datasets.coco_reading import ImportRefused
from annotation.masks import mask_encode, rle_area, rle_bbox
from annotation.models import Annotation, Label, MediaItem, Project, Question
from platform_core.tenancy import resolve_tenant
from tests.annotation.dataset_project import ellipse
from tests.conftest import World
from tests.factories import ProjectFactory, make_image

H, W = 48, 64


class Target:
    """A project to import into: a mask label “cat” with a question, and two images."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.project = ProjectFactory(organization=world.demo.org, name="Target")
        self.cat = Label.objects.create(project=self.project, name="cat", color="#ff8800")
        self.pose = Question.objects.create(
            project=self.project, label=self.cat, text="Pose", choices=["sitting", "lying"]
        )
        self.photo = make_image(self.project, name="photo.png", width=W, height=H)
        self.other = make_image(self.project, name="folder/other.png", width=40, height=30)
        self.tenant = resolve_tenant(world.manager, "demo-lab")

    def annotations(self) -> Any:
        return Annotation.objects.filter(media__project=self.project)

    def items(self) -> Any:
        return MediaItem.objects.filter(project=self.project)


@pytest.fixture
def target(world: World) -> Target:
    return Target(world)


def blob() -> np.ndarray:
    return ellipse(H, W, (30, 20), (10, 8))


def valid_coco() -> dict[str, Any]:
    rle = mask_encode(blob())
    return {
        "images": [{"id": 1, "file_name": "photo.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": rle,
                "area": rle_area(rle),
                "bbox": rle_bbox(rle),
                "iscrowd": 0,
            }
        ],
    }


def write(tmp_path: Path, data: dict[str, Any] | bytes, name: str = "coco.json") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def run(target: Target, path: Path, **params: Any) -> dict[str, Any]:
    source = "zip" if path.suffix == ".zip" else "json"
    return dataset_import_run(
        tenant=target.tenant,
        project=target.project,
        params={"source": source, "path": str(path), **params},
        actor=target.world.manager,
    )


def stored_files(project: Project) -> set[str]:
    root = Path(default_storage.path(f"org-{project.organization_id}/project-{project.pk}"))
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def refused(target: Target, tmp_path: Path, data: dict[str, Any] | bytes, **params: Any) -> str:
    """The refusal's message; and nothing was imported: no annotation, no item, no label, no file."""
    items = set(target.items().values_list("pk", flat=True))
    labels = target.project.labels.count()
    files = stored_files(target.project)
    path = write(tmp_path, data) if not isinstance(data, Path) else data
    with pytest.raises(ImportRefused) as info:
        run(target, path, **params)
    assert target.annotations().count() == 0
    assert set(target.items().values_list("pk", flat=True)) == items
    assert target.project.labels.count() == labels
    assert stored_files(target.project) == files
    return info.value.message


def zip_of(tmp_path: Path, coco: dict[str, Any], files: dict[str, bytes], name: str = "dataset.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("annotations/instances.json", json.dumps(coco))
        for file_name, data in files.items():
            archive.writestr(f"images/{file_name}", data)
    return path
