"""The inference worker: consumes studio prompts from the channel layer and runs them here.

A worker listens on the shared channel ``inference`` (first prompts for an item, taken by whichever
worker asks first) and on its own ``inference.<worker id>`` (prompts for items whose embedding it
holds), its own first. It runs one prompt at a time, in a thread, through the same
``prompt_execute`` the inline mode uses, and sends the reply, naming itself, to the socket's
channel. Adding a worker is starting one more ``manage.py inference_worker``.

While it runs a prompt it keeps one receive open on each channel, so it may hold one waiting
message from each; a worker killed mid-prompt loses those, and their sockets get
``inference_timeout`` (see ``inference.dispatch``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inference.dispatch import REPLY_TYPE, REQUEST_TYPE, SHARED_CHANNEL, execute_in, worker_channel

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    """``<host>-<pid>``, in the characters a channel name may hold."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "worker"
    return f"{host}-{os.getpid()}"


def valid_worker_id(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_-]{1,60}", value))


class InferenceWorker:
    def __init__(self, *, channel_layer: Any, worker_id: str | None = None) -> None:
        self.channel_layer = channel_layer
        self.worker_id = worker_id or default_worker_id()
        if not valid_worker_id(self.worker_id):
            raise ValueError(f"Worker id {self.worker_id!r}: use letters, digits, '-' and '_' (at most 60).")
        self.channel = worker_channel(self.worker_id)
        self.handled = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference-worker")

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Handle prompts until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        stopping = asyncio.ensure_future(stop.wait())
        receiving: dict[asyncio.Future, str] = {}
        try:
            while True:
                for channel in (self.channel, SHARED_CHANNEL):
                    if channel not in receiving.values():
                        receiving[asyncio.ensure_future(self.channel_layer.receive(channel))] = channel
                done, _ = await asyncio.wait([*receiving, stopping], return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    return
                # Its own channel first: those items' embeddings are warm here.
                for task in sorted((t for t in done if t in receiving), key=lambda t: receiving[t] != self.channel):
                    del receiving[task]
                    await self.handle(task.result())
                    if stop.is_set():
                        return
        finally:
            stopping.cancel()
            for task in receiving:
                task.cancel()
            await asyncio.gather(*receiving, return_exceptions=True)

    async def handle(self, message: dict[str, Any]) -> None:
        request, reply_channel = message.get("request"), message.get("reply_channel")
        if message.get("type") != REQUEST_TYPE or not isinstance(request, dict) or not isinstance(reply_channel, str):
            logger.warning("Ignoring a message that is no prompt request: %r", str(message)[:200])
            return
        try:
            reply = await execute_in(self._executor)(request)
        except Exception:  # prompt_execute answers every error of a prompt; this is the worker's own
            logger.exception("Prompt %s failed on worker %s", request.get("request_id"), self.worker_id)
            reply = {
                "type": "error",
                "request_id": request.get("request_id"),
                "code": "inference_failed",
                "message": "The model failed on this prompt; try again.",
            }
        self.handled += 1
        if reply is None:  # past its deadline: the socket has had its timeout
            return
        try:
            await self.channel_layer.send(
                reply_channel,
                {"type": REPLY_TYPE, "token": message.get("token"), "worker": self.channel, "reply": reply},
            )
        except Exception:
            logger.warning("Could not reply to %s", reply_channel, exc_info=True)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
