"""The studio's timeline player in a real browser on daphne, on a video made here with PyAV (a bright
square moving over a dark background): the frame count shown, → and the frame input moving frame by
frame (the picture on the canvas with them), playback through every frame in order, a box drawn on
frame 0 saved with its frame and a track, the strip and the track view marking it, the same track
continued on a later frame, the strip following what others change (the socket's events), and
previews with the masks drawn in while playing. Then the issue's whole video flow: the clip uploaded
from the project page and opened in the studio from the gallery, an object clicked on frame 0 and
propagated over the socket frame by frame (annotation/studio/consumers.py), a later frame corrected
and propagated again, and the project exported as YouTube-VIS by the job worker, the downloaded file
checked as a loader checks it and against the stored masks."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from playwright.sync_api import expect
from pycocotools import mask as coco_mask

from annotation.datasets.youtube_vis_reading import check_youtube_vis
from annotation.masks import mask_decode
from annotation.models import Annotation, MediaItem, Project
from annotation.video_services import media_create_video
from tests.browser.conftest import in_own_thread, server_environment
from tests.browser.job_worker import db_worker
from tests.browser.test_hardening import watch
from tests.browser.test_studio import STUDIO, at, decode, drag, idle
from tests.browser.test_studio_flow import live
from tests.browser.test_workspace_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

W, H, FRAMES, FPS = 96, 64, 6, 10
SIDE = 16


def square_at(index: int) -> tuple[int, int]:
    """The top-left corner of the square on frame ``index``."""
    return 8 + 14 * index, 24


def moving_square() -> bytes:
    """An MP4 of FRAMES frames: a white square moving right over a dark background."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as clip:
        stream = clip.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for index in range(FRAMES):
            picture = np.full((H, W, 3), 20, np.uint8)
            x, y = square_at(index)
            picture[y : y + SIDE, x : x + SIDE] = 240
            clip.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        clip.mux(stream.encode())
    return out.getvalue()


@pytest.fixture
def videos_project(world: Any) -> Project:
    """The demo project, taking images and videos."""
    project = world.demo.project
    project.media_type = Project.MediaType.BOTH
    project.save(update_fields=["media_type"])
    return project


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """The clip as a file to upload."""
    path = tmp_path / "square.mp4"
    path.write_bytes(moving_square())
    return path


@pytest.fixture
def video(world: Any, videos_project: Project) -> MediaItem:
    """The clip as an item of the annotator's task."""
    item = media_create_video(
        project=videos_project, name="square.mp4", data=moving_square(), uploaded_by=world.manager
    )
    MediaItem.objects.filter(pk=item.pk).update(task=world.demo.task)
    return item


def wait_until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Poll ``check`` until it gives something true (wait_for_function takes no promises)."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"Timed out waiting for {what} (last: {value!r})")


def frame_state(page: Any) -> dict[str, Any]:
    return page.evaluate(
        f"""{STUDIO}.then((s) => ({{
          frame: s.video.frame,
          playing: s.video.playing,
          shown: s.video.shownUrl,
          src: s.viewer.image ? s.viewer.image.src : null,
          storeFrame: s.store.frame,
        }}))"""
    )


def shows(page: Any, frame: int) -> None:
    """The timeline is on ``frame``, paused, and the canvas has that frame's own picture."""

    def check() -> bool:
        state = frame_state(page)
        return (
            state["frame"] == frame
            and not state["playing"]
            and state["storeFrame"] == frame
            and (state["src"] or "").endswith(f"/frames/{frame}.jpg")
        )

    wait_until(check, f"frame {frame} on the canvas")
    expect(page.get_by_test_id("timeline-frame")).to_have_value(str(frame))


def brightness_at(page: Any, x: float, y: float) -> float:
    """The canvas's brightness (mean of R, G, B) at image point (x, y), as drawn now."""
    return page.evaluate(
        f"""([x, y]) => {STUDIO}.then((s) => new Promise((resolve) => requestAnimationFrame(() => {{
          s.viewer.render();
          const dpr = s.viewer.canvas.width / s.viewer.viewWidth;
          const [dx, dy] = s.viewer.toDisplay(x, y);
          const [r, g, b] = s.viewer.ctx.getImageData(Math.round(dx * dpr), Math.round(dy * dpr), 1, 1).data;
          resolve((r + g + b) / 3);
        }})))""",
        [x, y],
    )


