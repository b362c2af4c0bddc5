"""Where a result store lives: a local path or any URI ``pyarrow.fs`` opens (``s3://``, ``gs://``,
``hdfs://``, ``file://``), behind one small type, ``Location``.

* A local write goes to a temporary file in the same directory, then is renamed over the old
  file: a crash leaves the old version or the new one.
* On an object store a rename is a copy, not atomic; each file is written as one PUT of the
  whole object instead, which readers see whole or not at all.
* Reads list one directory level and read whole files.

An S3-compatible server elsewhere than AWS is reached with pyarrow's URI options, e.g.
``s3://bucket/prefix?endpoint_override=host:9000&scheme=http`` (credentials from the usual
``AWS_*`` variables). Pure: no torch, no Ray.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import UserError, within
from ..fileio import atomic_write_bytes

URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
BUCKETED = ("s3", "gs", "gcs")   # object stores: a URI names a bucket (pyarrow would look for one for ever)
DEADLINE = 5.0   # seconds a store has to answer :func:`reachable` (pyarrow retries S3 for about 6 s)


def is_uri(s: str | os.PathLike) -> bool:
    return isinstance(s, str) and bool(URI.match(s))


@dataclass(frozen=True)
class Location:
    """A file or directory on a filesystem: ``fs`` (a ``pyarrow.fs.FileSystem``), its ``path``
    there and ``uri``, how it was named (for messages and for the commands that follow)."""
    fs: pafs.FileSystem
    path: str
    uri: str

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    def join(self, *parts: str) -> "Location":
        base, _, query = self.uri.partition("?")
        uri = posixpath.join(base, *parts) + (f"?{query}" if query else "")
        return Location(self.fs, posixpath.join(self.path, *parts), uri)

    def __truediv__(self, part: str) -> "Location":
        return self.join(part)

    def __str__(self) -> str:
        return self.uri.partition("?")[0]

    def __fspath__(self) -> str:
        if not self.local:
            raise TypeError(f"{self} is not a local path")
        return self.path

    def kind(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self.kind() != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        # an object store has no directories: a prefix holding objects counts as one
        if self.kind() == pafs.FileType.Directory:
            return True
        return not self.local and bool(self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True)))

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def write_text(self, text: str) -> None:
        """The whole file at once: atomic on a local disk (temporary file, rename), one PUT of
        the whole object on an object store."""
        self.write_bytes(text.encode("utf-8"))

    def write_bytes(self, data: bytes) -> None:
        """As ``write_text``: the whole file at once."""
        if self.local:
            atomic_write_bytes(self.path, data)
            return
        parent = posixpath.dirname(self.path)
        if parent:
            self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def files(self, suffix: str = "") -> list["Location"]:
        """The files directly in this directory whose names end in ``suffix`` (no hidden or
        temporary files), sorted by name; none when it does not exist."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True))
        out = [i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(suffix)
               and not i.base_name.startswith(".")]
        return [self.join(i.base_name) for i in sorted(out, key=lambda i: i.base_name)]

    def mtime(self) -> float:
        m = self.fs.get_file_info(self.path).mtime
        return m.timestamp() if m is not None else 0.0


def at(where: "str | os.PathLike | Location") -> Location:
    """The location a path or URI names; a relative local path is made absolute here, so that
    it means the same wherever it is read later."""
    if isinstance(where, Location):
        return where
    if str(where).strip() == "":
        raise UserError("the storage path or URI is empty: give a directory or a URI such as s3://bucket/prefix")
    if is_uri(where):
        scheme, _, rest = where.partition("://")
        if scheme.lower() in BUCKETED and not rest.partition("?")[0].split("/")[0]:
            raise UserError(f"storage {where.partition('?')[0]!r} names no bucket: give {scheme}://BUCKET/PREFIX")
        try:
            fs, path = pafs.FileSystem.from_uri(where)
        except (ValueError, OSError, pa.ArrowException) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot open storage {where.partition('?')[0]}: {first[:200]}") from None
        return Location(fs, path.rstrip("/") or path, where)
    p = str(Path(where).expanduser().absolute())
    return Location(pafs.LocalFileSystem(), p, p)


def reachable(where: "str | os.PathLike | Location") -> Location:
    """The location, checked to answer before any work starts: on an object store its bucket
    exists and answers within ``DEADLINE`` seconds (pyarrow would retry, or wait for credentials,
    for minutes); one line otherwise. A local path is checked where it is written
    (``fileio.check_writable_dir``)."""
    loc = at(where)
    if loc.local:
        return loc
    bucket = loc.path.lstrip("/").split("/")[0]

    def probe() -> None:
        try:
            kind = loc.fs.get_file_info(bucket).type
        except (OSError, pa.ArrowException) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"cannot reach storage {loc}: {first[:200]}") from None
        if kind == pafs.FileType.NotFound:
            raise UserError(f"storage {loc}: bucket {bucket!r} does not exist (or these credentials cannot see it)")

    within(DEADLINE, probe, f"cannot reach storage {loc}: no answer within {DEADLINE:g} s")
    return loc


def absolute(where: str | os.PathLike | None) -> str | None:
    """A path or URI as it should travel to another process or machine: a local path made
    absolute (``~`` expanded), a URI unchanged, None unchanged."""
    if where is None or str(where) == "":
        return None
    return str(where) if is_uri(str(where)) else str(Path(where).expanduser().absolute())


def lock_dir(loc: Location) -> Path:
    """Where the one-driver lock of a store lives: beside it on a local or shared disk; for an
    object store (no locks there) in this machine's temporary directory, keyed by the URI."""
    if loc.local:
        return Path(loc.path)
    key = hashlib.sha256(str(loc).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "glue-sweep-locks" / f"{loc.name}-{key}"
