"""Helpers of the tests marked ``bad_input`` and ``hardening`` (once tests/test_bad_input.py and
tests/test_hardening.py, now beside the modules they exercise): every bad input ends in one
clear line (``UserError`` / exit code 2), never a traceback, a hang, a silent reuse or a
half-written result.

Hypothesis settings, junk values, a minimal valid spec text, and two ways of running the CLI in
process (exit code, stdout, stderr). The generated cases are counted in conftest's
``BAD_INPUT_CASES`` and reported at the end of the run."""

from __future__ import annotations

import contextlib
import io
from contextlib import redirect_stderr, redirect_stdout

from hypothesis import HealthCheck, strategies as st

from orchestrator.cli.main import main

SETTINGS = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=30), st.lists(st.integers(-5, 300), max_size=4),
                 st.dictionaries(st.text(max_size=8), st.integers(), max_size=3))


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = main(argv)
    except SystemExit as e:
        rc = e.code
    return rc, out.getvalue(), err.getvalue()


BASE = "name: m\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n"


def cli(argv, cwd=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def one_line(err: str) -> None:
    assert err.count("\n") == 1 and err.startswith("glue-sweep: error:") and "Traceback" not in err, err
