"""Video propagation over the studio socket, end to end: a click on frame 0 and a forward run give,
frame by frame, the masks of sam2's own video predictor driven in this process on the same frames
and click; each frame is on the socket before the next one is computed; Stop ends a run with its
frames kept; a worker killed mid-run gives the client a failed run, its frames are kept, and the run
goes on from its last done frame on the other worker until the video is done.

Modes as for image prompts: ``inline`` (the web process's threads), ``worker`` (an inference worker
in this process) and, when REDIS_URL names a server, two ``manage.py inference_worker`` processes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from channels.db import database_sync_to_async
from sam2.build_sam import build_sam2_video_predictor

from annotation.masks import mask_decode
from annotation.models import Annotation, MediaItem, Project
from annotation.video_services import media_create_video, video_frames_local_dir
from inference import dispatch, registry
from inference.video import runs
from platform_core.models import Job
from tests.annotation.test_video_files import make_clip
from tests.inference.test_prompt_protocol import (
    inference_running,
    open_studio,
    redis_layer_config,
    worker_processes,  # noqa: F401 - the inference_worker processes, a fixture
)

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),  # inside sam2
]

FRAMES = 4
CLICK = [20, 20]
WAIT_S = 300  # a frame of SAM 2 on a busy CPU takes seconds; nothing waits this long unless it must


@pytest.fixture
def video_mode(
    request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch, sam2_checkpoint_dir: Path
) -> str:
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir
    settings.INFERENCE_DEVICE = "cpu"
    settings.INFERENCE_TIMEOUT_SECONDS = WAIT_S
    monkeypatch.setattr(runs, "_states", None)  # this test's own warm states
    dispatch.worker_routes().clear()
    mode = request.param
    if mode == "redis":
        workers = request.getfixturevalue("worker_processes")
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": redis_layer_config(workers.redis_url),
            }
        }
        workers.ensure_running()
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.INFERENCE_MODE = "inline" if mode == "inline" else "worker"
    yield mode
    dispatch.worker_routes().clear()


def _video(world: Any, frames: int) -> MediaItem:
    project = world.demo.project
    Project.objects.filter(pk=project.pk).update(media_type=Project.MediaType.BOTH)
    project.refresh_from_db()
    item = media_create_video(
        project=project, name="clip.mp4", data=make_clip(frames=frames), uploaded_by=world.manager
    )
    item.task = world.demo.task
    item.save(update_fields=["task"])
    return item


async def video_item(world: Any, frames: int = FRAMES) -> MediaItem:
    return await database_sync_to_async(_video)(world, frames)


def raw_masks(checkpoints: Path, video: MediaItem) -> dict[int, np.ndarray]:
    """sam2's own video predictor on the stored frames, one click on frame 0, propagated forward."""
    spec = registry.MODELS["tiny"]
    predictor = build_sam2_video_predictor(spec.config, str(checkpoints / spec.checkpoint), device="cpu")
    predictor.fill_hole_area = 0
    state = predictor.init_state(str(video_frames_local_dir(video)))
    predictor.add_new_points_or_box(
        state, frame_idx=0, obj_id=1, points=np.array([CLICK], np.float32), labels=np.array([1], np.int32)
    )
    return {frame: (logits[0, 0] > 0).numpy() for frame, _, logits in predictor.propagate_in_video(state, 0)}


async def until(ws: Any, done: Any, *, log: list[tuple[float, dict]]) -> dict[str, Any]:
    """Receive frames (kept with their arrival time) until one satisfies ``done``; return it."""
    while True:
        message = await ws.receive_json_from(timeout=WAIT_S)
        log.append((time.time(), message))
        if done(message):
            return message


def click_and_propagate(world: Any) -> list[dict[str, Any]]:
    label = world.demo.label.pk
    return [
        {
            "type": "video_prompt",
            "request_id": "p",
            "model": "tiny",
            "frame": 0,
            "label_id": label,
            "points": [[*CLICK, 1]],
        },
        {"type": "propagate", "request_id": "r", "model": "tiny", "frame": 0, "direction": "forward"},
    ]