def strip_frames(page: Any, track: str) -> str | None:
    row = page.get_by_test_id("timeline-strip").locator(f'.strip-row[data-track="{track}"]')
    return row.get_attribute("data-frames") if row.count() else None


def box_rle(x: int, y: int) -> dict[str, Any]:
    mask = np.zeros((H, W), np.uint8)
    mask[y : y + SIDE, x : x + SIDE] = 1
    rle = coco_mask.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def rest(page: Any, method: str, path: str, body: dict[str, Any] | None) -> Any:
    """A call to the item's annotation API from the page's origin, with the page's session."""
    return page.evaluate(
        f"""([method, path, body]) => {STUDIO}.then(async (s) => {{
          const response = await fetch(s.data.annotationsUrl + path, {{
            method,
            headers: {{"Content-Type": "application/json", "X-CSRFToken": s.csrfToken}},
            body: body === null ? undefined : JSON.stringify(body),
          }});
          if (!response.ok) throw new Error(`${{method}} ${{path}}: ${{response.status}} ${{await response.text()}}`);
          return response.status === 204 ? null : response.json();
        }})""",
        [method, path, body],
    )


def stored(item: MediaItem) -> list[Annotation]:
    return in_own_thread(lambda: list(Annotation.objects.filter(media=item).order_by("frame", "id")))


def open_video(page: Any, world: Any, base: str, video: MediaItem) -> None:
    sign_in(page, base, "annotator")
    page.goto(f"{base}/o/demo-lab/tasks/{world.demo.task.pk}/items/{video.pk}/studio/")
    live(page)
    expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")
    page.evaluate(
        f"""{STUDIO}.then((s) => {{
          window.__frames = [];
          s.video.addEventListener("frame", () => window.__frames.push(s.video.frame));
        }})"""
    )


