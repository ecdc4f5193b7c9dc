"""A websocket client for the studio socket over a real TCP connection, on asyncio streams.

No client library is installed, and daphne's autobahn would hold txaio to one event loop kind
(as tests/platform_core/test_ws_server.py notes), so this speaks RFC 6455 itself: the handshake
with the session cookie and Origin a page sends, masked text frames, the server's frames (its
keepalive pings answered). ``prompt`` sends one prompt and waits for its reply, timing the round
trip; frames pushed meanwhile (others' saves on the same item) are counted and skipped.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REPLY_TIMEOUT_S = 600.0
# The socket takes 20 messages a second (a token bucket of 40, platform_core.websockets): a
# socket that prompts faster than that, as back-to-back clicks on a GPU would, gets rate_limited.
# Nobody clicks that fast; the pause before a send is not timed.
MIN_GAP_S = 1 / 15


class SocketClosed(ConnectionError):
    pass


class PromptFailed(RuntimeError):
    """The platform answered a prompt with an error frame."""

    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame


@dataclass(frozen=True)
class Reply:
    frame: dict[str, Any]  # the mask frame, parsed
    size: int  # its JSON text, in bytes
    seconds: float  # send -> the whole reply read and parsed

    @property
    def timings(self) -> dict[str, float]:
        return self.frame["timings"]


def _masked(payload: bytes, mask: bytes) -> bytes:
    data = np.frombuffer(payload, dtype=np.uint8)
    return (data ^ np.resize(np.frombuffer(mask, dtype=np.uint8), data.size)).tobytes()


class StudioSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pushed = 0  # frames that were no reply to this socket's prompts
        self._last_send = 0.0

    @classmethod
    async def open(cls, *, port: int, path: str, session: str) -> StudioSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 * 1024 * 1024)
        key = base64.b64encode(os.urandom(16))
        origin = f"http://127.0.0.1:{port}"
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n"
                f"Cookie: sessionid={session}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())  # noqa: S324 - the protocol's own hash
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            writer.close()
            raise SocketClosed(f"{path}: the handshake was refused: {head[:200]!r}")
        return cls(reader, writer)

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = bytes([0x80 | opcode, 0x80 | size])
        elif size < 1 << 16:
            header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", size)
        else:
            header = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", size)
        mask = os.urandom(4)
        self.writer.write(header + mask + _masked(payload, mask))
        await self.writer.drain()

    async def send(self, message: dict[str, Any]) -> None:
        await self._send_frame(0x1, json.dumps(message).encode())
        self._last_send = time.perf_counter()

    async def _frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        mask = await self.reader.readexactly(4) if second & 0x80 else b""
        payload = await self.reader.readexactly(size)
        return first, _masked(payload, mask) if mask else payload

    async def receive(self) -> bytes:
        """The next text message, whole (continuation frames joined)."""
        parts: list[bytes] = []
        while True:
            first, payload = await self._frame()
            opcode = first & 0x0F
            if opcode == 0x9:
                await self._send_frame(0xA, payload)
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise SocketClosed(f"the server closed the socket (code {code})")
            elif opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts)

    async def prompt(self, message: dict[str, Any]) -> Reply:
        wait = self._last_send + MIN_GAP_S - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        started = time.perf_counter()
        await self.send(message)
        while True:
            text = await asyncio.wait_for(self.receive(), REPLY_TIMEOUT_S)
            frame = json.loads(text)
            if frame.get("request_id") == message["request_id"] and frame.get("type") in ("mask", "error"):
                break
            self.pushed += 1
        seconds = time.perf_counter() - started
        if frame["type"] == "error":
            raise PromptFailed(frame)
        return Reply(frame=frame, size=len(text), seconds=seconds)

    async def close(self) -> None:
        try:
            await self._send_frame(0x8, struct.pack("!H", 1000))
        except ConnectionError:
            pass
        self.writer.close()
