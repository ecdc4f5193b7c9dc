"""File names for the items of one export: the original name, made safe and unique.

The name people gave the file stays recognisable: only its last path part is kept, characters that
some file system or zip tool refuses (or reads as a path) become ``_``, and leading dots (hidden
files) and trailing dots and spaces go. The extension is the stored file's (an upload is stored
re-encoded, so ``scan.bmp`` is a PNG on disk and exported as ``scan.png``). Names are unique without
regard to case (archives are unpacked on case-insensitive file systems too), and so are their stems,
because the mask PNGs of an item are named after its stem: a repeated stem takes ``_<item id>``.

Which stems were handed out is kept in a Bloom filter of fixed size (1 MiB), not a set that grows
with the project: it never forgets a stem (so no name is handed out twice), and a stem it wrongly
thinks taken merely gets the item's id: about five stems in a million with 100,000 images in the
export, one in fifty with a million.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import PurePosixPath

UNSAFE = re.compile(r"[^\w .()+,=@-]")
MAX_STEM = 120


def safe_stem(original_name: str) -> str:
    """The stem of ``original_name`` without path, hidden-file dots or characters unsafe in names."""
    last = original_name.replace("\\", "/").rsplit("/", 1)[-1]
    stem = PurePosixPath(unicodedata.normalize("NFC", last)).stem
    stem = UNSAFE.sub("_", stem).strip(" .")
    return stem[:MAX_STEM].rstrip(" .")


def stored_extension(stored_name: str) -> str:
    suffix = PurePosixPath(stored_name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


class SeenNames:
    """A Bloom filter of names: ``in`` is true for every name added (and, rarely, for others)."""

    BITS = 1 << 23
    HASHES = 4

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)

    def _positions(self, name: str) -> list[int]:
        digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=4 * self.HASHES).digest()
        return [int.from_bytes(digest[4 * i : 4 * i + 4], "little") % self.BITS for i in range(self.HASHES)]

    def __contains__(self, name: str) -> bool:
        return all(self._bits[bit >> 3] & (1 << (bit & 7)) for bit in self._positions(name))

    def add(self, name: str) -> None:
        for bit in self._positions(name):
            self._bits[bit >> 3] |= 1 << (bit & 7)


class FileNames:
    """Hands out the file names of one export, each unique (and unique in its stem)."""

    def __init__(self) -> None:
        self._stems = SeenNames()

    def name(self, *, item_id: int, original_name: str, stored_name: str) -> tuple[str, str]:
        """``(stem, file name)`` for an item."""
        base = safe_stem(original_name) or "item"
        stem, attempt = base, 1
        while stem.casefold() in self._stems:
            stem = f"{base}_{item_id}" if attempt == 1 else f"{base}_{item_id}_{attempt}"
            attempt += 1
        self._stems.add(stem.casefold())
        return stem, stem + stored_extension(stored_name)