def test_it_plays_steps_and_draws_on_the_frames_of_a_video(
    world: Any, video: MediaItem, daphne_server: str, page: Any
) -> None:
    errors = watch(page)
    requests: list[str] = []
    page.context.on("request", lambda r: requests.append(r.url))
    open_video(page, world, daphne_server, video)
    label = world.demo.label

    # The timeline knows the clip: six frames, the first one shown (the square at its start).
    expect(page.get_by_test_id("timeline-count")).to_contain_text(f"of {FRAMES} frames")
    expect(page.get_by_test_id("timeline-scrubber")).to_have_attribute("max", str(FRAMES - 1))
    shows(page, 0)
    x0, y0 = square_at(0)
    x1, y1 = square_at(1)
    assert brightness_at(page, x0 + 4, y0 + 8) > 180
    assert brightness_at(page, x1 + SIDE - 2, y1 + 8) < 60  # where the square is one frame on: dark yet

    # → moves one frame: its picture is drawn (the square moved on).
    page.keyboard.press("ArrowRight")
    shows(page, 1)
    assert brightness_at(page, x1 + SIDE - 2, y1 + 8) > 180
    assert brightness_at(page, x0 + 4, y0 + 8) < 60
    # The frame input jumps; Shift+→ goes 10 on (to the last frame); Home back to the first.
    frame_input = page.get_by_test_id("timeline-frame")
    frame_input.fill("4")
    frame_input.press("Enter")
    shows(page, 4)
    frame_input.blur()
    page.keyboard.press("Shift+ArrowRight")
    shows(page, FRAMES - 1)
    page.keyboard.press("Home")
    shows(page, 0)
    # The scrubber too.
    page.get_by_test_id("timeline-scrubber").fill("2")
    shows(page, 2)
    page.keyboard.press("Home")
    shows(page, 0)

    # Play goes through every frame in order, then stops on the last one.
    page.evaluate("window.__frames = []")
    page.get_by_test_id("timeline-play").click()
    wait_until(lambda: page.evaluate(f"{STUDIO}.then((s) => !s.video.playing)"), "the end of playback")
    shows(page, FRAMES - 1)
    assert page.evaluate("window.__frames") == list(range(1, FRAMES))

    # A box on frame 0: saved with frame 0 and a new track; the strip and the track view mark it.
    page.keyboard.press("Home")
    shows(page, 0)
    page.keyboard.press("r")
    drag(page, [(x0, y0), (x0 + SIDE, y0 + SIDE)])
    idle(page)
    [first] = stored(video)
    assert (first.frame, first.track, first.label_id, first.drawn["box"]) == (
        0,
        1,
        label.pk,
        [x0, y0, x0 + SIDE, y0 + SIDE],
    )
    wait_until(lambda: strip_frames(page, "1") == "0", "the strip marking frame 0 of track 1")
    expect(page.get_by_test_id("track-list").locator('.track-card[data-track="1"]')).to_have_attribute(
        "data-frames", "0"
    )
    expect(page.get_by_test_id("object-count")).to_have_text("1")
    expect(page.get_by_test_id("timeline-track")).to_have_text("New objects join track 1")

    # Two frames on, the box is not there; one drawn there continues the selected track.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    shows(page, 2)
    expect(page.get_by_test_id("object-count")).to_have_text("0")
    x2, y2 = square_at(2)
    drag(page, [(x2, y2), (x2 + SIDE, y2 + SIDE)])
    idle(page)
    first_again, second = stored(video)
    assert first_again.pk == first.pk
    assert (second.frame, second.track) == (2, 1)
    wait_until(lambda: strip_frames(page, "1") == "0,2", "the strip marking frames 0 and 2")
    expect(page.get_by_test_id("track-list").locator('.track-card[data-track="1"]')).to_have_attribute(
        "data-frames", "0,2"
    )
    # Esc lets go of the track: the next box starts track 2.
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("timeline-track")).to_have_text("New objects start a track")
    drag(page, [(60, 4), (80, 14)])
    idle(page)
    assert [(a.frame, a.track) for a in stored(video)] == [(0, 1), (2, 1), (2, 2)]
    wait_until(lambda: strip_frames(page, "2") == "2", "the strip's row of track 2")

    # Someone else adds an object on frame 4 (over REST), then deletes it: the socket tells the
    # page, and the strip follows.
    created = rest(page, "POST", "", {"label": label.pk, "rle": box_rle(*square_at(4)), "frame": 4, "track": 1})
    wait_until(lambda: strip_frames(page, "1") == "0,2,4", "frame 4 on the strip, from the socket")
    rest(page, "DELETE", f"{created['id']}/?version={created['version']}", None)
    wait_until(lambda: strip_frames(page, "1") == "0,2", "frame 4 gone from the strip, from the socket")

    # Playing: frames with objects come as the server's previews, the others as plain frames.
    page.keyboard.press("Home")
    shows(page, 0)
    requests.clear()
    page.keyboard.press("Space")
    wait_until(
        lambda: page.evaluate(f"{STUDIO}.then((s) => s.video.frame === {FRAMES - 1} && !s.video.playing)"), "playback"
    )
    previews = sorted({int(url.split("/frames/")[1].split("/")[0]) for url in requests if "/preview.jpg" in url})
    assert previews == [0, 2]
    # Paused again: the last frame's own picture, with masks from RLE.
    shows(page, FRAMES - 1)
    assert page.evaluate(f"{STUDIO}.then((s) => s.masks.suspended)") is False

    assert page.evaluate("window.__cspViolations") == []
    assert errors == []


# --- the test: upload, click, propagate, correct, propagate again, export ---------------------


@pytest.fixture
def job_worker(daphne_server: str, daphne_env: dict[str, str], tmp_path: Path) -> Iterator[Path]:
    """``manage.py db_worker`` beside the test's daphne; yields its log."""
    log = tmp_path / "db_worker.log"
    with db_worker(server_environment(daphne_env), log):
        yield log


