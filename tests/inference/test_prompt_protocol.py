"""Prompts on the studio socket, end to end: the mask that comes back over the websocket is the one
``SAM2ImagePredictor`` returns in-process for the same prompt, saved at once through the annotation
services; later prompts on the item reuse its embedding; bad prompts get error frames with the socket
still open; a worker that does not answer gets the client ``inference_timeout``, and the next prompt
goes to another worker.

The same protocol tests run in each mode: ``inline`` (the web process's thread pool), ``worker``
(an ``InferenceWorker`` in this process over the in-memory channel layer), and, when REDIS_URL names
a server, ``redis``: two ``manage.py inference_worker`` processes over the real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from PIL import Image
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

from annotation.masks import mask_decode
from annotation.media_services import media_create_image
from annotation.models import Annotation, MediaItem
from inference import dispatch, prompting, segmentation
from inference.embedding_cache import EmbeddingCache
from inference.loading import ModelLoader
from inference.segmentation import SegmentationService
from inference.worker import InferenceWorker
from platform_core.websockets import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED
from tests.factories import LabelFactory
from tests.platform_core.test_websockets import communicator, session_cookie

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning"),  # inside sam2
]

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
REPLY_S = 180  # a generous bound for an encode on a busy CPU; nothing here waits for it unless it must
CHANNEL_PREFIX = "annotation-tests"  # as tests/platform_core/test_websockets.py's Redis layer
MODES = ["inline", "worker", "redis"]


# --- the model, the reference, the item ------------------------------------------------------


@pytest.fixture(scope="module")
def prompt_service(sam2_checkpoint_dir: Path) -> SegmentationService:
    loader = ModelLoader(checkpoint_dir=sam2_checkpoint_dir, device="cpu", publish=False)
    return SegmentationService(loader=loader, cache=EmbeddingCache(budget_bytes=256 * MIB))


@pytest.fixture(scope="module")
def raw(sam2_checkpoint_dir: Path, photo: np.ndarray) -> SAM2ImagePredictor:
    """The reference: the package's own predictor on the same checkpoint, the photograph set."""
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", str(sam2_checkpoint_dir / "sam2.1_hiera_tiny.pt"), "cpu")
    predictor = SAM2ImagePredictor(model)
    predictor.set_image(photo)
    return predictor


@pytest.fixture
def inference(
    settings: Any, monkeypatch: pytest.MonkeyPatch, prompt_service: SegmentationService, sam2_checkpoint_dir: Path
) -> SegmentationService:
    """This process's inference: the module's service and fresh object logits and worker routes."""
    settings.SAM2_CHECKPOINT_DIR = sam2_checkpoint_dir
    settings.INFERENCE_TIMEOUT_SECONDS = REPLY_S
    monkeypatch.setattr(segmentation, "_default", prompt_service)
    monkeypatch.setattr(prompting, "_logits", prompting.ObjectLogits())
    dispatch.worker_routes().clear()
    yield prompt_service
    dispatch.worker_routes().clear()


