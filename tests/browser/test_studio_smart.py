"""The smart tool in a real browser on daphne: clicks on a photograph become masks, segmented where
inference runs and saved at once. With the classical fallback (the default without trained weights):
a click makes an object holding the clicked pixel, a Ctrl+click refines it, undo brings the first
mask and its prompt back. With SAM 2.1 tiny (random weights, picked in the model picker): the mask
the page draws and the server stores is, pixel for pixel, what ``SAM2ImagePredictor`` gives for the
same click in this process."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

from annotation.media_services import media_create_image
from annotation.models import Annotation, MediaItem
from tests.browser.conftest import in_own_thread
from tests.browser.test_hardening import watch
from tests.browser.test_studio import STUDIO, at, decode, idle
from tests.browser.test_studio_flow import hit, live, seen
from tests.browser.test_workspace_flow import sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),  # inside sam2
]

MODEL_S = 180_000  # the first prompt builds the model and encodes the photograph on a busy CPU


@pytest.fixture
def daphne_env(sam2_checkpoint_dir: Path) -> dict[str, str]:
    return {"SAM2_CHECKPOINT_DIR": str(sam2_checkpoint_dir), "INFERENCE_DEVICE": "cpu", "INFERENCE_MODE": "inline"}


@pytest.fixture
def coffee(world: Any, photo: np.ndarray) -> MediaItem:
    """The photograph as an item of the annotator's task (stored as PNG: the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    item = media_create_image(project=world.demo.project, name="coffee.png", data=buffer.getvalue())
    MediaItem.objects.filter(pk=item.pk).update(task=world.demo.task)
    return item


def rows(item: MediaItem) -> list[Annotation]:
    return in_own_thread(lambda: list(Annotation.objects.filter(media=item).order_by("z_order", "id")))


def wait_for_objects(page: Any, versions: list[int]) -> None:
    """Until the page holds saved objects at these versions, bottom to top."""
    deadline = time.monotonic() + MODEL_S / 1000
    held = None
    while time.monotonic() < deadline:
        held = page.evaluate(f"{STUDIO}.then((s) => s.store.ordered().map((o) => o.id == null ? null : o.version))")
        if held == versions:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"The page holds objects at versions {held}, not {versions}")


def click(page: Any, x: float, y: float, *, negative: bool = False) -> None:
    if negative:
        page.keyboard.down("Control")
    page.mouse.click(*at(page, x, y))
    if negative:
        page.keyboard.up("Control")


def test_it_segments_clicks_with_the_fallback_and_with_sam2_saving_each_mask(
    world: Any, coffee: MediaItem, sam2_checkpoint_dir: Path, photo: np.ndarray, daphne_server: str, page: Any
) -> None:
    label = world.demo.label
    errors = watch(page)
    writes: list[str] = []
    page.context.on("request", lambda r: writes.append(r.url) if r.method != "GET" else None)
    sign_in(page, daphne_server, "annotator")
    page.goto(f"{daphne_server}/o/demo-lab/tasks/{world.demo.task.pk}/items/{coffee.pk}/studio/")
    live(page)
    page.wait_for_load_state("load")
    writes.clear()

    # Only random weights here: the fallback is the default, and the picker says why.
    picker = page.get_by_test_id("smart-model")
    expect(picker).to_have_value("opencv")
    expect(picker.locator("option[value=tiny]")).to_have_text("SAM 2.1 tiny (random weights: its masks are noise)")
    page.keyboard.press("s")
    click(page, 300, 160)
    wait_for_objects(page, [1])
    [made] = rows(coffee)
    points = made.drawn["points"]
    [[x, y, _]] = points
    assert made.drawn == {"tool": "smart", "model": "opencv", "points": [[x, y, 1]], "box": None}
    assert (made.label_id, made.source, made.version, made.author_id) == (label.pk, "model", 1, world.annotator.pk)
    assert made.source_detail["prompts"] == [{"points": points, "box": None}]
    first_mask = decode(made.rle)
    assert first_mask[y, x]  # the fallback keeps the part that holds the click
    assert hit(page, (x + 0.5, y + 0.5)) == made.pk  # drawn from the stored RLE
    assert seen(page)[0]["rle"] == made.rle
    expect(page.get_by_test_id("object-count")).to_have_text("1")

    # Ctrl+click outside the cup refines the same object.
    click(page, 40, 360, negative=True)
    wait_for_objects(page, [2])
    [refined] = rows(coffee)
    assert refined.pk == made.pk
    assert refined.drawn["points"][0] == [x, y, 1] and refined.drawn["points"][1][2] == 0
    assert len(refined.source_detail["prompts"]) == 2
    assert seen(page)[0]["rle"] == refined.rle

    # Undo: the first mask and its one prompt come back, written as the next version.
    page.keyboard.press("Control+z")
    idle(page)
    [undone] = rows(coffee)
    assert (undone.version, undone.rle, undone.drawn) == (3, made.rle, made.drawn)

    # Esc finishes the object; SAM 2.1 tiny, picked by hand, makes the next one.
    page.keyboard.press("Escape")
    picker.select_option("tiny")
    expect(page.get_by_test_id("studio-hint")).to_contain_text("random weights")
    click(page, 250, 120)
    wait_for_objects(page, [3, 1])
    new = rows(coffee)[1]
    [[px, py, _]] = new.drawn["points"]
    assert new.drawn == {"tool": "smart", "model": "tiny", "points": [[px, py, 1]], "box": None}
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt"), "cpu")
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(photo)
    masks, scores, _ = predictor.predict(
        point_coords=np.array([[px, py]], dtype=np.float32), point_labels=np.array([1]), multimask_output=True
    )
    best = masks[int(np.argmax(scores))].astype(bool)
    assert np.array_equal(decode(new.rle), best)
    assert new.source_detail["score"] == round(float(scores.max()), 4)
    assert seen(page)[1]["rle"] == new.rle
    row, col = np.argwhere(best)[len(np.argwhere(best)) // 2]
    assert hit(page, (col + 0.5, row + 0.5)) == new.pk
    expect(page.get_by_test_id("object-count")).to_have_text("2")

    # The masks came over the socket; the page wrote only the undo itself, over the socket too.
    assert writes == []
    assert page.evaluate("window.__cspViolations") == []
    assert errors == []