def upload_from_project_page(page: Any, base: str, project: Project, clip: Path) -> MediaItem:
    """The manager chooses the clip in the project page's drop zone; the gallery shows it ready."""
    sign_in(page, base, "manager")
    page.get_by_role("link", name=project.name, exact=True).first.click()
    page.wait_for_url(re.compile(rf"/projects/{project.pk}/$"))
    page.wait_for_load_state("load")  # upload.js is a deferred script
    with page.expect_file_chooser() as chooser:
        page.locator("#dropzone").get_by_text("choose files").click()
    chooser.value.set_files(str(clip))
    expect(page.locator("#upload-summary")).to_have_text("1 of 1 file · 1 stored")
    tile = page.locator("#gallery li", has_text=clip.name)
    # Ready: the badge has no state after the frame count (a clip being extracted says "processing").
    expect(tile.get_by_test_id("video-badge")).to_have_text(f"video · {FRAMES} frames")
    item = in_own_thread(lambda: MediaItem.objects.get(project=project, original_name=clip.name))
    assert (item.kind, item.state, item.frame_count, item.width, item.height) == ("video", "ready", FRAMES, W, H)
    return item


def open_in_studio_from_gallery(page: Any, clip: Path) -> None:
    """The clip selected in the gallery becomes a task of its own, opened in the studio."""
    page.get_by_label(f"Select {clip.name}").check()
    page.get_by_role("button", name="Make a task of the selection").click()
    made = page.locator(".messages").get_by_text(re.compile(r"^Made .+ from the selection\.$"))
    task_name = re.match(r"Made (.+) from the selection\.", made.inner_text()).group(1)
    page.get_by_test_id("task-table").get_by_role("link", name=task_name, exact=True).click()
    page.get_by_role("link", name="Open in the studio").click()
    page.wait_for_url(re.compile(r"/studio/$"))
    live(page)
    expect(page.get_by_test_id("studio-status")).to_have_text("All changes saved")
    page.evaluate(
        f"""{STUDIO}.then((s) => {{
          window.__frames = [];
          s.video.addEventListener("frame", () => window.__frames.push(s.video.frame));
          s.store.transport.onEvent((m) => {{
            if (m.type === "video_frame") (window.__videoFrames ||= []).push(m.frame);
            if (m.type === "run") (window.__runs ||= []).push(m.state);
          }});
        }})"""
    )


def propagate_forward(page: Any, what: str) -> None:
    page.evaluate("window.__frames = []; window.__videoFrames = []; window.__runs = []")
    page.get_by_test_id("propagate-forward").click()
    wait_until(lambda: page.evaluate("window.__runs")[-1:] == ["succeeded"], what, 120)


def export_youtube_vis(page: Any, base: str, project: Project, worker_log: Path) -> dict[str, Any]:
    """YouTube-VIS from the project page's Export form; the job's page offers the file once the
    worker is done with it. Returns the downloaded file, parsed."""
    page.goto(f"{base}/o/demo-lab/projects/{project.pk}/")
    export = page.get_by_test_id("export")
    export.locator("summary").click()
    export.get_by_label("Format").select_option("youtube-vis")
    export.get_by_role("button", name="Export").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    badge = page.locator("#job-status [data-job-state]")

    def finished() -> str | None:
        state = badge.get_attribute("data-state")
        return state if state not in ("queued", "running") else None

    state = wait_until(finished, "the export job to finish", 120)
    assert state == "succeeded", f"{page.locator('#job-status').inner_text()}\n{worker_log.read_text()[-3000:]}"
    with page.expect_download() as download:
        page.get_by_test_id("job-result").click()
    assert download.value.suggested_filename.endswith(".json")
    return json.loads(Path(download.value.path()).read_text())


def check_export(data: dict[str, Any], item: MediaItem, track: int) -> None:
    """What a loader checks, then the file against the stored masks: one video of the clip's
    length, one track, each frame's segmentation the stored mask of that frame (null where none)."""
    assert check_youtube_vis(data) == []
    [video] = data["videos"]
    assert (video["id"], video["length"], video["width"], video["height"]) == (item.pk, FRAMES, W, H)
    assert len(video["file_names"]) == FRAMES
    [entry] = data["annotations"]
    assert (entry["video_id"], entry["track"], entry["length"]) == (item.pk, track, FRAMES)
    masks = {a.frame: a.rle for a in stored(item) if a.track == track}
    for frame, segmentation in enumerate(entry["segmentations"]):
        if frame not in masks:
            assert segmentation is entry["bboxes"][frame] is entry["areas"][frame] is None, frame
            continue
        assert segmentation["size"] == [H, W]
        assert np.array_equal(mask_decode(segmentation), mask_decode(masks[frame])), frame
        assert entry["areas"][frame] == int(mask_decode(masks[frame]).sum())


