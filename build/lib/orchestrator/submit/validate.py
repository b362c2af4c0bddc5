"""``glue-sweep submit --check``: a submission zip validated against the test files."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .files import HEADER, INCOMPLETE_SUFFIX, SubmissionFile, is_incomplete_name, submission_files, unavailable

MAX_ROW_MESSAGES = 3          # per file and kind of problem; then "... and N more"


@dataclass
class CheckReport:
    path: Path
    incomplete: bool                                   # missing files allowed (reported)
    problems: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # expected files absent from the zip
    rows: dict[str, int] = field(default_factory=dict)  # rows of every file checked

    @property
    def ok(self) -> bool:
        return not self.problems


def _expected_index(source, f: SubmissionFile) -> tuple[list[str] | None, str]:
    why = unavailable(source, f.task, f.split)
    if why:
        return None, why
    data = source.load(f.task, f.split)
    return list(data.index), data.origin


def check_file(f: SubmissionFile, raw: bytes, expected: list[str], origin: str) -> list[str]:
    """Every problem of one prediction file against its test file's indices, each naming
    the file (and the line, where there is one)."""
    name = f.name
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        return [f"{name}:{line}: not valid UTF-8 (byte {e.start})"]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [l[:-1] if l.endswith("\r") else l for l in lines]
    if not lines:
        return [f"{name}: empty file (expected the header {HEADER!r} and {len(expected)} rows)"]
    problems = []
    if lines[0] != HEADER:
        problems.append(f"{name}:1: header must be {HEADER!r}, found {lines[0]!r}")
    got: list[str] = []
    value_msgs, n_bad_values, n_bad_shape = [], 0, 0
    for k, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            n_bad_shape += 1
            if n_bad_shape <= MAX_ROW_MESSAGES:
                problems.append(f"{name}:{k}: expected 2 tab-separated fields (index, prediction), found {len(fields)}")
            got.append(fields[0])
            continue
        got.append(fields[0])
        why = f.problem(fields[1])
        if why:
            n_bad_values += 1
            if n_bad_values <= MAX_ROW_MESSAGES:
                value_msgs.append(f"{name}:{k}: {why}")
    if n_bad_shape > MAX_ROW_MESSAGES:
        problems.append(f"{name}: ... and {n_bad_shape - MAX_ROW_MESSAGES} more rows without 2 fields")
    problems += value_msgs
    if n_bad_values > MAX_ROW_MESSAGES:
        problems.append(f"{name}: ... and {n_bad_values - MAX_ROW_MESSAGES} more rows with invalid predictions")

    return problems + check_indices(name, got, expected, origin)


def check_indices(name: str, got: list[str], expected: list[str], origin: str) -> list[str]:
    """A file's row indices against its test file's: count, then the set, then their order."""
    problems: list[str] = []
    first_line = {}
    dups = []
    for k, idx in enumerate(got, start=2):
        if idx in first_line:
            dups.append(f"{name}:{k}: index {idx!r} again (first at line {first_line[idx]})")
        else:
            first_line[idx] = k
    exp_set = set(expected)
    absent = [i for i in expected if i not in first_line]
    extra = [(i, first_line[i]) for i in first_line if i not in exp_set]
    if len(got) != len(expected):
        detail = []
        if absent:
            detail.append(f"no row for index {', '.join(repr(i) for i in absent[:5])}"
                          + (f" and {len(absent) - 5} more" if len(absent) > 5 else ""))
        if extra:
            detail.append(f"index {', '.join(repr(i) for i, _ in extra[:5])} not in the test file")
        problems.append(f"{name}: {len(got)} prediction rows, but the test file {origin} has {len(expected)}"
                        + (f" ({'; '.join(detail)})" if detail else ""))
    else:
        for i, line in extra[:MAX_ROW_MESSAGES]:
            problems.append(f"{name}:{line}: index {i!r} is not in the test file {origin}")
        if absent and not extra:
            problems.append(f"{name}: no row for index {', '.join(repr(i) for i in absent[:5])}")
    problems += dups[:MAX_ROW_MESSAGES]
    if len(dups) > MAX_ROW_MESSAGES:
        problems.append(f"{name}: ... and {len(dups) - MAX_ROW_MESSAGES} more repeated indices")
    if len(got) == len(expected) and not absent and not extra and not dups:
        wrong = [k for k, (g, e) in enumerate(zip(got, expected)) if g != e]
        if wrong:
            k = wrong[0]
            problems.append(f"{name}:{k + 2}: index {got[k]!r} out of order: the test file has index {expected[k]!r} "
                            f"in this position (rows must follow the test file's order; {len(wrong)} rows out of place)")
    return problems


MAX_ENTRY_BYTES = 256 << 20   # the largest test file (QQP) is about 20 MB of predictions


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int | None = None) -> tuple[bytes | None, str]:
    """An entry's bytes, streamed with a size cap: (None, why) for an entry that is too large
    (whatever its header claims), encrypted, damaged (bad CRC) or compressed in a way zipfile
    cannot read."""
    limit = MAX_ENTRY_BYTES if limit is None else limit
    if info.file_size > limit:
        return None, f"{info.file_size:,} bytes uncompressed: more than a submission file can be ({limit:,})"
    if info.flag_bits & 0x1:
        return None, "encrypted: the server reads plain zip entries"
    chunks, size = [], 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    return None, f"more than {limit:,} bytes uncompressed"
                chunks.append(chunk)
    except NotImplementedError as e:
        return None, f"cannot be read: {str(e)[:200]}"
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError, zlib.error) as e:
        return None, f"damaged in the zip ({str(e)[:200]})"
    return b"".join(chunks), ""


def check_zip(path: str | Path, source, incomplete: bool | None = None) -> CheckReport:
    """Validate a submission zip against the test files of ``source``. With ``incomplete``
    (default: the file name ends in ``_INCOMPLETE.zip``) missing files are listed in
    ``missing`` instead of being problems; everything present is checked either way."""
    path = Path(path)
    rep = CheckReport(path, is_incomplete_name(path) if incomplete is None else incomplete)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise UserError(f"{path} is not a readable zip file ({str(e)[:200]})") from None
    files = submission_files()
    by_name = {f.name: f for f in files}
    with zf:
        entries = {}
        for info in zf.infolist():
            if info.is_dir():
                continue
            base = info.filename.rsplit("/", 1)[-1]
            if "/" in info.filename:
                if base in by_name:
                    rep.problems.append(f"{base}: is in the folder {info.filename.rsplit('/', 1)[0]!r} of the zip; "
                                        f"the server expects the files at its top level")
                else:
                    rep.problems.append(f"{info.filename}: unexpected file in the zip")
                continue
            if base not in by_name:
                rep.problems.append(f"{base}: unexpected file in the zip (the server expects {', '.join(by_name)})")
                continue
            entries[base] = info
        for f in files:
            if f.name not in entries:
                if rep.incomplete:
                    rep.missing.append(f.name)
                elif not any(p.startswith(f"{f.name}: is in the folder") for p in rep.problems):
                    rep.problems.append(f"{f.name}: missing (the server expects it; a zip named *{INCOMPLETE_SUFFIX}.zip "
                                        f"may lack files)")
                continue
            expected, origin = _expected_index(source, f)
            if expected is None:
                rep.problems.append(f"{f.name}: cannot be checked against its test data: {origin}")
                continue
            raw, why = read_entry(zf, entries[f.name])
            if raw is None:
                rep.problems.append(f"{f.name}: {why}")
                continue
            rep.problems += check_file(f, raw, expected, origin)
            rep.rows[f.name] = max(0, raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1) - 1)
    return rep


