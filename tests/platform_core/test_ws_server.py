"""The websocket door behind a real daphne, started as ``make demo`` starts it
(``python -m platform_core.server``), spoken to over a real TCP socket: an oversized
frame, above daphne's own 1 MiB default, gets the ``too_large`` error frame and the socket stays
open; signing out over HTTP closes the session's open socket without the page sending anything."""

from __future__ import annotations

import base64
import hashlib
import http.cookies
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from platform_core.server import MIN_SERVER_LIMIT
from platform_core.websockets import CLOSE_UNAUTHENTICATED

ROOT = Path(__file__).resolve().parents[2]

MAKE_MEMBER = """
from django.contrib.auth import get_user_model
from django.test import Client
from platform_core.models import Membership, Organization
org = Organization.objects.create(name="Server Lab", slug="server-lab")
user = get_user_model().objects.create_user("member", password="a long test passphrase")
Membership.objects.create(user=user, organization=org, role="annotator")
for _ in range(2):
    client = Client()
    client.force_login(user)
    print(client.cookies["sessionid"].value)
"""


@dataclass
class Server:
    base: str
    port: int
    sessions: list[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="1", DATA_DIR=str(tmp_path_factory.mktemp("ws-server") / "var"), LOG_LEVEL="WARNING")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    made = subprocess.run(
        [*manage, "shell", "--verbosity", "0", "-c", MAKE_MEMBER],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
        text=True,
    )
    sessions = made.stdout.split()[-2:]
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "platform_core.server",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "platform_core.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):  # noqa: S310 - loopback
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("daphne did not come up") from None
                time.sleep(0.3)
        yield Server(base=base, port=port, sessions=sessions)
    finally:
        process.terminate()
        process.wait(timeout=10)


class Socket:
    """A small RFC 6455 client over a plain TCP socket (daphne's autobahn holds txaio to Twisted in
    this process, and no other client library is installed): the handshake with the session cookie
    and Origin a page sends, masked text frames of any size in one frame, the server's frames."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, server: Server, session: str, path: str = "/ws/o/server-lab/ping/") -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        key = base64.b64encode(os.urandom(16))
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {server.base}\r\nCookie: sessionid={session}\r\n\r\n"
        )
        self.sock.sendall(handshake.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._read(1)
        assert head.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest())  # noqa: S324 - the protocol's own hash
        assert accept in head, head

    def send_text(self, text: str) -> None:
        payload = text.encode()
        size = len(payload)
        if size < 126:
            header = bytes([0x81, 0x80 | size])
        elif size < 1 << 16:
            header = bytes([0x81, 0x80 | 126]) + struct.pack("!H", size)
        else:
            header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", size)
        mask = os.urandom(4)
        key = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
        self.sock.sendall(header + mask + masked)

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server dropped the connection")
            data += chunk
        return data

    def receive(self, timeout: float = 5) -> tuple[str, Any]:
        """("text", the JSON message) or ("close", the close code)."""
        self.sock.settimeout(timeout)
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", self._read(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(size)
            opcode = first & 0x0F
            if opcode == 0x1:
                return "text", json.loads(payload)
            if opcode == 0x8:
                return "close", struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            # 0x9 / 0xA: the server's keepalive pings, not what the tests wait for

    def close(self) -> None:
        self.sock.close()


def ping(ws: Socket, request_id: str) -> dict:
    ws.send_text(json.dumps({"type": "ping", "request_id": request_id}))
    kind, message = ws.receive()
    assert kind == "text", (kind, message)
    return message


def test_it_answers_a_frame_above_daphnes_default_limit_with_too_large_and_stays_open(server: Server) -> None:
    ws = Socket(server, server.sessions[0])
    assert ping(ws, "before")["type"] == "pong"

    oversized = json.dumps({"type": "ping", "pad": "x" * (2 * 1024 * 1024)})  # 2 MiB, in one frame
    assert 1024 * 1024 < len(oversized) < MIN_SERVER_LIMIT
    ws.send_text(oversized)
    kind, reply = ws.receive()
    assert kind == "text", (kind, reply)
    assert (reply["type"], reply["code"]) == ("error", "too_large")
    assert "65536 bytes" in reply["message"]

    assert ping(ws, "after") == {
        "type": "pong",
        "request_id": "after",
        "organization": "server-lab",
        "layer": "RedisChannelLayer" if os.environ.get("REDIS_URL") else "InMemoryChannelLayer",
    }
    ws.close()


def sign_out_over_http(server: Server, session: str) -> int:
    """What the Sign out button does: the page's CSRF token, then POST /accounts/logout/."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    request = urllib.request.Request(server.base + "/o/server-lab/", headers={"Cookie": f"sessionid={session}"})  # noqa: S310
    with opener.open(request, timeout=10) as response:
        page = response.read().decode()
        cookies = http.cookies.SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode()
    logout = urllib.request.Request(  # noqa: S310 - loopback
        server.base + "/accounts/logout/",
        data=body,
        headers={"Cookie": f"sessionid={session}; csrftoken={cookies['csrftoken'].value}", "Origin": server.base},
    )
    with opener.open(logout, timeout=10) as response:
        return response.status


def test_it_closes_the_sessions_open_socket_when_it_signs_out(server: Server) -> None:
    signing_out, other = server.sessions  # two sessions of one member
    closing, staying = Socket(server, signing_out), Socket(server, other)
    assert ping(closing, "before")["type"] == "pong"

    assert sign_out_over_http(server, signing_out) == 200
    # Pushed: the socket closes without sending anything.
    assert closing.receive(timeout=1) == ("close", CLOSE_UNAUTHENTICATED)
    # The member's other session is still signed in, and its socket carries on.
    assert ping(staying, "still")["request_id"] == "still"
    closing.close()
    staying.close()