def test_it_takes_an_uploaded_clip_through_propagation_a_correction_and_a_youtube_vis_export(
    world: Any, videos_project: Project, clip: Path, daphne_server: str, job_worker: Path, page: Any
) -> None:
    errors = watch(page)
    video = upload_from_project_page(page, daphne_server, videos_project, clip)
    open_in_studio_from_gallery(page, clip)
    shows(page, 0)
    # A click on the square with the smart tool (the optical-flow fallback: GrabCut on this frame).
    expect(page.get_by_test_id("smart-model")).to_have_value("optical-flow")
    page.keyboard.press("s")
    x0, y0 = square_at(0)
    page.mouse.click(*at(page, x0 + SIDE / 2, y0 + SIDE / 2))
    wait_until(lambda: [(a.frame, a.source) for a in stored(video)] == [(0, "model")], "the clicked object", 60)
    page.keyboard.press("Escape")
    [clicked] = stored(video)
    track = clicked.track
    assert track is not None

    # Forward from frame 0: each frame's mask arrives, in order, and the playhead follows it.
    expect(page.get_by_test_id("propagate-model")).to_have_value("optical-flow")
    propagate_forward(page, "the run's end")
    # The start frame first (its mask from the prompt), then each later one as it is made.
    assert page.evaluate("window.__videoFrames") == list(range(FRAMES))
    assert page.evaluate("window.__frames") == list(range(1, FRAMES))  # "Follow" took the playhead along
    wait_until(lambda: strip_frames(page, str(track)) == ",".join(map(str, range(FRAMES))), "every frame on the strip")
    shows(page, FRAMES - 1)
    expect(page.get_by_test_id("propagate-state")).to_contain_text("Done")
    assert [(a.frame, a.track) for a in stored(video)] == [(f, track) for f in range(FRAMES)]

    # A correction on frame 3 (the mask there selected and painted over with the brush), then
    # forward again from there: frames 4 and 5 are made again, the earlier ones stay.
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    shows(page, 3)
    before = {a.frame: a.version for a in stored(video)}
    x3, y3 = square_at(3)
    page.keyboard.press("v")
    page.mouse.click(*at(page, x3 + SIDE / 2, y3 + SIDE / 2))
    page.keyboard.press("b")
    drag(page, [(x3 + SIDE / 2, y3 + SIDE / 2), (x3 + SIDE + 6, y3 + SIDE / 2)])
    idle(page)
    corrected = {a.frame: a.version for a in stored(video)}
    assert corrected[3] == before[3] + 1
    correction = stored(video)[3].rle
    propagate_forward(page, "the second run's end")
    # The run starts on the corrected frame (its mask kept as the seed) and carries it on.
    assert page.evaluate("window.__videoFrames") == list(range(3, FRAMES))
    after = {a.frame: a.version for a in stored(video)}
    assert all(after[f] > before[f] for f in range(4, FRAMES))
    assert all(after[f] == corrected[f] for f in range(3))
    kept = stored(video)[3].rle
    assert np.array_equal(decode(kept), decode(correction)), (kept, correction)

    # The object is taken off the last frame (selected, Delete): the export has null there.
    shows(page, FRAMES - 1)
    xl, yl = square_at(FRAMES - 1)
    page.keyboard.press("v")
    page.mouse.click(*at(page, xl + SIDE / 2, yl + SIDE / 2))
    page.keyboard.press("Delete")
    idle(page)
    assert [a.frame for a in stored(video)] == list(range(FRAMES - 1))
    wait_until(lambda: strip_frames(page, str(track)) == ",".join(map(str, range(FRAMES - 1))), "the strip without it")
    assert page.evaluate("window.__cspViolations") == []

    check_export(export_youtube_vis(page, daphne_server, videos_project, job_worker), video, track)
    assert page.evaluate("window.__cspViolations") == []
    assert errors == []