@pytest.fixture
def set_image_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the real ``SAM2ImagePredictor.set_image`` in this process, which still runs."""
    calls: list[int] = []
    real = SAM2ImagePredictor.set_image

    def counting(self: SAM2ImagePredictor, image: Any) -> None:
        calls.append(1)
        real(self, image)

    monkeypatch.setattr(SAM2ImagePredictor, "set_image", counting)
    return calls


def _photo_item(world: Any, photo: np.ndarray) -> MediaItem:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    item = media_create_image(project=world.demo.project, name="coffee.png", data=buffer.getvalue())
    item.task = world.demo.task  # the annotator's task, so the annotator may work on it
    item.save(update_fields=["task"])
    return item


async def photo_item(world: Any, photo: np.ndarray) -> MediaItem:
    return await database_sync_to_async(_photo_item)(world, photo)


async def open_studio(world: Any, user: Any, media_id: int) -> Any:
    cookie = await database_sync_to_async(session_cookie)(user)
    ws = communicator("", cookie=cookie, path=f"/ws/o/{world.demo.org.slug}/studio/{media_id}/")
    connected, code = await ws.connect(timeout=10)
    assert connected, code
    return ws


async def ask(ws: Any, message: dict[str, Any], timeout: float = REPLY_S) -> dict[str, Any]:
    await ws.send_json_to(message)
    return await ws.receive_json_from(timeout=timeout)


def prompt(world: Any, request_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "prompt",
        "request_id": request_id,
        "model": "tiny",
        "label_id": world.demo.label.pk,
        "object_id": None,
        "points": [[300, 160, 1]],
        "box": None,
        **fields,
    }


def reference(raw: SAM2ImagePredictor, points: list, **kwargs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coords = np.array([p[:2] for p in points], dtype=np.float32)
    labels = np.array([p[2] for p in points], dtype=np.int32)
    return raw.predict(point_coords=coords, point_labels=labels, **kwargs)


# --- the modes -------------------------------------------------------------------------------


def _test_database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def redis_layer_config(redis_url: str) -> dict[str, Any]:
    # As platform_core/settings.py configures it: sockets here wait longer than 5 s for replies.
    return {"hosts": [{"address": redis_url, "socket_timeout": 15}], "prefix": CHANNEL_PREFIX}


class WorkerProcesses:
    """``manage.py inference_worker`` processes against the test database, the test media folder
    and Redis; started on first use, started again when a test killed one."""

    def __init__(self, checkpoint_dir: Path, redis_url: str, ids: tuple[str, ...] = ("alpha", "beta")) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.redis_url = redis_url
        self.ids = ids
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, list[str]] = {}

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "platform_core.settings",
            "SECRET_KEY": "tests-only-not-a-secret",
            "DATABASE_URL": _test_database_url(),
            "DATA_DIR": os.environ["DATA_DIR"],  # tests/settings.py's folder: the same media files
            "REDIS_URL": self.redis_url,
            "CHANNEL_PREFIX": CHANNEL_PREFIX,
            "SAM2_CHECKPOINT_DIR": str(self.checkpoint_dir),
            "INFERENCE_DEVICE": "cpu",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }

    def ensure_running(self) -> None:
        starting = [worker_id for worker_id in self.ids if not self.alive(worker_id)]
        for worker_id in starting:
            self.processes[worker_id] = subprocess.Popen(  # noqa: S603 - our own manage.py
                [sys.executable, "manage.py", "inference_worker", "--id", worker_id, "--preload", "tiny"],
                cwd=ROOT,
                env=self._env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            self.logs[worker_id] = []
        for worker_id in starting:
            self._wait_ready(worker_id)

    def _wait_ready(self, worker_id: str) -> None:
        process, log = self.processes[worker_id], self.logs[worker_id]
        ready = threading.Event()

        def read() -> None:
            for line in process.stdout:
                log.append(line)
                if "listening on" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout=240):
            process.kill()
            raise AssertionError(f"inference_worker {worker_id} did not start:\n{''.join(log)}")

    def alive(self, worker_id: str) -> bool:
        process = self.processes.get(worker_id)
        return process is not None and process.poll() is None

    def kill(self, worker_id: str) -> None:
        self.processes[worker_id].send_signal(signal.SIGKILL)
        self.processes[worker_id].wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for_other_connections_to_end(timeout: float = 20) -> None:
    """PostgreSQL ends a killed worker's server process a little after the worker is gone; the test
    database can only be dropped once it has."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.2)
    connection.close()


@pytest.fixture(scope="module")
def worker_processes(
    sam2_checkpoint_dir: Path, django_db_setup: None, django_db_blocker: Any
) -> Iterator[WorkerProcesses]:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("REDIS_URL is not set: the Redis pass of .ci/run runs the inference_worker processes")
    workers = WorkerProcesses(sam2_checkpoint_dir, redis_url)
    yield workers
    workers.stop_all()
    with django_db_blocker.unblock():
        wait_for_other_connections_to_end()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, settings: Any, inference: SegmentationService) -> str:
    if request.param == "redis":
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
    settings.INFERENCE_MODE = "inline" if request.param == "inline" else "worker"
    return request.param


@contextlib.asynccontextmanager
async def inference_running(mode: str, worker_id: str = "local") -> AsyncIterator[InferenceWorker | None]:
    """For ``worker`` mode, an inference worker serving in this process while the block runs."""
    if mode != "worker":
        yield None
        return
    worker = InferenceWorker(channel_layer=get_channel_layer(), worker_id=worker_id)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(worker.serve(stop))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)
        worker.close()


# --- the protocol, in every mode ---------------------------------------------------------------


