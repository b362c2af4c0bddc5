"""What commands print (orchestrator/cli/console.py): error lines."""

from __future__ import annotations

import pytest

from orchestrator.cli.console import error_line


@pytest.mark.hardening
def test_error_lines_are_capped_and_keep_their_place():
    line = error_line("data/RTE/train.tsv:7: bad row " + "x" * 10_000_000)
    assert len(line) <= 300 and line.startswith("data/RTE/train.tsv:7: bad row")
