"""The documentation's references hold: relative links reach their files (and headings), every
`make <target>` is a Makefile target, every `glue-sweep <command>` is a subcommand of the CLI.

Stdlib and pytest only, no project imports: the subcommands are read from the parser's source
(``add_parser("name"`` anywhere under ``orchestrator/``), the targets from the Makefile.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest


def _root() -> Path:
    """The repository root: the nearest directory above this file with a Makefile and orchestrator/."""
    for d in Path(__file__).resolve().parents:
        if (d / "Makefile").is_file() and (d / "orchestrator").is_dir():
            return d
    raise RuntimeError(f"no repository root above {__file__}")


ROOT = _root()


def _doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "ARCHITECTURE.md"]
    files += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "bench" / "results").glob("*.md"))
    return [f for f in files if f.is_file()]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


_FENCE = re.compile(r"^\s*(```|~~~)")
_SPAN = re.compile(r"(`+)(.+?)\1")


def _split(text: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(prose lines with code spans blanked, code pieces): each as (line number, text); a code
    piece is one line of a fenced block or one inline code span."""
    prose, code = [], []
    fenced = False
    for n, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            code.append((n, line))
            continue
        code += [(n, m.group(2).strip()) for m in _SPAN.finditer(line)]
        prose.append((n, _SPAN.sub(lambda m: " " * len(m.group(0)), line)))
    return prose, code


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|__", "", heading.strip()).lower()
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if m:
            base = _slug(m.group(1))
            k = seen.get(base, 0)
            seen[base] = k + 1
            out.add(base if k == 0 else f"{base}-{k}")
    return out


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_relative_links_reach_their_targets():
    bad = []
    for doc in _doc_files():
        prose, _ = _split(doc.read_text(encoding="utf-8"))
        for n, line in prose:
            for target in _LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):   # http(s):, mailto: ...
                    continue
                path, _, anchor = target.partition("#")
                dest = (doc.parent / path).resolve() if path else doc
                where = f"{_rel(doc)}:{n} -> {target}"
                if not dest.exists():
                    bad.append(f"{where} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    bad.append(f"{where} (no such heading)")
    if bad:
        pytest.fail(f"{len(bad)} broken link(s): " + "; ".join(bad), pytrace=False)


def _make_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-][A-Za-z0-9_.\- ]*?)\s*::?(?!=)(.*)$", line)
        if not m:
            continue
        if m.group(1) == ".PHONY":
            targets.update(m.group(2).split())
        elif "$" not in m.group(1):
            targets.update(m.group(1).split())
    return targets


# `make x` at the start of a code span or a code line, after an optional prompt and variables
_MAKE = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*make\s+(.*)$")


def test_make_targets_exist():
    targets = _make_targets()
    assert {"sweep", "test"} <= targets, f"Makefile targets not read: {sorted(targets)}"
    bad = []
    for doc in _doc_files():
        _, code = _split(doc.read_text(encoding="utf-8"))
        for n, piece in code:
            m = _MAKE.match(piece.strip())
            if not m:
                continue
            words = [w for w in m.group(1).split() if not w.startswith("-") and "=" not in w]
            name = words[0].strip("[]") if words else ""
            if name and not name.startswith("#") and name not in targets:
                bad.append(f"{_rel(doc)}:{n} make {name}")
    if bad:
        pytest.fail(f"{len(bad)} make target(s) not in the Makefile: " + "; ".join(bad), pytrace=False)


def _subcommands() -> set[str]:
    found = set()
    for py in (ROOT / "orchestrator").rglob("*.py"):
        found.update(re.findall(r"""add_parser\(\s*["']([A-Za-z0-9_-]+)["']""", py.read_text(encoding="utf-8")))
    return found


_COMMAND = re.compile(r"(?<![\w.-])glue-sweep[ \t]+([a-z][a-z0-9_-]*)")


def test_cli_subcommands_exist():
    commands = _subcommands()
    assert {"run", "plan"} <= commands, f"subcommands not read from orchestrator/: {sorted(commands)}"
    bad = []
    for doc in _doc_files():
        _, code = _split(doc.read_text(encoding="utf-8"))
        for n, piece in code:
            bad += [f"{_rel(doc)}:{n} glue-sweep {c}" for c in _COMMAND.findall(piece) if c not in commands]
    if bad:
        pytest.fail(f"{len(bad)} glue-sweep subcommand(s) the CLI does not have: " + "; ".join(bad), pytrace=False)


def test_the_readme_is_a_doorway():
    """README.md: at most 12 kB, the two commands first, and a link to every page of docs/."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 12_288, f"README.md is {len(readme.encode()):,} bytes (at most 12,288)"
    first_block = readme.split("```")[1]
    assert "make sweep" in first_block and "make test" in first_block
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    unlinked = [p for p in pages if f"(docs/{p}" not in readme]
    assert not unlinked, f"README.md links no docs/ page for: {unlinked}"
