"""manage.py inference_worker [--id <worker id>] [--preload tiny ...]"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inference import registry
from inference.dispatch import SHARED_CHANNEL
from inference.prompts import InferenceError
from inference.worker import InferenceWorker, default_worker_id, valid_worker_id


class Command(BaseCommand):
    help = (
        "Run studio prompts from the channel layer (INFERENCE_MODE=worker): listen on the shared "
        f"'{SHARED_CHANNEL}' channel and on this worker's own '{SHARED_CHANNEL}.<id>'. Start one per GPU; "
        "any number may run. Stops after the prompt in hand on SIGTERM or Ctrl+C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", dest="worker_id", help="this worker's id (default: <host>-<pid>)")
        parser.add_argument(
            "--preload",
            action="append",
            choices=list(registry.MODELS),
            default=[],
            help="build this model before listening, so the first prompt does not wait for it (repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker_id = options["worker_id"] or default_worker_id()
        if not valid_worker_id(worker_id):
            raise CommandError(f"--id {worker_id!r}: use letters, digits, '-' and '_' (at most 60).")
        channel_layer = get_channel_layer()
        if channel_layer is None or isinstance(channel_layer, InMemoryChannelLayer):
            raise CommandError("inference_worker needs a channel layer shared with the web processes: set REDIS_URL.")
        for key in options["preload"]:
            from inference.segmentation import get_service

            try:
                get_service().segmenter(key)
            except InferenceError as exc:
                raise CommandError(str(exc)) from exc
        worker = InferenceWorker(channel_layer=channel_layer, worker_id=worker_id)
        try:
            asyncio.run(self._serve(worker))
        finally:
            worker.close()

    async def _serve(self, worker: InferenceWorker) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        self.stdout.write(f"Inference worker {worker.worker_id} listening on {SHARED_CHANNEL} and {worker.channel}.")
        self.stdout.flush()
        await worker.serve(stop)
        self.stdout.write(f"Inference worker {worker.worker_id} stopped after {worker.handled} prompt(s).")
