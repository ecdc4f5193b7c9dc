"""SAM 2.1 checkpoint files: random-weight ones for tests and plumbing, official ones downloaded.

Both are written in the official format, ``{"model": state_dict}``, under the official file name in
the checkpoint folder, so ``build_sam2`` loads either the same way. A random-weight checkpoint also
carries ``"untrained": True`` and gets a sidecar ``<name>.untrained`` (see ``registry``).

Downloads go to ``<name>.part`` and resume from its length with an HTTP Range request, after a
dropped connection (retried) or in a later run. The finished file must load into its model's config
before it replaces anything in the folder; a file that does not is deleted and reported.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import torch
from sam2.build_sam import build_sam2

from inference import registry
from inference.loading import ensure_hydra

OFFICIAL_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
CHUNK_BYTES = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class CheckpointError(Exception):
    pass


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".writing")
    try:
        torch.save(content, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_random_checkpoint(*, key: str, directory: Path, seed: int = 0, force: bool = False) -> Path:
    """Build ``key``'s model with random weights (seeded) and save it in the official format."""
    spec = registry.MODELS[key]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.checkpoint
    marker = registry.untrained_marker_for(path)
    if path.exists() and not marker.exists() and not force:
        raise CheckpointError(f"{path} exists and is not a random-weight checkpoint; pass --force to replace it.")
    ensure_hydra()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_sam2(spec.config, None, device="cpu", mode="eval")
    _write_atomically(path, {"model": model.state_dict(), "untrained": True, "seed": seed})
    marker.write_text(json.dumps({"model": key, "seed": seed, "note": "random weights: masks are noise"}) + "\n")
    return path


def verify_checkpoint(*, key: str, path: Path) -> None:
    """Raise ``CheckpointError`` unless ``path`` loads into ``key``'s config exactly (every weight
    present, none left over, every shape right), as ``build_sam2`` requires."""
    spec = registry.MODELS[key]
    try:
        content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({type(exc).__name__}).") from exc
    state = content.get("model") if isinstance(content, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path.name} has no 'model' state dict (not the official format).")
    ensure_hydra()
    model = build_sam2(spec.config, None, device="cpu", mode="eval")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(f"{path.name} does not fit {spec.config}: {str(exc).splitlines()[-1]}") from exc
    if missing or unexpected:
        raise CheckpointError(
            f"{path.name} does not fit {spec.config}: {len(missing)} weight(s) missing "
            f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])})."
        )


def checkpoint_url(key: str, base_url: str = OFFICIAL_BASE_URL) -> str:
    scheme = urlsplit(base_url).scheme
    if scheme not in {"http", "https"}:
        raise CheckpointError(f"The base URL must be http or https, not {base_url!r}.")
    return base_url.rstrip("/") + "/" + registry.MODELS[key].checkpoint


class _Progress:
    """A one-line progress bar on a text stream (redrawn with a carriage return)."""

    def __init__(self, stream: TextIO | None, name: str, total: int | None, done: int) -> None:
        self.stream, self.name, self.total, self.done = stream, name, total, done
        self._last = 0.0

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            self.draw()

    def draw(self, end: str = "") -> None:
        if self.stream is None:
            return
        mib = self.done / 1048576
        if self.total:
            fraction = min(1.0, self.done / self.total)
            bar = "#" * int(fraction * 30)
            line = f"\r{self.name} [{bar:<30}] {fraction:6.1%} {mib:.1f}/{self.total / 1048576:.1f} MiB"
        else:
            line = f"\r{self.name} {mib:.1f} MiB"
        self.stream.write(line + end)
        self.stream.flush()


def _fetch_into(url: str, part: Path, *, timeout: float, progress: TextIO | None) -> None:
    """One request: append to ``part`` from its length (or start over when the server ignores the
    range). Raises on a dropped connection, leaving what arrived in ``part``."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "annotation-platform"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (scheme checked in checkpoint_url)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # nothing after what we hold: the part is complete (verification decides)
        raise CheckpointError(f"{url} answered {exc.code} {exc.reason}.") from exc
    with response:
        total: int | None
        if response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise CheckpointError(f"{url} answered a range other than the one asked for.")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        bar = _Progress(progress, part.name.removesuffix(".part"), total, offset)
        with part.open(mode) as handle:
            while chunk := response.read(CHUNK_BYTES):
                handle.write(chunk)
                bar.update(len(chunk))
        bar.draw(end="\n")
        if total is not None and part.stat().st_size != total:
            raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def download_checkpoint(
    *,
    key: str,
    directory: Path,
    base_url: str = OFFICIAL_BASE_URL,
    retries: int = 3,
    timeout: float = 60.0,
    progress: TextIO | None = None,
) -> Path:
    """Fetch ``key``'s official checkpoint into ``directory``, resuming, verifying, then moving it in."""
    spec = registry.MODELS[key]
    url = checkpoint_url(key, base_url)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / spec.checkpoint
    part = final.with_name(final.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_into(url, part, timeout=timeout, progress=progress)
            break
        except (OSError, http.client.HTTPException) as exc:
            if progress is not None:
                progress.write("\n")
            held = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                raise CheckpointError(
                    f"Download of {spec.checkpoint} interrupted after {held} bytes ({exc!r}); run again to resume."
                ) from exc
            if progress is not None:
                progress.write(f"Connection lost after {held} bytes; resuming.\n")
    try:
        verify_checkpoint(key=key, path=part)
    except CheckpointError as exc:
        part.unlink(missing_ok=True)
        raise CheckpointError(f"Refused {spec.checkpoint}: {exc} The download was deleted.") from exc
    os.replace(part, final)
    registry.untrained_marker_for(final).unlink(missing_ok=True)
    return final