async def test_it_sends_the_predictors_mask_saves_it_and_refines_it_on_the_warm_embedding(
    world: Any, mode: str, raw: SAM2ImagePredictor, photo: np.ndarray, set_image_calls: list[int]
) -> None:
    item = await photo_item(world, photo)
    async with inference_running(mode):
        mine = await open_studio(world, world.annotator, item.pk)
        theirs = await open_studio(world, world.reviewer, item.pk)

        first = await ask(mine, prompt(world, "r1"))
        assert first["type"] == "mask", first
        masks, scores, low_res = reference(raw, [[300, 160, 1]], multimask_output=True)
        best = int(np.argmax(scores))
        assert np.array_equal(mask_decode(first["rle"]), masks[best].astype(bool))
        assert first["score"] == float(scores[best])
        assert (first["request_id"], first["version"], first["model"]) == ("r1", 1, "tiny")
        assert set(first["timings"]) == {"queue_ms", "encode_ms", "decode_ms", "total_ms"}
        assert first["timings"]["encode_ms"] > 0 and first["timings"]["decode_ms"] > 0
        assert first["timings"]["total_ms"] >= first["timings"]["encode_ms"] + first["timings"]["decode_ms"]
        assert first["untrained"] is True

        stored = await database_sync_to_async(Annotation.objects.get)(pk=first["object_id"])
        assert (stored.media_id, stored.label_id, stored.version, stored.author_id) == (
            item.pk,
            world.demo.label.pk,
            1,
            world.annotator.pk,
        )
        assert stored.source == Annotation.Source.MODEL
        assert stored.source_detail == {
            "model": "tiny",
            "score": round(float(scores[best]), 4),
            "prompts": [{"points": [[300, 160, 1]], "box": None}],
        }
        assert stored.drawn == {"tool": "smart", "model": "tiny", "points": [[300, 160, 1]], "box": None}
        assert (stored.rle, stored.bbox, stored.z_order) == (first["rle"], first["bbox"], first["z_order"])
        assert first["drawn"] == stored.drawn and first["answers"] == stored.answers
        # Saved for everyone on the item; the socket that prompted hears it once, in the reply.
        pushed = await theirs.receive_json_from(timeout=10)
        assert pushed["type"] == "annotation"
        assert (pushed["annotation"]["id"], pushed["annotation"]["rle"]) == (first["object_id"], first["rle"])

        # Refining: the object's previous logits go back in as the mask input; no new encode.
        points = [[300, 160, 1], [330, 200, 0]]
        second = await ask(mine, prompt(world, "r2", object_id=first["object_id"], label_id=None, points=points))
        assert second["type"] == "mask", second
        masks, scores, _ = reference(raw, points, mask_input=low_res[best : best + 1], multimask_output=False)
        assert np.array_equal(mask_decode(second["rle"]), masks[0].astype(bool))
        assert second["score"] == float(scores[0])
        assert (second["object_id"], second["version"]) == (first["object_id"], 2)
        assert second["timings"]["encode_ms"] == 0
        stored = await database_sync_to_async(Annotation.objects.get)(pk=first["object_id"])
        assert stored.version == 2
        assert [step["points"] for step in stored.source_detail["prompts"]] == [[[300, 160, 1]], points]
        assert stored.drawn["points"] == points

        # Every candidate, when asked for; the best one is the object saved.
        third = await ask(mine, prompt(world, "r3", points=[[250, 120, 1]], all_masks=True))
        masks, scores, _ = reference(raw, [[250, 120, 1]], multimask_output=True)
        assert [candidate["score"] for candidate in third["candidates"]] == [float(s) for s in scores]
        for candidate, mask in zip(third["candidates"], masks, strict=True):
            assert np.array_equal(mask_decode(candidate["rle"]), mask.astype(bool))
        assert third["rle"] == third["candidates"][int(np.argmax(scores))]["rle"]
        assert third["object_id"] != first["object_id"] and third["timings"]["encode_ms"] == 0

        if mode != "redis":  # the workers of the Redis mode are other processes
            assert len(set_image_calls) == 1
        assert await mine.receive_nothing(timeout=0.2)
        await mine.disconnect()
        await theirs.disconnect()


