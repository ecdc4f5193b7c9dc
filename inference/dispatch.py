"""Where a studio prompt (or a video prompt, or a propagation run) runs, chosen by
``settings.INFERENCE_MODE``; ``request_execute`` either way.

- ``inline`` (the embedded default): a thread pool of the web process.
- ``worker``: ``manage.py inference_worker`` processes over the channel layer (Redis). The first
  prompt for an item and model goes to the shared channel ``inference``, which every worker
  consumes; the reply names the worker that ran it, and later prompts for that item go to the
  worker's own channel ``inference.<worker id>``, where the item's embedding is warm. A worker that
  does not answer within ``INFERENCE_TIMEOUT_SECONDS`` gets the client an ``inference_timeout``
  error, and the items routed to it are forgotten, so the next prompt goes to the shared channel
  and whichever worker takes it encodes the image again.

A socket's prompts run one after another, in the order they came (a refinement names the object
the prompt before it made); at most ``MAX_WAITING`` wait at once.

Which worker holds which item is remembered per web process (``WorkerRoutes``): a socket in
another web process learns it from its own first prompt, at the cost of one more encode.

Each request carries a deadline; work that reaches inference after it is skipped, since the client
has already had its timeout. A reply that arrives late anyway (the work had started) is still
handed to the socket: its object is saved, and the studio should show it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from channels.exceptions import ChannelFull
from django.conf import settings
from django.db import connections

from inference.prompting import prompt_execute
from inference.prompts import InferenceError

SHARED_CHANNEL = "inference"
REQUEST_TYPE = "inference.prompt"
REPLY_TYPE = "inference.reply"
INLINE_THREADS = 4
MAX_WAITING = 8  # a socket's prompts queued or running at once
MAX_EXPIRED = 32

logger = logging.getLogger(__name__)


def worker_channel(worker_id: str) -> str:
    return f"{SHARED_CHANNEL}.{worker_id}"


class WorkerRoutes:
    """(media id, model) → the channel of the worker holding that item's embedding."""

    def __init__(self) -> None:
        self._routes: dict[tuple[int, str], str] = {}
        self._lock = threading.Lock()

    def get(self, media_id: int, model: str) -> str | None:
        with self._lock:
            return self._routes.get((media_id, model))

    def set(self, media_id: int, model: str, channel: str) -> None:
        with self._lock:
            self._routes[(media_id, model)] = channel

    def forget_worker(self, channel: str) -> int:
        with self._lock:
            doomed = [key for key, value in self._routes.items() if value == channel]
            for key in doomed:
                del self._routes[key]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()


_routes = WorkerRoutes()
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def worker_routes() -> WorkerRoutes:
    return _routes


def inline_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=INLINE_THREADS, thread_name_prefix="inference")
        return _executor


def request_execute(request: dict[str, Any]) -> dict[str, Any] | None:
    """Run one request of any kind: a prompt on an image, a prompt on a video frame, or a
    propagation run (``request["kind"]``: ``prompt``, ``video_prompt``, ``video_run``)."""
    kind = request.get("kind", "prompt")
    if kind == "video_prompt":
        from inference.video.prompting import video_prompt_execute

        return video_prompt_execute(request)
    if kind == "video_run":
        from inference.video.runs import run_execute

        return run_execute(request)
    return prompt_execute(request)


def _execute_closing(request: dict[str, Any]) -> dict[str, Any] | None:
    # Django keeps a thread's connections in a context variable, and the call runs in a copy of the
    # caller's context: only the call itself sees the connections it opened, so it closes them.
    try:
        return request_execute(request)
    finally:
        connections.close_all()


def _closing(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``function`` in a thread of its own, its database connections closed when it returns (see
    ``_execute_closing``)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return DatabaseSyncToAsync(call, thread_sensitive=False)


def execute_in(executor: ThreadPoolExecutor) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]:
    """``request_execute`` in a thread of ``executor``, its database connections closed when it
    returns, and with what it publishes after commit sent through the caller's event loop."""
    return DatabaseSyncToAsync(_execute_closing, thread_sensitive=False, executor=executor)


