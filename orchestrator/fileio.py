"""Atomic file writes (a crash leaves the old file or the new one, never a torn one), and JSON
reads that never recurse out of the stack."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .errors import UserError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """The whole file or nothing: a temporary file beside it, synced, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JSONTooDeep(json.JSONDecodeError):
    """JSON nested deeper than the parser recurses (e.g. 200,000 ``[``): unreadable, like any
    other malformed JSON, never a RecursionError."""


def read_json(text: str | bytes):
    """``json.loads``, with nesting too deep for the parser raised as :class:`JSONTooDeep` (a
    ``json.JSONDecodeError``, so every reader's ``except`` for malformed JSON covers it)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONTooDeep("nested too deeply", text if isinstance(text, str) else "", 0) from None


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_writable_dir(path: str | os.PathLike, what: str) -> None:
    """One line (UserError) unless ``path`` can be created as a directory and written; checked
    without leaving anything behind (what this check creates, it removes)."""
    path, created = Path(path), []
    try:
        for p in reversed([p for p in [path, *path.parents] if not p.exists()]):
            p.mkdir()
            created.append(p)
        if not path.is_dir():
            raise UserError(f"{what} {path} is a file, not a directory")
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        detail = f"{e.strerror or e}" + (f": {e.filename}" if e.filename and str(e.filename) != str(path) else "")
        raise UserError(f"{what} {path}: cannot write there ({detail})") from None
    finally:
        for p in reversed(created):
            with contextlib.suppress(OSError):
                p.rmdir()