async def test_it_answers_foreign_ids_and_missing_models_from_where_inference_runs(
    world: Any, mode: str, photo: np.ndarray
) -> None:
    item = await photo_item(world, photo)
    foreign_label = await database_sync_to_async(lambda: LabelFactory(project=world.other.project).pk)()
    async with inference_running(mode):
        ws = await open_studio(world, world.annotator, item.pk)
        cases = [
            (prompt(world, "a", object_id=world.other.annotation.pk), "not_found"),
            (prompt(world, "b", object_id=world.demo.annotation.pk), "not_found"),  # another item's object
            (prompt(world, "c", label_id=foreign_label), "invalid"),
            (prompt(world, "d", model="small"), "model_unavailable"),  # no checkpoint for it
        ]
        for message, code in cases:
            reply = await ask(ws, message)
            assert (reply["type"], reply["code"], reply["request_id"]) == ("error", code, message["request_id"]), reply
        count = await database_sync_to_async(Annotation.objects.filter(media=item).count)()
        assert count == 0
        await ws.disconnect()


# --- errors found at the door (no model involved) --------------------------------------------


BAD_PROMPTS = [  # on the world's 64 × 48 image
    ({"points": [[65, 10, 1]]}, "point_outside_image"),
    ({"points": [[10, -1, 1]]}, "point_outside_image"),
    ({"points": None, "box": [0, 0, 65, 10]}, "box_outside_image"),
    ({"points": [[10, 10, 2]]}, "bad_label"),
    ({"points": "10,10,1"}, "bad_points"),
    ({"points": [[10, 10]]}, "bad_point"),
    ({"points": [], "box": None}, "no_prompt"),
    ({"model": "huge"}, "unknown_model"),
    ({"model": None}, "unknown_model"),
    ({"label_id": None}, "bad_prompt"),
    ({"label_id": "3"}, "bad_prompt"),
    ({"object_id": True}, "bad_prompt"),
    ({"version": 1}, "bad_prompt"),
    ({"all_masks": "yes"}, "bad_prompt"),
]


@pytest.mark.parametrize(
    ("fields", "code"), BAD_PROMPTS, ids=[f"{code}-{i}" for i, (_, code) in enumerate(BAD_PROMPTS)]
)
async def test_it_answers_a_bad_prompt_with_its_error_and_stays_open(
    world: Any, inference: SegmentationService, fields: dict, code: str
) -> None:
    lookups = {key: inference.cache.stats()[key] for key in ("hits", "misses")}
    ws = await open_studio(world, world.annotator, world.demo.media.pk)
    reply = await ask(ws, prompt(world, "bad", **{"points": [[10, 10, 1]], **fields}), timeout=10)
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", code, "bad"), reply
    assert reply["message"]
    await ws.send_to(text_data='{"type": "prompt", "points": [[1, 2, 1]')
    assert (await ws.receive_json_from(timeout=10))["code"] == "bad_json"
    assert (await ask(ws, {"type": "list"}, timeout=10))["type"] == "annotations"  # still open
    # Refused at the door: nothing reached a model.
    assert {key: inference.cache.stats()[key] for key in ("hits", "misses")} == lookups
    await ws.disconnect()


async def test_it_answers_an_oversized_prompt_with_too_large_and_stays_open(
    world: Any, settings: Any, inference: SegmentationService
) -> None:
    settings.WS_MAX_MESSAGE_BYTES = 4096
    lookups = {key: inference.cache.stats()[key] for key in ("hits", "misses")}
    ws = await open_studio(world, world.annotator, world.demo.media.pk)
    reply = await ask(ws, prompt(world, "big", points=[[10, 10, 1]] * 1000), timeout=10)
    assert (reply["type"], reply["code"]) == ("error", "too_large"), reply
    assert (await ask(ws, {"type": "list"}, timeout=10))["type"] == "annotations"
    # Refused before it was read: no model saw it, nothing was saved.
    assert {key: inference.cache.stats()[key] for key in ("hits", "misses")} == lookups
    assert await database_sync_to_async(Annotation.objects.filter(media=world.demo.media).count)() == 1
    await ws.disconnect()


async def test_it_refuses_an_anonymous_studio_socket_and_another_organisations_item(world: Any) -> None:
    ws = communicator("", path=f"/ws/o/{world.demo.org.slug}/studio/{world.demo.media.pk}/")
    assert await ws.connect(timeout=10) == (False, CLOSE_UNAUTHENTICATED)
    cookie = await database_sync_to_async(session_cookie)(world.annotator)
    foreign = communicator("", cookie=cookie, path=f"/ws/o/{world.demo.org.slug}/studio/{world.other.media.pk}/")
    assert await foreign.connect(timeout=10) == (False, CLOSE_NOT_FOUND)