@pytest.mark.parametrize("video_mode", ["inline", "worker"], indirect=True)
async def test_propagation_streams_each_frame_of_the_raw_predictors_masks(
    world: Any, video_mode: str, sam2_checkpoint_dir: Path
) -> None:
    video = await video_item(world)
    async with inference_running(video_mode):
        ws = await open_studio(world, world.annotator, video.pk)
        prompt_message, propagate = click_and_propagate(world)
        log: list[tuple[float, dict]] = []
        await ws.send_json_to(prompt_message)
        mask = await until(ws, lambda m: m.get("request_id") == "p", log=log)
        assert (mask["type"], mask["frame"], mask["track"]) == ("mask", 0, 1), mask
        await ws.send_json_to(propagate)
        queued = await until(ws, lambda m: m.get("request_id") == "r", log=log)
        assert (queued["type"], queued["state"], queued["total"]) == ("run", "queued", FRAMES), queued
        end = await until(ws, lambda m: m["type"] == "run" and m["state"] not in ("queued", "running"), log=log)
        await ws.disconnect()
    assert (end["state"], end["done"], end["last_done"]) == ("succeeded", FRAMES, FRAMES - 1), end

    # One video_frame per frame, in order, each after that frame's objects.
    frames = [m for _, m in log if m["type"] == "video_frame"]
    assert [m["frame"] for m in frames] == list(range(FRAMES))
    assert [m["done"] for m in frames] == list(range(1, FRAMES + 1))
    order = [(m["type"], m.get("frame", m.get("annotation", {}).get("frame"))) for _, m in log]
    for frame in range(1, FRAMES):
        if ("annotation", frame) in order:
            assert order.index(("annotation", frame)) < order.index(("video_frame", frame))

    # Streamed: frame 1 reached the socket before frame 2 was saved (computed after it).
    stored = await database_sync_to_async(
        lambda: {a.frame: a for a in Annotation.objects.filter(media=video, track=1)}
    )()
    received = {m["frame"]: at for at, m in log if m["type"] == "video_frame"}
    if 2 in stored:
        assert datetime.fromtimestamp(received[1], UTC) < stored[2].created_at

    expected = await database_sync_to_async(raw_masks)(sam2_checkpoint_dir, video)
    assert np.array_equal(mask_decode(stored[0].rle), expected[0])
    for frame in range(1, FRAMES):
        if expected[frame].any():
            assert np.array_equal(mask_decode(stored[frame].rle), expected[frame]), frame
        else:
            assert frame not in stored


@pytest.mark.parametrize("video_mode", ["inline"], indirect=True)
async def test_stop_ends_a_run_after_its_current_frame_and_keeps_its_frames(world: Any, video_mode: str) -> None:
    video = await video_item(world, frames=6)
    ws = await open_studio(world, world.annotator, video.pk)
    prompt_message, propagate = click_and_propagate(world)
    log: list[tuple[float, dict]] = []
    await ws.send_json_to(prompt_message)
    await until(ws, lambda m: m.get("request_id") == "p", log=log)
    await ws.send_json_to(propagate)
    queued = await until(ws, lambda m: m.get("request_id") == "r", log=log)
    await until(ws, lambda m: m["type"] == "video_frame" and m["frame"] == 1, log=log)
    await ws.send_json_to({"type": "stop", "request_id": "s", "job": queued["job"]})
    end = await until(
        ws, lambda m: m["type"] == "run" and m["state"] == "cancelled" and m.get("request_id") is None, log=log
    )
    await ws.disconnect()
    assert 2 <= end["done"] < 6 and end["last_done"] == end["done"] - 1
    kept = await database_sync_to_async(
        lambda: sorted(
            Annotation.objects.filter(media=video, source_detail__run=queued["job"]).values_list("frame", flat=True)
        )
    )()
    assert kept and max(kept) <= end["last_done"]


