"""Content digests of data files: SHA-256 of the bytes, computed once per file version.

A file's digest is memoised (in the process and on disk under ``$GLUE_SWEEP_CACHE/digests``)
by its path, size, modification time, inode and change time. The change time (ctime) cannot be
set back by ``touch``, ``cp -p``, ``rsync -t`` or tar, so an edit with the modification time
restored still reads the bytes again; an unchanged file is hashed once. Pure: hashlib and os.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import UserError

_CHUNK = 1 << 20
_memo: dict[tuple, str] = {}


def _memo_dir() -> Path:
    return Path(os.environ.get("GLUE_SWEEP_CACHE", Path.home() / ".cache" / "glue-sweep")).expanduser() / "digests"


def stat_key(path: Path) -> tuple:
    """What identifies a version of the file without reading it."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of the file's bytes (hex), read once per version of the file."""
    path = Path(path)
    try:
        key = stat_key(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if key in _memo:
        return _memo[key]
    memo_file = _memo_dir() / hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    try:
        digest = memo_file.read_text().strip()
    except OSError:
        digest = ""
    if len(digest) != 64:
        digest = _hash(path)
        _remember(memo_file, digest)
    _memo[key] = digest
    return digest


def _hash(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    return h.hexdigest()


def _remember(memo_file: Path, digest: str) -> None:
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(digest)
        os.replace(tmp, memo_file)
    except OSError:
        pass   # an unwritable cache costs a re-hash, not correctness
