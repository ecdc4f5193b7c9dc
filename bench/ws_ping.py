"""Websocket ping -> pong through the platform's consumer vs the raw channel layer.

The platform's path is the full ASGI websocket stack in-process (Origin check, session auth, the
per-message access check, JSON validation, a round trip through the channel layer); the raw path
is one ``layer.send`` + ``layer.receive`` on the same layer. Prints the median and p95 per message,
the ratio of medians, and the database queries per message, counted with CaptureQueriesContext on
the thread that runs the consumers' database work. Uses the in-memory layer, or Redis when
REDIS_URL is set.

Revocations are pushed to the socket (platform_core.signals), so a message re-reads session, user
and membership only when the last full check is older than ``recheck_seconds``; before that push
existed every message did (3 queries).

    .venv/bin/python bench/ws_ping.py [N]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="annotation-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "platform_core.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import warnings  # noqa: E402

import django  # noqa: E402

warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic for a bench

django.setup()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from channels.testing import WebsocketCommunicator  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from platform_core.asgi import application  # noqa: E402
from platform_core.models import Membership, Organization, Role  # noqa: E402


def setup() -> bytes:
    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", password="bench-pw-1234")
    Membership.objects.create(user=user, organization=org, role=Role.ANNOTATOR)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def platform_ping(cookie: bytes, n: int, *, count_queries: bool = False) -> tuple[list[float], int]:
    """``n`` pings on one socket: the time of each, and (``count_queries``) the queries they made."""
    headers = [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"cookie", cookie)]
    ws = WebsocketCommunicator(application, "/ws/o/bench/ping/", headers=headers)
    connected, _ = await ws.connect()
    assert connected
    # The consumers' database work runs in asgiref's thread-sensitive executor (one thread here):
    # the capture is entered, left and read there, where the queries are made.
    capture = CaptureQueriesContext(connection)
    if count_queries:
        await sync_to_async(capture.__enter__)()
    times = []
    for i in range(n):
        started = time.perf_counter()
        await ws.send_json_to({"type": "ping", "request_id": i})
        reply = await ws.receive_json_from(timeout=5)
        times.append(time.perf_counter() - started)
        assert reply["type"] == "pong", reply
    queries = 0
    if count_queries:
        await sync_to_async(capture.__exit__)(None, None, None)
        queries = await sync_to_async(len)(capture)
    await ws.disconnect()
    return times, queries


async def raw_layer(n: int) -> list[float]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    times = []
    for i in range(n):
        started = time.perf_counter()
        await layer.send(channel, {"type": "pong.reply", "request_id": i})
        await layer.receive(channel)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    from platform_core import websockets

    # The per-socket rate limit (20/s, burst 40) would throttle the loop: lift it for the bench.
    websockets.TenantJsonConsumer.rate_per_second = 1e9
    websockets.TenantJsonConsumer.rate_burst = 10**9
    cookie = setup()

    async def run() -> tuple[list[float], int, list[float]]:
        await platform_ping(cookie, 20)  # warm up
        await raw_layer(20)
        platform, _ = await platform_ping(cookie, n)
        _, queries = await platform_ping(cookie, n, count_queries=True)  # apart: capturing costs time
        return platform, queries, await raw_layer(n)

    platform, queries, raw = asyncio.run(run())
    layer = type(get_channel_layer()).__name__
    p, r = statistics.median(platform) * 1e3, statistics.median(raw) * 1e3
    recheck = websockets.TenantJsonConsumer.recheck_seconds
    print(f"ws_ping ({layer}, n={n}; revocations pushed, a full access check at most every {recheck:g} s)")
    print(f"  platform ping->pong median {p:.3f} ms   p95 {sorted(platform)[int(n * 0.95)] * 1e3:.3f} ms")
    print(f"  raw layer send+receive median {r:.3f} ms")
    print(f"  ratio platform/raw: {p / r:.1f}x")
    print(f"  database queries per message: {queries / n:.2f} ({queries} for {n} pings)")


if __name__ == "__main__":
    main()
