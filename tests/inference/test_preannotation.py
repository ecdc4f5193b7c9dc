"""The pre-annotation job through the real Tasks API backend and the real models: the automatic
method saves exactly what ``SAM2AutomaticMaskGenerator`` finds (best first, capped), the boxes
method exactly what ``SAM2ImagePredictor.predict(box=...)`` returns, both as proposed objects with
their source; skipping, replacing, retries, cancellation and the starter's rights at run time.

The SAM 2 cases use the tiny random-weight checkpoint; the rest use the OpenCV fallback, which the
boxes method accepts and which needs no encode."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django_tasks_db.models import DBTaskResult
from PIL import Image
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

from annotation.masks import box_to_rle, mask_decode, rle_area, rle_bbox
from annotation.media_services import media_create_image
from annotation.models import Annotation, Label, MediaItem
from inference import preannotation
from inference.embedding_cache import EmbeddingCache
from inference.loading import ModelLoader
from inference.results import load_rgb
from inference.segmentation import SegmentationService
from platform_core.jobs.core import run_job
from platform_core.jobs.services import job_cancel, job_retry
from platform_core.models import Job, Membership, Role
from platform_core.tenancy import resolve_tenant
from tests.conftest import World
from tests.factories import LabelFactory
from tests.inference.images import disc_image

MIB = 1024 * 1024
# Thresholds off and no duplicate suppression: the random-weight model's masks are neither good nor
# stable, and this keeps a dozen of them (four points, three masks each) to cap.
LOOSE = {
    "points_per_side": 2,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 1.0,
    "min_mask_region_area": 0,
    "max_objects": 5,
}


@pytest.fixture(scope="module")
def service(sam2_checkpoint_dir: Path) -> SegmentationService:
    loader = ModelLoader(checkpoint_dir=sam2_checkpoint_dir, device="cpu", publish=False)
    return SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=256 * MIB))


@pytest.fixture(scope="module")
def reference_model(sam2_checkpoint_dir: Path) -> Any:
    """The package's own model, built apart from the platform's loader from the same checkpoint."""
    return build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt"), "cpu")


@pytest.fixture(autouse=True)
def models(settings: Any, monkeypatch: pytest.MonkeyPatch, sam2_checkpoint_dir: Path, service: Any) -> None:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir
    monkeypatch.setattr(preannotation, "get_service", lambda: service)


def picture(world: World, name: str = "disc.png") -> MediaItem:
    image, _ = disc_image(height=48, width=64, centre=(30, 22), radius=12)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return media_create_image(project=world.demo.project, name=name, data=buffer.getvalue())


def stored_rgb(media: MediaItem) -> np.ndarray:
    with media.file.storage.open(media.file.name, "rb") as handle:
        return load_rgb(handle.read())


def mask_label(world: World, name: str = "mask") -> Label:
    return LabelFactory(project=world.demo.project, name=name, kind=Label.Kind.MASK)


def add_object(world: World, media: MediaItem, label: Label, corners: list[int], drawn: bool = True) -> Annotation:
    rle = box_to_rle(corners, height=media.height, width=media.width)
    return Annotation.objects.create(
        media=media,
        label=label,
        rle=rle,
        bbox=rle_bbox(rle),
        area=rle_area(rle),
        drawn={"box": corners} if drawn else {},
        author=world.annotator,
    )


def start(world: World, capture: Any, **params: Any) -> Job:
    with capture(execute=True):
        job = preannotation.preannotation_start(
            tenant=resolve_tenant(world.manager, world.demo.org.slug),
            project=world.demo.project,
            actor=world.manager,
            **params,
        )
    return job


def run(world: World, capture: Any, **params: Any) -> Job:
    job = start(world, capture, **params)
    run_job.call(job.pk)
    job.refresh_from_db()
    return job


def proposals(media: MediaItem, **lookup: Any) -> list[Annotation]:
    return list(Annotation.objects.filter(media=media, proposed=True, **lookup).order_by("id"))


# --- the models ----------------------------------------------------------------------------------


def test_it_saves_what_the_automatic_mask_generator_finds_best_first_and_capped(
    world: World, django_capture_on_commit_callbacks: Any, reference_model: Any
) -> None:
    media = picture(world)
    job = run(
        world,
        django_capture_on_commit_callbacks,
        model="tiny",
        method="automatic",
        label=world.demo.label.pk,
        items=[media.pk],
        options=LOOSE,
    )
    assert job.state == Job.State.SUCCEEDED, job.message
    assert DBTaskResult.objects.get(id=job.task_result_id).queue_name == "gpu"

    generator = SAM2AutomaticMaskGenerator(
        reference_model,
        points_per_side=2,
        points_per_batch=64,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=1.0,
    )
    found = generator.generate(stored_rgb(media))
    expected = sorted((r for r in found if r["segmentation"].any()), key=lambda r: -float(r["predicted_iou"]))
    assert len(expected) > LOOSE["max_objects"]  # the cap is what limits the count here

    made = proposals(media)
    assert len(made) == LOOSE["max_objects"]
    for annotation, record in zip(made, expected, strict=False):
        mask = mask_decode(annotation.rle)
        assert np.array_equal(mask, record["segmentation"])
        detail = annotation.source_detail
        assert (annotation.source, annotation.label, annotation.author) == ("model", world.demo.label, world.manager)
        assert (detail["model"], detail["method"], detail["job"]) == ("tiny", "automatic", job.pk)
        assert detail["score"] == round(float(record["predicted_iou"]), 4)
        assert detail["stability"] == round(float(record["stability_score"]), 4)
        [(x, y)] = record["point_coords"]
        assert detail["prompts"] == [{"points": [[round(x, 2), round(y, 2), 1]], "box": None}]
        rows, columns = np.nonzero(mask)
        assert detail["centroid"] == [round(columns.mean() + 0.5, 2), round(rows.mean() + 0.5, 2)]
    assert job.report["objects"] == 5 and job.report["annotated"] == 1
    assert job.report["per_item"] == [{"item": media.pk, "name": "disc.png", "objects": 5, "skipped": ""}]
    assert (job.progress_done, job.progress_total) == (1, 1)


def test_it_turns_boxes_into_the_masks_the_predictor_gives_for_them(
    world: World, django_capture_on_commit_callbacks: Any, reference_model: Any, service: SegmentationService
) -> None:
    media = picture(world)
    boxes = LabelFactory(project=world.demo.project, name="boxes", kind=Label.Kind.BOX)
    drawn = add_object(world, media, boxes, [40, 30, 14, 8])  # corners in any order
    plain = add_object(world, media, boxes, [2, 2, 20, 16], drawn=False)  # no drawn box: the mask's bbox
    target = mask_label(world)
    before = service.cache.stats()
    job = run(
        world,
        django_capture_on_commit_callbacks,
        model="tiny",
        method="boxes",
        label=target.pk,
        source_label=boxes.pk,
        items=[media.pk],
    )
    assert job.state == Job.State.SUCCEEDED, job.message
    after = service.cache.stats()
    # One encode for the item, the second box decoded on the cached embedding.
    assert (after["misses"] - before["misses"], after["hits"] - before["hits"]) == (1, 1)

    predictor = SAM2ImagePredictor(reference_model)
    predictor.set_image(stored_rgb(media))
    made = proposals(media, label=target)
    assert [a.source_detail["from"] for a in made] == [drawn.pk, plain.pk]
    for annotation, box in zip(made, ([14.0, 8.0, 40.0, 30.0], [2.0, 2.0, 20.0, 16.0]), strict=True):
        masks, scores, _ = predictor.predict(box=np.array(box, dtype=np.float32), multimask_output=False)
        best = int(np.argmax(scores))
        assert np.array_equal(mask_decode(annotation.rle), masks[best].astype(bool))
        detail = annotation.source_detail
        assert (detail["model"], detail["method"], detail["job"]) == ("tiny", "boxes", job.pk)
        assert detail["score"] == round(float(scores[best]), 4)
        assert detail["prompts"] == [{"points": None, "box": box}]
    assert Annotation.objects.filter(label=boxes, proposed=False).count() == 2  # the sources stay


# --- skipping, replacing, retrying (the fallback) --------------------------------------------------


def boxed_picture(world: World, name: str = "boxed.png") -> MediaItem:
    """A picture whose disc an annotator boxed with the fixture's label."""
    media = picture(world, name)
    add_object(world, media, world.demo.label, [14, 6, 46, 38])
    return media