def _timeout_reply(request: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "type": "error",
        "request_id": request.get("request_id"),
        "code": "inference_timeout",
        "message": f"The model did not answer within {seconds:g} s. Prompt again: it goes to another worker.",
    }


def _left(request: dict[str, Any]) -> float:
    # The deadline counts from the prompt's arrival, time waiting behind the socket's earlier
    # prompts included: the client and the worker agree on when the request is given up.
    return max(0.0, request["deadline"] - time.time())


def _finished(reply: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    if reply.get("type") == "mask":
        reply["timings"]["total_ms"] = round(max(0.0, time.time() - request["submitted_at"]) * 1000, 3)
    return reply


class PromptDispatcher:
    """One per studio socket. ``submit`` queues a prompt and returns at once; the socket's prompts
    run one after another, in order (a refinement follows the prompt before it), and each reply
    frame goes to ``send``. Workers' replies arrive on the socket's ``reply_channel`` and come back
    here through ``reply_received``."""

    def __init__(
        self,
        *,
        channel_layer: Any,
        reply_channel: str,
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self.channel_layer = channel_layer
        self.reply_channel = reply_channel
        self.send = send
        self._pending: dict[str, tuple[asyncio.Future, dict[str, Any]]] = {}
        # Requests that timed out, newest last: a reply that still comes is handed on late.
        self._expired: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._order = asyncio.Lock()
        self._waiting: set[asyncio.Task] = set()

    def submit(self, request: dict[str, Any]) -> None:
        if len(self._waiting) >= MAX_WAITING:
            raise InferenceError(
                "Wait for the masks of your earlier prompts, then prompt again.", code="too_many_prompts"
            )
        task = asyncio.ensure_future(self._answer(request))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _answer(self, request: dict[str, Any]) -> None:
        async with self._order:
            try:
                reply = await self.run(request)
            except Exception:  # the channel layer failed: the client hears of it, the socket stays
                logger.exception("Prompt %s could not be dispatched", request.get("request_id"))
                reply = {
                    "type": "error",
                    "request_id": request.get("request_id"),
                    "code": "inference_unavailable",
                    "message": "The model cannot be reached right now; try again in a moment.",
                }
        await self.send(reply)

    # --- video propagation runs ------------------------------------------------------------

    def submit_run(self, request: dict[str, Any]) -> None:
        """Start a propagation run (its job recorded already); returns at once. A run does not wait
        behind the socket's prompts, nor they behind it: its frames reach the item's group as they
        are saved, and its end comes as the job's ``video.run`` frame."""
        if len(self._waiting) >= MAX_WAITING:
            raise InferenceError("Wait for your earlier prompts and runs, then try again.", code="too_many_prompts")
        task = asyncio.ensure_future(self._run_video(request))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _run_video(self, request: dict[str, Any]) -> None:
        from inference.video.runs import run_failed

        try:
            if settings.INFERENCE_MODE == "worker":
                await self._run_on_worker(request)
            else:
                await execute_in(inline_executor())(request)
        except Exception:  # the channel layer failed: the run is recorded as failed, the socket hears it
            logger.exception("Propagation run %s could not be dispatched", request.get("job_id"))
            await _closing(run_failed)(request, "The model cannot be reached right now; resume the run in a moment.")

    async def _run_on_worker(self, request: dict[str, Any], *, resumed: bool = False) -> None:
        """Send the run to the worker holding the video (else any) and wait for its end, watching
        the job's heartbeat: a worker silent for ``INFERENCE_TIMEOUT_SECONDS`` (the time a frame
        may take) is taken for dead. Its run is then recorded as failed with its frames kept, and
        resumed once from its last done frame on whichever worker takes it."""
        from inference.video.runs import run_stalled

        channel = _routes.get(request["media_id"], request["model"]) or SHARED_CHANNEL
        token = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = (future, request)
        stall = float(settings.INFERENCE_TIMEOUT_SECONDS)
        try:
            await self.channel_layer.send(
                channel,
                {"type": REQUEST_TYPE, "request": request, "reply_channel": self.reply_channel, "token": token},
            )
            while True:
                try:
                    event = await asyncio.wait_for(asyncio.shield(future), stall)
                except TimeoutError:
                    verdict = await _closing(run_stalled)(request, stall_seconds=stall, resume=not resumed)
                    if verdict is None:
                        continue  # alive: its heartbeat is recent, or it has not been taken yet
                    if channel != SHARED_CHANNEL:
                        _routes.forget_worker(channel)
                    if verdict.get("kind") == "video_run":  # the resumed run, recorded
                        await self._run_on_worker(verdict, resumed=True)
                    return
                worker = event.get("worker")
                if isinstance(worker, str):
                    _routes.set(request["media_id"], request["model"], worker)
                return
        finally:
            self._pending.pop(token, None)

    def close(self) -> None:
        """The socket went away: stop waiting. Prompts already running still finish and are saved."""
        for task in list(self._waiting):
            task.cancel()

    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply frame for ``request``: ``mask``, or ``error`` (``inference_timeout`` when no
        answer came in time)."""
        timeout = float(settings.INFERENCE_TIMEOUT_SECONDS)
        request = {**request, "deadline": request["submitted_at"] + timeout}
        if settings.INFERENCE_MODE == "worker":
            return await self._on_worker(request, timeout)
        return await self._inline(request, timeout)

    # --- inline ------------------------------------------------------------------------------

    async def _inline(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        task = asyncio.ensure_future(execute_in(inline_executor())(request))
        try:
            reply = await asyncio.wait_for(asyncio.shield(task), _left(request))
        except TimeoutError:
            task.add_done_callback(lambda done: self._late(done, request))
            return _timeout_reply(request, timeout)
        return _finished(reply, request) if reply is not None else _timeout_reply(request, timeout)

    def _late(self, task: asyncio.Future, request: dict[str, Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        reply = task.result()
        if reply is not None and reply.get("type") == "mask":
            asyncio.ensure_future(self.send(_finished(reply, request)))

    # --- on a worker -------------------------------------------------------------------------

    async def _on_worker(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        channel = _routes.get(request["media_id"], request["model"]) or SHARED_CHANNEL
        token = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = (future, request)
        try:
            try:
                await self.channel_layer.send(
                    channel,
                    {"type": REQUEST_TYPE, "request": request, "reply_channel": self.reply_channel, "token": token},
                )
            except ChannelFull:
                return {
                    "type": "error",
                    "request_id": request.get("request_id"),
                    "code": "inference_busy",
                    "message": "Too many prompts are waiting for the model; try again in a moment.",
                }
            try:
                event = await asyncio.wait_for(future, _left(request))
            except TimeoutError:
                if channel != SHARED_CHANNEL:
                    _routes.forget_worker(channel)  # it is dead or stuck: its items go elsewhere
                self._expired[token] = request
                while len(self._expired) > MAX_EXPIRED:
                    self._expired.popitem(last=False)
                return _timeout_reply(request, timeout)
        finally:
            self._pending.pop(token, None)
        return self._accept(event, request)

    def _accept(self, event: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        reply = event["reply"]
        worker = event.get("worker")
        if reply.get("type") == "mask" and isinstance(worker, str):
            _routes.set(request["media_id"], request["model"], worker)
        return _finished(reply, request)

    async def reply_received(self, event: dict[str, Any]) -> None:
        """A worker's ``inference.reply`` for this socket."""
        token = event.get("token")
        pending = self._pending.get(token)
        if pending is not None:
            if not pending[0].done():
                pending[0].set_result(event)
            return
        request = self._expired.pop(token, None)
        if request is not None and event.get("reply", {}).get("type") == "mask":
            await self.send(self._accept(event, request))
