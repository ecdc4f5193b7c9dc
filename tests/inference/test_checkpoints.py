"""`manage.py sam2_checkpoints download` against a checkpoint served from a loopback HTTP server that
honours Range requests and can drop a connection part-way, as a flaky network does."""

from __future__ import annotations

import filecmp
import io
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # inside sam2

MIB = 1024 * 1024
NAME = "sam2.1_hiera_tiny.pt"


@dataclass
class Served:
    root: Path
    url: str = ""
    requests: list[str | None] = field(default_factory=list)  # the Range header of each GET
    cut_after: list[int] = field(default_factory=list)  # per coming request: bytes sent before hanging up


def _handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = served.root / self.path.lstrip("/")
            served.requests.append(self.headers.get("Range"))
            if not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match:
                start = int(match.group(1))
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            budget = served.cut_after.pop(0) if served.cut_after else size
            with path.open("rb") as handle:
                handle.seek(start)
                try:
                    while budget > 0 and (chunk := handle.read(min(MIB, budget))):
                        self.wfile.write(chunk)
                        budget -= len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            self.close_connection = True

    return Handler


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "served"
    root.mkdir()
    served = Served(root=root)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.url = f"http://127.0.0.1:{server.server_address[1]}/segment_anything_2/092824/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


def _download(served: Served, directory: Path) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "sam2_checkpoints", "download", "--model", "tiny", "--base-url", served.url, "--dir", str(directory),
        stdout=stdout, stderr=stderr,
    )  # fmt: skip
    return stdout.getvalue(), stderr.getvalue()


def _serve(served: Served, source: Path) -> Path:
    target = served.root / "segment_anything_2" / "092824" / NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_it_downloads_a_checkpoint_that_loads_into_its_config(
    served: Served, sam2_checkpoint_dir: Path, tmp_path: Path
) -> None:
    original = _serve(served, sam2_checkpoint_dir / NAME)
    directory = tmp_path / "checkpoints"
    stdout, stderr = _download(served, directory)
    assert filecmp.cmp(directory / NAME, original, shallow=False)
    assert served.requests == [None]
    assert "verified and in place" in stdout
    assert "100.0%" in stderr and "#" * 30 in stderr  # the progress bar reached its end
    assert not (directory / (NAME + ".part")).exists()
    assert not (directory / (NAME + ".untrained")).exists()
    stdout, _ = _download(served, directory)
    assert "already there" in stdout and served.requests == [None]


def test_it_resumes_a_download_with_range_requests(served: Served, sam2_checkpoint_dir: Path, tmp_path: Path) -> None:
    original = _serve(served, sam2_checkpoint_dir / NAME)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    # An earlier run stopped after 10 MiB; this one loses its connection after 40 MiB more.
    with original.open("rb") as source:
        (directory / (NAME + ".part")).write_bytes(source.read(10 * MIB))
    served.cut_after = [40 * MIB]
    _, stderr = _download(served, directory)
    assert served.requests == [f"bytes={10 * MIB}-", f"bytes={50 * MIB}-"]
    assert "resuming" in stderr
    assert filecmp.cmp(directory / NAME, original, shallow=False)


def _truncated(source: Path, target: Path) -> None:
    with source.open("rb") as handle:
        target.write_bytes(handle.read(30 * MIB))


def _foreign_state_dict(source: Path, target: Path) -> None:
    torch.save({"model": {"backbone.weight": torch.zeros(3)}}, target)


def _not_official_format(source: Path, target: Path) -> None:
    torch.save({"state_dict": {}}, target)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [(_truncated, "not a readable PyTorch checkpoint"), (_foreign_state_dict, "does not fit"),
     (_not_official_format, "no 'model' state dict")],
    ids=["truncated", "another model", "not the official format"],
)  # fmt: skip
def test_it_refuses_a_file_that_does_not_load_into_its_config(
    spoil: object, reason: str, served: Served, sam2_checkpoint_dir: Path, tmp_path: Path
) -> None:
    bad = served.root / "segment_anything_2" / "092824" / NAME
    bad.parent.mkdir(parents=True)
    spoil(sam2_checkpoint_dir / NAME, bad)  # type: ignore[operator]
    directory = tmp_path / "checkpoints"
    stderr = io.StringIO()
    with pytest.raises(CommandError, match="tiny"):
        call_command(
            "sam2_checkpoints", "download", "--model", "tiny", "--base-url", served.url, "--dir", str(directory),
            stdout=io.StringIO(), stderr=stderr,
        )  # fmt: skip
    assert "Refused" in stderr.getvalue() and reason in stderr.getvalue()
    assert not (directory / NAME).exists()
    assert not (directory / (NAME + ".part")).exists()  # a bad file is not kept to be "resumed"


def test_it_names_a_file_the_server_does_not_have(served: Served, tmp_path: Path) -> None:
    stderr = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "sam2_checkpoints", "download", "--model", "small", "--base-url", served.url, "--dir", str(tmp_path),
            stdout=io.StringIO(), stderr=stderr,
        )  # fmt: skip
    assert "404" in stderr.getvalue()
    assert served.requests == [None]  # a missing file is not retried


def test_it_lists_what_the_checkpoint_folder_holds(sam2_checkpoint_dir: Path) -> None:
    stdout = io.StringIO()
    call_command("sam2_checkpoints", "list", "--dir", str(sam2_checkpoint_dir), stdout=stdout)
    lines = {line.split()[0]: line for line in stdout.getvalue().splitlines()[1:]}
    assert "untrained" in lines["tiny"]
    assert "missing" in lines["large"]