def boxes_job(world: World, capture: Any, target: Label, **params: Any) -> Job:
    return run(
        world, capture, model="opencv", method="boxes", label=target.pk, source_label=world.demo.label.pk, **params
    )


def test_it_skips_items_with_proposals_of_the_same_method_unless_asked_to_replace_them(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    target, media = mask_label(world), boxed_picture(world)
    first = boxes_job(world, django_capture_on_commit_callbacks, target, items=[media.pk])
    assert first.state == Job.State.SUCCEEDED, first.message
    [made] = proposals(media)
    assert (made.label, made.source_detail["model"], made.source_detail["job"]) == (target, "opencv", first.pk)

    second = boxes_job(world, django_capture_on_commit_callbacks, target, items=[media.pk])
    assert second.report["per_item"] == [
        {
            "item": media.pk,
            "name": media.original_name,
            "objects": 0,
            "skipped": "holds 1 proposed object of an earlier boxes pre-annotation (replace was not asked)",
        }
    ]
    assert second.report["skipped_count"] == 1
    assert proposals(media) == [made]

    third = boxes_job(world, django_capture_on_commit_callbacks, target, items=[media.pk], replace=True)
    [replacement] = proposals(media)
    assert replacement.pk != made.pk and replacement.source_detail["job"] == third.pk
    assert (third.report["objects"], third.report["replaced"]) == (1, 1)
    # An accepted object is a person's: never replaced.
    replacement.proposed = False
    replacement.save(update_fields=["proposed"])
    boxes_job(world, django_capture_on_commit_callbacks, target, items=[media.pk], replace=True)
    assert Annotation.objects.filter(pk=replacement.pk).exists()


def test_it_works_on_the_selected_items_only_and_says_why_it_skipped_one(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    target = mask_label(world)
    boxed = boxed_picture(world)
    empty = picture(world, name="nothing-to-box.png")
    untouched = boxed_picture(world, name="not-selected.png")
    job = boxes_job(world, django_capture_on_commit_callbacks, target, items=[empty.pk, boxed.pk])
    assert job.params["items"] == [boxed.pk, empty.pk]
    assert job.report["per_item"] == [
        {"item": boxed.pk, "name": "boxed.png", "objects": 1, "skipped": ""},
        {
            "item": empty.pk,
            "name": "nothing-to-box.png",
            "objects": 0,
            "skipped": f"no “{world.demo.label.name}” objects to take boxes from",
        },
    ]
    assert (job.report["items"], job.report["annotated"], job.report["skipped_count"]) == (2, 1, 1)
    assert proposals(untouched) == [] and proposals(empty) == []


def test_it_does_not_repeat_an_item_when_the_job_is_retried(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    target, media = mask_label(world), boxed_picture(world)
    job = boxes_job(world, django_capture_on_commit_callbacks, target, items=[media.pk])
    [made] = proposals(media)
    Job.objects.filter(pk=job.pk).update(state=Job.State.FAILED)  # as if its worker had failed after the item
    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=job, actor=world.manager)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert (job.state, job.attempts) == (Job.State.SUCCEEDED, 2)
    assert proposals(media) == [made]
    assert job.report["per_item"][0]["objects"] == 1  # counted, not made again


def test_it_commits_nothing_for_the_item_when_the_job_is_cancelled_meanwhile(
    world: World, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, service: Any
) -> None:
    target = mask_label(world)

    class CancellingService:
        """The real service; the job is cancelled while the item is being segmented."""

        loader = service.loader

        def segment(self, **kwargs: Any) -> Any:
            job_cancel(job=Job.objects.get(kind="preannotate"), actor=world.manager)
            return service.segment(**kwargs)

    media = boxed_picture(world)
    monkeypatch.setattr(preannotation, "get_service", CancellingService)
    job = boxes_job(world, django_capture_on_commit_callbacks, target, items=[media.pk])
    assert job.state == Job.State.CANCELLED
    assert proposals(media) == []


def test_it_fails_the_job_when_its_starter_is_no_longer_a_manager(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    target = mask_label(world)
    job = start(
        world,
        django_capture_on_commit_callbacks,
        model="opencv",
        method="boxes",
        label=target.pk,
        source_label=world.demo.label.pk,
    )
    Membership.objects.filter(user=world.manager, organization=world.demo.org).update(role=Role.ANNOTATOR)
    run_job.call(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert "no longer a manager" in job.message
    assert proposals(world.demo.media) == []


def test_it_fails_the_job_when_its_label_was_deleted_before_it_ran(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    target = mask_label(world)
    job = start(
        world,
        django_capture_on_commit_callbacks,
        model="opencv",
        method="boxes",
        label=target.pk,
        source_label=world.demo.label.pk,
    )
    target.delete()
    run_job.call(job.pk)
    job.refresh_from_db()
    assert (job.state, job.message) == (Job.State.FAILED, "The target label chosen for this job has been deleted.")


def test_it_puts_the_centroid_of_each_mask_at_its_pixel_centres() -> None:
    mask = np.zeros((4, 6), dtype=bool)
    mask[1:3, 2:6] = True  # columns 2..5, rows 1..2
    assert preannotation.centroid(mask) == [4.0, 2.0]


def test_it_takes_the_drawn_box_clipped_to_the_image_else_the_masks_box() -> None:
    drawn = Annotation(drawn={"box": [70, -5, 10, 20]}, bbox=[0, 0, 1, 1])
    assert preannotation.prompt_box(drawn, width=64, height=48) == [10.0, 0.0, 64.0, 20.0]
    plain = Annotation(drawn={}, bbox=[3.0, 4.0, 10.0, 5.0])
    assert preannotation.prompt_box(plain, width=64, height=48) == [3.0, 4.0, 13.0, 9.0]
    outside = Annotation(drawn={"box": [70, 50, 80, 60]}, bbox=[0, 0, 1, 1])
    assert preannotation.prompt_box(outside, width=64, height=48) is None
