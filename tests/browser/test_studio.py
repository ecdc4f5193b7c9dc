"""The studio in a real browser, saving over REST (what works without the studio socket): zoom, pan
and fit; drawing polygons, boxes and brush strokes whose stored RLE is what pycocotools computes from
the drawn geometry; editing vertices; undo and redo across saves; conflicts; the keyboard; no
Content-Security-Policy violation anywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect
from pycocotools import mask as coco_mask

from annotation.models import Annotation, Label, MediaItem, Question
from tests.browser.conftest import in_own_thread
from tests.browser.test_hardening import watch
from tests.browser.test_studio_rle import brush_rule, unexpected
from tests.browser.test_workspace_flow import sign_in
from tests.factories import LabelFactory, make_image

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STUDIO = "import('/static/js/studio/studio.js').then((m) => m.ready)"
W, H = 400, 300


@pytest.fixture
def items(world: Any) -> list[MediaItem]:
    """Three more images in the annotator's task (400 × 300, nothing drawn yet), and a second label."""
    made = [make_image(world.demo.project, name=f"harbour{n}.png", width=W, height=H) for n in range(3)]
    MediaItem.objects.filter(pk__in=[m.pk for m in made]).update(task=world.demo.task)
    LabelFactory(project=world.demo.project, name="boat", color="#e6194b", order=5, guidelines="Only **hulls**.")
    Label.objects.filter(pk=world.demo.label.pk).update(order=1)
    return made


@pytest.fixture
def studio(world: Any, items: list[MediaItem], live_server: Any, page: Any) -> Iterator[Any]:
    """The annotator, signed in; every page they see is watched for policy violations and errors."""
    errors = watch(page)
    sign_in(page, live_server.url, "annotator")
    page.base = live_server.url
    page.errors = errors
    yield page
    assert page.evaluate("window.__cspViolations") == []
    assert unexpected(errors) == []


def open_studio(page: Any, world: Any, item: MediaItem) -> None:
    page.goto(f"{page.base}/o/demo-lab/tasks/{world.demo.task.pk}/items/{item.pk}/studio/")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")