@pytest.mark.parametrize("video_mode", ["inline"], indirect=True)
async def test_bad_runs_and_stops_get_error_frames(world: Any, video_mode: str) -> None:
    video = await video_item(world, frames=2)
    ws = await open_studio(world, world.annotator, video.pk)
    for message, code in [
        ({"type": "propagate", "model": "tiny", "frame": 0, "direction": "up"}, "bad_direction"),
        ({"type": "propagate", "model": "tiny", "frame": 2}, "bad_frame"),
        ({"type": "propagate", "model": "nope", "frame": 0}, "unknown_model"),
        ({"type": "stop", "job": 999_999}, "not_found"),
        ({"type": "stop", "job": "1"}, "invalid"),
        ({"type": "video_prompt", "model": "tiny", "frame": 0, "points": [[1, 1, 1]]}, "bad_prompt"),
    ]:
        await ws.send_json_to({**message, "request_id": code})
        reply = await ws.receive_json_from(timeout=30)
        assert (reply["type"], reply["code"], reply["request_id"]) == ("error", code, code), reply
    # A run with nothing to start from fails with the reason.
    await ws.send_json_to({"type": "propagate", "request_id": "empty", "model": "optical-flow", "frame": 0})
    log: list[tuple[float, dict]] = []
    end = await until(ws, lambda m: m["type"] == "run" and m["state"] == "failed", log=log)
    assert "nothing to propagate" in end["message"]
    await ws.disconnect()
    assert not await database_sync_to_async(lambda: Annotation.objects.filter(media=video).exists())()


@pytest.mark.parametrize("video_mode", ["redis"], indirect=True)
async def test_a_worker_killed_mid_run_fails_it_and_the_run_resumes_elsewhere(
    world: Any, video_mode: str, settings: Any, request: pytest.FixtureRequest
) -> None:
    workers = request.getfixturevalue("worker_processes")
    settings.INFERENCE_TIMEOUT_SECONDS = 20  # a frame takes seconds: twenty silent ones mean the worker is gone
    video = await video_item(world, frames=5)
    ws = await open_studio(world, world.annotator, video.pk)
    prompt_message, propagate = click_and_propagate(world)
    log: list[tuple[float, dict]] = []
    await ws.send_json_to(prompt_message)
    mask = await until(ws, lambda m: m.get("request_id") == "p", log=log)
    assert mask["type"] == "mask", mask
    await ws.send_json_to(propagate)
    queued = await until(ws, lambda m: m.get("request_id") == "r", log=log)
    await until(ws, lambda m: m["type"] == "video_frame" and m["frame"] == 1, log=log)

    # The worker holding the video is the one running the run: kill it.
    route = dispatch.worker_routes().get(video.pk, "tiny")
    victim = route.rsplit(".", 1)[-1] if route else None
    running = victim or next(w for w in workers.ids if workers.alive(w))
    workers.kill(running)

    failed = await until(
        ws, lambda m: m["type"] == "run" and m["job"] == queued["job"] and m["state"] == "failed", log=log
    )
    assert "stopped answering" in failed["message"] and failed["last_done"] is not None
    resumed = await until(
        ws, lambda m: m["type"] == "run" and m["job"] != queued["job"] and m["state"] == "succeeded", log=log
    )
    await ws.disconnect()
    assert resumed["last_done"] == 4
    jobs = await database_sync_to_async(lambda: {j.pk: j for j in Job.objects.filter(kind=runs.RUN_KIND)})()
    assert jobs[resumed["job"]].params["resume_of"] == queued["job"]
    assert jobs[queued["job"]].state == "failed"
    # Between them, the two runs did every frame once: the first up to where its worker died, the
    # second from its last done frame to the end.
    first, second = jobs[queued["job"]].report["done"], jobs[resumed["job"]].report["done"]
    assert first and second[0] == first[-1] and sorted({*first, *second}) == list(range(5))
    workers.ensure_running()