# --- a worker that does not answer ----------------------------------------------------------


async def test_it_gives_a_timeout_error_and_sends_the_next_prompt_to_any_worker(
    world: Any, settings: Any, inference: SegmentationService, photo: np.ndarray
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.INFERENCE_MODE = "worker"
    settings.INFERENCE_TIMEOUT_SECONDS = 1
    item = await photo_item(world, photo)
    # The item's embedding is held by a worker that has gone away.
    dispatch.worker_routes().set(item.pk, "opencv", dispatch.worker_channel("gone"))
    ws = await open_studio(world, world.annotator, item.pk)
    started = time.monotonic()
    reply = await ask(ws, prompt(world, "lost", model="opencv"), timeout=10)
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "inference_timeout", "lost")
    assert 1 <= time.monotonic() - started < 5
    assert dispatch.worker_routes().get(item.pk, "opencv") is None

    # No worker at all: the prompt waits on the shared channel and times out the same way.
    reply = await ask(ws, prompt(world, "nobody", model="opencv"), timeout=10)
    assert reply["code"] == "inference_timeout"

    settings.INFERENCE_TIMEOUT_SECONDS = REPLY_S
    async with inference_running("worker", "fresh") as worker:
        reply = await ask(ws, prompt(world, "again", model="opencv"))
        assert reply["type"] == "mask", reply
        assert reply["request_id"] == "again" and reply["fallback"] is True
        # The waiting prompt whose client had given up was skipped, not run.
        assert worker.handled == 2
        assert dispatch.worker_routes().get(item.pk, "opencv") == dispatch.worker_channel("fresh")
    assert await database_sync_to_async(Annotation.objects.filter(media=item).count)() == 1
    await ws.disconnect()


async def test_it_refuses_more_waiting_prompts_than_a_socket_may_have(
    world: Any, settings: Any, inference: SegmentationService
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.INFERENCE_MODE = "worker"  # and no worker: every prompt waits
    ws = await open_studio(world, world.annotator, world.demo.media.pk)
    for n in range(dispatch.MAX_WAITING):
        await ws.send_json_to(prompt(world, f"w{n}", model="opencv", points=[[10, 10, 1]]))
    reply = await ask(ws, prompt(world, "over", model="opencv", points=[[10, 10, 1]]), timeout=5)
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "too_many_prompts", "over")
    assert (await ask(ws, {"type": "list"}, timeout=5))["type"] == "annotations"
    await ws.disconnect()


async def test_it_moves_an_item_to_the_other_worker_when_its_worker_dies_mid_request(
    world: Any, settings: Any, inference: SegmentationService, photo: np.ndarray, request: pytest.FixtureRequest
) -> None:
    workers = request.getfixturevalue("worker_processes")
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": redis_layer_config(workers.redis_url),
        }
    }
    settings.INFERENCE_MODE = "worker"
    await asyncio.to_thread(workers.ensure_running)
    item = await photo_item(world, photo)
    dispatch.worker_routes().set(item.pk, "tiny", dispatch.worker_channel("alpha"))
    ws = await open_studio(world, world.annotator, item.pk)

    settings.INFERENCE_TIMEOUT_SECONDS = 6
    await ws.send_json_to(prompt(world, "doomed"))
    await asyncio.sleep(0.5)  # alpha is encoding the image now
    workers.kill("alpha")
    started = time.monotonic()
    reply = await ws.receive_json_from(timeout=15)
    assert (reply["type"], reply["code"], reply["request_id"]) == ("error", "inference_timeout", "doomed")
    assert time.monotonic() - started < 6

    settings.INFERENCE_TIMEOUT_SECONDS = REPLY_S
    reply = await ask(ws, prompt(world, "next"))
    assert reply["type"] == "mask", reply
    assert reply["timings"]["encode_ms"] > 0  # beta had to encode the image itself
    assert dispatch.worker_routes().get(item.pk, "tiny") == dispatch.worker_channel("beta")
    assert await database_sync_to_async(Annotation.objects.filter(media=item).count)() == 1
    await ws.disconnect()