def at(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where image pixel coordinates (x, y) are on the page now."""
    return tuple(
        page.evaluate(
            f"""([x, y]) => {STUDIO}.then((s) => {{
              const rect = s.viewer.canvas.getBoundingClientRect();
              const [dx, dy] = s.viewer.toDisplay(x, y);
              return [rect.left + dx, rect.top + dy];
            }})""",
            [x, y],
        )
    )


def view(page: Any) -> dict[str, float]:
    return page.evaluate(
        f"{STUDIO}.then((s) => ({{scale: s.viewer.scale, x: s.viewer.x, y: s.viewer.y, "
        "w: s.viewer.viewWidth, h: s.viewer.viewHeight}))"
    )


def image_point(page: Any, page_x: float, page_y: float) -> list[float]:
    return page.evaluate(f"([x, y]) => {STUDIO}.then((s) => s.viewer.toImage(x, y))", [page_x, page_y])


def idle(page: Any) -> None:
    page.evaluate(f"{STUDIO}.then((s) => s.store.whenIdle())")
    expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")


def drag(page: Any, points: list[tuple[float, float]], button: str = "left") -> None:
    page.mouse.move(*at(page, *points[0]))
    page.mouse.down(button=button)
    for point in points[1:]:
        page.mouse.move(*at(page, *point), steps=4)
    page.mouse.up(button=button)


def stored(item: MediaItem) -> list[Annotation]:
    return in_own_thread(lambda: list(Annotation.objects.filter(media=item).order_by("id")))


def decode(rle: dict) -> np.ndarray:
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)


def expected_mask(drawn: dict) -> np.ndarray:
    """The mask pycocotools (and the documented brush rule) make from the drawn geometry."""
    if drawn["tool"] == "polygon":
        flat = [c for point in drawn["points"] for c in point]
        mask = decode_bytes(coco_mask.merge(coco_mask.frPyObjects([flat], H, W)))
    elif drawn["tool"] == "box":
        x0, y0, x1, y1 = drawn["box"]
        mask = decode_bytes(coco_mask.frPyObjects(np.array([[x0, y0, x1 - x0, y1 - y0]], dtype=float), H, W)[0])
    else:
        mask = np.zeros((H, W), bool)
    for stroke in drawn.get("strokes", []):
        region = brush_rule(stroke["points"], stroke["size"], H, W)
        mask = mask & ~region if stroke["mode"] == "erase" else mask | region
    return mask


def decode_bytes(rle: dict) -> np.ndarray:
    return coco_mask.decode(rle).astype(bool)


def coco_counts(mask: np.ndarray) -> str:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


# --- the page ------------------------------------------------------------------------------------


def test_it_opens_from_the_task_page_with_the_stored_objects_and_no_violations(world: Any, studio: Any) -> None:
    page = studio
    page.goto(f"{page.base}/o/demo-lab/tasks/{world.demo.task.pk}/items/{world.demo.media.pk}/")
    page.get_by_role("link", name="Open in the studio").click()
    page.wait_for_url(re.compile(r"/studio/$"))
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")
    # The live test server speaks HTTP only: the page saves over REST and says so.
    expect(page.get_by_test_id("studio-transport")).to_have_text("Saved over HTTP")
    # The box the fixture stored on this item, listed and drawn.
    objects = page.get_by_test_id("object-list").locator(".object-row")
    expect(objects).to_have_count(1)
    expect(objects.first).to_contain_text(f"{world.demo.label.name} #{world.demo.annotation.pk}")
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(10, 8)?.id)") == world.demo.annotation.pk
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(2, 2))") is None
    # Labels with their keys and colours; the first is chosen.
    first_label = page.locator(".label-pick").first
    expect(first_label).to_have_attribute("aria-pressed", "true")
    expect(first_label).to_contain_text("1")
    assert first_label.locator(".swatch").evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(31, 119, 180)"

    # The mask is drawn in its label's colour over the image, as opaque as the slider says.
    def pixel(x: float, y: float) -> list[int]:
        return page.evaluate(
            f"""([x, y]) => {STUDIO}.then((s) => new Promise((done) => {{
              s.viewer.requestRender();
              requestAnimationFrame(() => requestAnimationFrame(() => {{
                const [dx, dy] = s.viewer.toDisplay(x, y);
                const ratio = s.viewer.canvas.width / s.viewer.viewWidth;
                const data = s.viewer.ctx.getImageData(Math.round(dx * ratio), Math.round(dy * ratio), 1, 1).data;
                done([data[0], data[1], data[2]]);
              }}));
            }}))""",
            [x, y],
        )

    opacity = page.locator("#mask-opacity")
    opacity.fill("100")
    assert pixel(15.5, 12.5) == [31, 119, 180]  # inside the box: the label's colour
    assert pixel(40.5, 40.5) == [200, 80, 40]  # outside: the image (the factories' orange)
    opacity.fill("0")
    assert pixel(15.5, 12.5) == [200, 80, 40]
    assert pixel(8.5, 12.5) == [31, 119, 180]  # the outline stays


def test_it_zooms_pans_and_fits(world: Any, items: list[MediaItem], studio: Any) -> None:
    page = studio
    open_studio(page, world, items[0])
    fitted = view(page)
    # Fitted: the whole image in view, touching two sides, centred.
    assert fitted["scale"] == pytest.approx(min(fitted["w"] / W, fitted["h"] / H))
    assert fitted["x"] == pytest.approx((fitted["w"] - W * fitted["scale"]) / 2)
    assert fitted["y"] == pytest.approx((fitted["h"] - H * fitted["scale"]) / 2)
    expect(page.get_by_test_id("zoom-level")).to_have_text(f"{round(fitted['scale'] * 100)} %")

    # + zooms in about the middle of the view: the image point there stays there.
    canvas = page.get_by_test_id("studio-canvas").bounding_box()
    middle = (canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    before = image_point(page, *middle)
    page.keyboard.press("+")
    zoomed = view(page)
    assert zoomed["scale"] == pytest.approx(fitted["scale"] * 1.25)
    assert image_point(page, *middle) == pytest.approx(before)

    # The wheel zooms about the pointer (mouse events carry whole CSS pixels).
    pointer = tuple(round(v) for v in at(page, 100, 80))
    under = image_point(page, *pointer)
    page.mouse.move(*pointer)
    page.mouse.wheel(0, -120)
    expect(page.get_by_test_id("zoom-level")).not_to_have_text(f"{round(zoomed['scale'] * 100)} %")
    assert view(page)["scale"] > zoomed["scale"] * 1.1
    assert image_point(page, *pointer) == pytest.approx(under, abs=1e-6)

    # Space + drag pans by exactly the distance dragged, in display pixels.
    start = view(page)
    page.keyboard.down("Space")
    page.mouse.move(*pointer)
    page.mouse.down()
    page.mouse.move(pointer[0] + 40, pointer[1] + 25, steps=5)
    page.mouse.up()
    page.keyboard.up("Space")
    panned = view(page)
    assert (panned["x"] - start["x"], panned["y"] - start["y"]) == pytest.approx((40, 25))
    assert panned["scale"] == start["scale"]
    assert stored(items[0]) == []  # panning drew nothing

    # So does the middle button.
    page.mouse.move(*pointer)
    page.mouse.down(button="middle")
    page.mouse.move(pointer[0] - 30, pointer[1] - 10, steps=5)
    page.mouse.up(button="middle")
    after = view(page)
    assert (after["x"] - panned["x"], after["y"] - panned["y"]) == pytest.approx((-30, -10))

    # - zooms out; F fits again; the buttons do the same.
    page.keyboard.press("-")
    assert view(page)["scale"] == pytest.approx(after["scale"] / 1.25)
    page.keyboard.press("f")
    assert view(page) == pytest.approx(fitted)
    page.locator("#zoom-in").click()
    assert view(page)["scale"] == pytest.approx(fitted["scale"] * 1.25)
    page.locator("#zoom-fit").click()
    assert view(page) == pytest.approx(fitted)


def test_it_draws_a_polygon_a_box_and_brush_strokes_stored_as_pycocotools_computes_them(
    world: Any, items: list[MediaItem], studio: Any
) -> None:
    page = studio
    item = items[0]
    open_studio(page, world, item)
    # Zoomed and panned first: what is stored is in image pixels, whatever the view.
    page.keyboard.press("+")
    middle = at(page, 200, 150)
    page.mouse.move(*middle)
    page.mouse.down(button="middle")
    page.mouse.move(middle[0] + 60, middle[1] + 20, steps=4)
    page.mouse.up(button="middle")

    page.keyboard.press("p")
    for point in [(60.4, 40.2), (150.7, 52.1), (170.3, 120.8), (90.2, 140.6)]:
        page.mouse.click(*at(page, *point))
    page.mouse.click(*at(page, 60.4, 40.2))  # the first vertex again closes it
    idle(page)

    page.keyboard.press("r")
    drag(page, [(210.3, 30.6), (260, 60), (290.8, 110.2)])
    idle(page)

    page.keyboard.press("Escape")  # let go of the box: the brush starts a new object
    page.keyboard.press("b")
    drag(page, [(40, 200), (90, 220), (150, 250)])
    idle(page)
    page.keyboard.press("e")  # the new brush object is selected: erase across it
    page.keyboard.press("[")
    drag(page, [(80, 190), (95, 240)])
    idle(page)

    annotations = stored(item)
    assert [a.drawn["tool"] for a in annotations] == ["polygon", "box", "brush"]
    polygon, box, brush = annotations
    assert len(polygon.drawn["points"]) == 4
    assert polygon.drawn["points"][0] == pytest.approx([60.4, 40.2], abs=0.6)
    assert box.drawn["box"] == pytest.approx([210.3, 30.6, 290.8, 110.2], abs=0.6)
    assert [s["mode"] for s in brush.drawn["strokes"]] == ["paint", "erase"]
    assert brush.drawn["strokes"][1]["size"] < brush.drawn["strokes"][0]["size"]  # "[" made it smaller
    for annotation in annotations:
        expected = expected_mask(annotation.drawn)
        assert annotation.rle["size"] == [H, W]
        assert np.array_equal(decode(annotation.rle), expected), annotation.drawn["tool"]
        assert annotation.rle["counts"] == coco_counts(expected), annotation.drawn["tool"]
        assert (annotation.label_id, annotation.author_id) == (world.demo.label.pk, world.annotator.pk)
    assert [a.version for a in annotations] == [1, 1, 2]  # the eraser changed the brush object
    assert 0 < brush.area < expected_mask({**brush.drawn, "strokes": brush.drawn["strokes"][:1]}).sum()

    # A reload shows everything again.
    page.reload()
    assert page.evaluate(f"{STUDIO}.then((s) => s.store.ordered().map((o) => o.id))") == [a.pk for a in annotations]
    expect(page.get_by_test_id("object-count")).to_have_text("3")


def test_it_edits_a_polygons_vertex_and_undoes_and_redoes_across_saves(
    world: Any, items: list[MediaItem], studio: Any
) -> None:
    page = studio
    item = items[0]
    open_studio(page, world, item)
    page.keyboard.press("p")
    for point in [(50, 50), (150, 60), (120, 160)]:
        page.mouse.click(*at(page, *point))
    page.keyboard.press("Enter")  # closes the polygon (it does not leave the item)
    idle(page)
    [first] = stored(item)
    assert (first.version, first.drawn["points"]) == (1, [[50, 50], [150, 60], [120, 160]])

    page.keyboard.press("v")
    drag(page, [(150, 60), (180, 70), (200, 80)])  # the selected polygon's second vertex
    idle(page)
    [moved] = stored(item)
    assert moved.version == 2
    assert moved.drawn["points"][1] == pytest.approx([200, 80], abs=0.6)
    assert np.array_equal(decode(moved.rle), expected_mask(moved.drawn))

    # Undo writes the previous state back as a new version.
    page.keyboard.press("Control+z")
    idle(page)
    [undone] = stored(item)
    assert undone.version == 3
    assert undone.drawn["points"] == first.drawn["points"] and undone.rle == first.rle
    page.keyboard.press("Control+y")
    idle(page)
    [redone] = stored(item)
    assert (redone.version, redone.drawn, redone.rle) == (4, moved.drawn, moved.rle)

    # Deleting is undone too: the object comes back (as a new row), with its geometry.
    page.keyboard.press("Delete")
    idle(page)
    assert stored(item) == []
    expect(page.get_by_test_id("object-count")).to_have_text("0")
    page.keyboard.press("Control+z")
    idle(page)
    [back] = stored(item)
    assert back.pk != redone.pk and (back.drawn, back.rle) == (redone.drawn, redone.rle)
    # Undoing the drawing itself deletes it on the server.
    for _ in range(3):
        page.keyboard.press("Control+z")
    idle(page)
    assert stored(item) == []
    expect(page.locator("#redo")).to_be_enabled()


def test_it_works_from_the_keyboard(world: Any, items: list[MediaItem], studio: Any) -> None:
    page = studio
    item = items[0]
    boat = in_own_thread(lambda: Label.objects.get(name="boat"))
    open_studio(page, world, item)
    labels = page.locator(".label-pick")
    expect(labels.nth(1)).to_contain_text("boat")

    # 2 chooses the second label, and its guideline notes show.
    page.keyboard.press("2")
    expect(labels.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(labels.nth(0)).to_have_attribute("aria-pressed", "false")
    expect(page.locator(f"[data-guidelines='{boat.pk}']")).to_be_visible()
    expect(page.locator(f"[data-guidelines='{boat.pk}'] strong")).to_have_text("hulls")

    page.keyboard.press("r")
    expect(page.locator(".tool[data-tool=box]")).to_have_attribute("aria-pressed", "true")
    drag(page, [(20, 20), (80, 90)])
    idle(page)
    [box] = stored(item)
    assert box.label_id == boat.pk

    # 1 gives the selected object the first label; its question shows and an answer is saved.
    page.keyboard.press("1")
    idle(page)
    assert stored(item)[0].label_id == world.demo.label.pk
    questions = page.locator(f"[data-object-questions='{world.demo.label.pk}']")
    expect(questions).to_be_visible()
    questions.get_by_label("partially visible").check()
    idle(page)
    assert stored(item)[0].answers == {str(world.demo.question.pk): "partially visible"}

    # [ and ] size the brush; H hides every object and shows them again; ? lists the keys.
    size = page.get_by_test_id("brush-size")
    expect(size).to_have_text("12")
    page.keyboard.press("]")
    expect(size).to_have_text("16")
    page.keyboard.press("[")
    page.keyboard.press("[")
    expect(size).to_have_text("8")
    page.keyboard.press("h")
    expect(page.locator("#hide-all")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(50, 50))") is None
    page.keyboard.press("h")
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(50, 50)?.id)") == box.pk
    page.keyboard.press("?")
    expect(page.get_by_test_id("studio-help")).to_be_visible()
    expect(page.get_by_test_id("studio-help")).to_contain_text("Next unannotated item")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("studio-help")).to_be_hidden()

    # Esc lets go of the object; a click selects it again; Delete deletes it.
    page.keyboard.press("Escape")
    expect(page.locator(".object-row.selected")).to_have_count(0)
    page.keyboard.press("v")
    page.mouse.click(*at(page, 50, 50))
    expect(page.locator(".object-row.selected")).to_have_count(1)
    page.keyboard.press("Delete")
    idle(page)
    assert stored(item) == []

    # Over REST the smart tool says plainly that it needs the live connection, and draws nothing.
    page.keyboard.press("s")
    expect(page.get_by_test_id("studio-hint")).to_contain_text("needs the studio's live connection")
    page.mouse.click(*at(page, 200, 150))
    idle(page)
    assert stored(item) == []


def test_it_moves_through_the_task_and_saves_the_item_with_enter(
    world: Any, items: list[MediaItem], studio: Any
) -> None:
    page = studio
    first, second, third = items
    in_own_thread(lambda: MediaItem.objects.filter(pk=second.pk).update(done_at="2026-01-01T00:00:00Z"))
    dense = in_own_thread(
        lambda: Question.objects.create(project=world.demo.project, text="Dense scene", choices=["yes", "no"])
    )
    open_studio(page, world, first)
    position = page.get_by_test_id("task-position")
    expect(position).to_have_text("Item 2 of 4")  # the fixture's own image is item 1

    page.keyboard.press("ArrowRight")
    expect(position).to_have_text("Item 3 of 4")
    assert page.url.endswith(f"/items/{second.pk}/studio/")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text("Item 2 of 4")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")

    # U and >> jump over the finished item.
    page.keyboard.press("u")
    expect(position).to_have_text("Item 4 of 4")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text("Item 3 of 4")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text("Item 2 of 4")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")
    page.keyboard.press(">")
    page.keyboard.press(">")
    expect(position).to_have_text("Item 4 of 4")
    assert page.evaluate(f"{STUDIO}.then((s) => s !== null)")

    # Draw, answer the item's question, Enter: everything is saved, the item is done, and the studio
    # goes on to the next unannotated item (the fixture's first image).
    page.keyboard.press("r")
    drag(page, [(10, 10), (60, 40)])
    page.get_by_label("yes").check()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/items/{world.demo.media.pk}/studio/$"))
    expect(position).to_have_text("Item 1 of 4")
    done = in_own_thread(lambda: MediaItem.objects.get(pk=third.pk))
    assert done.done_at is not None and done.answers == {str(dense.pk): "yes"}
    assert [a.drawn["tool"] for a in stored(third)] == ["box"]


def test_it_offers_to_reload_or_reapply_after_someone_else_changed_the_object(
    world: Any, items: list[MediaItem], studio: Any
) -> None:
    page = studio
    item = items[0]
    open_studio(page, world, item)
    page.keyboard.press("r")
    drag(page, [(20, 20), (80, 90)])
    idle(page)
    [box] = stored(item)

    # Someone else moves it to the top while this page still holds version 1.
    in_own_thread(lambda: Annotation.objects.filter(pk=box.pk).update(version=2, z_order=7))
    page.keyboard.press("2")  # relabel the selected box: refused as stale (409)
    banner = page.locator("#studio-conflict")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("version 2")
    assert stored(item)[0].label_id == world.demo.label.pk  # nothing overwritten
    page.get_by_role("button", name="Reload theirs").click()
    expect(banner).to_be_hidden()
    assert page.evaluate(f"{STUDIO}.then((s) => [s.store.ordered()[0].version, s.store.ordered()[0].z_order])") == [
        2,
        7,
    ]

    # Again, and this time the local change wins on top of theirs.
    in_own_thread(lambda: Annotation.objects.filter(pk=box.pk).update(version=3, z_order=9))
    page.keyboard.press("2")
    expect(banner).to_be_visible()
    page.get_by_role("button", name="Reapply mine").click()
    idle(page)
    expect(banner).to_be_hidden()
    [after] = stored(item)
    boat = in_own_thread(lambda: Label.objects.get(name="boat"))
    assert (after.label_id, after.version) == (boat.pk, 4)
    # The browser reports each refused write; nothing else went wrong.
    refused = [e for e in page.errors if "status of 409 (Conflict)" in e]
    assert len(refused) == 2
    page.errors[:] = [e for e in page.errors if e not in refused]


def test_it_orders_hides_relabels_and_deletes_objects_from_the_list(
    world: Any, items: list[MediaItem], studio: Any
) -> None:
    page = studio
    item = items[0]
    open_studio(page, world, item)
    page.keyboard.press("r")
    drag(page, [(20, 20), (120, 120)])
    drag(page, [(60, 60), (160, 160)])  # overlaps the first, on top of it
    idle(page)
    below, above = stored(item)
    assert above.z_order > below.z_order
    rows = page.get_by_test_id("object-list").locator(".object-row")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-id", str(above.pk))  # listed top first
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(90, 90)?.id)") == above.pk

    # Send the top one back: the other is now on top, drawn and picked first.
    row = page.locator(f".object-row[data-id='{above.pk}']")
    row.get_by_title("Send back").click()
    idle(page)
    assert {a.pk: a.z_order for a in stored(item)}[above.pk] < below.z_order
    expect(rows.first).to_have_attribute("data-id", str(below.pk))
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(90, 90)?.id)") == below.pk
    row.get_by_title("Bring forward").click()
    idle(page)
    assert {a.pk: a.z_order for a in stored(item)}[above.pk] > below.z_order

    # Hiding is a view matter: nothing is written, the hidden object is not picked.
    row.get_by_role("button", name="Hide").click()
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(90, 90)?.id)") == below.pk
    row.get_by_role("button", name="Show").click()
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.hit(90, 90)?.id)") == above.pk

    # Relabel from the list, select from the list, delete from the list.
    boat = in_own_thread(lambda: Label.objects.get(name="boat"))
    row.get_by_label("Label of this object").select_option(str(boat.pk))
    idle(page)
    assert {a.pk: a.label_id for a in stored(item)} == {below.pk: world.demo.label.pk, above.pk: boat.pk}
    page.locator(f".object-row[data-id='{below.pk}'] .object-pick").click()
    expect(page.locator(".object-row.selected")).to_have_attribute("data-id", str(below.pk))
    page.locator(f".object-row[data-id='{below.pk}']").get_by_title("Delete").click()
    idle(page)
    assert [a.pk for a in stored(item)] == [above.pk]
    assert [a.version for a in stored(item)] == [4]  # back, forward, relabel
