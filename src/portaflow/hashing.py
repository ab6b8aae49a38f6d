"""Content digests of files and directories (outputs in manifests, inputs in staleness records)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """A file's sha256, or for a directory the sha256 of its sorted (relative path, file sha256) list."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            digest.update(str(full.relative_to(path)).encode() + b"\0" + sha256_file(full).encode() + b"\n")
    return digest.hexdigest()


def stat_key(path: str | Path) -> list[int]:
    """Size and modification time: a cheap check that a recorded output was not changed by hand."""
    path = Path(path)
    if path.is_dir():
        newest, total = path.stat().st_mtime_ns, 0
        for root, _, files in os.walk(path):
            for name in files:
                st = (Path(root) / name).stat()
                newest, total = max(newest, st.st_mtime_ns), total + st.st_size
        return [total, newest]
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]
