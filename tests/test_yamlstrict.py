"""The strict YAML loader (orchestrator/yamlstrict.py) through the spec parser: YAML 1.2 scalars,
alias bombs and oversized documents refused quickly."""

from __future__ import annotations

import time

import pytest
from hostile import BASE

from orchestrator.errors import UserError
from orchestrator.spec import sweep as S


@pytest.mark.hardening
def test_yaml_12_scalars():
    sw = S.parse(BASE + "search: {learning_rate: [1e-4, 5.4e-5]}\nepochs: 010\n", "s.yaml")
    assert sw.learning_rates == [1e-4, 5.4e-5] and sw.epochs == 10   # 010 is ten, not octal eight


def _laughs(levels: int) -> str:
    doc = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(levels):
        doc += f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n"
    return doc


@pytest.mark.hardening
def test_billion_laughs_and_huge_grids_fail_fast():
    t0 = time.monotonic()
    with pytest.raises(UserError, match="expands to more than"):
        S.parse(_laughs(9), "s.yaml")
    with pytest.raises(UserError, match="at most 64,000"):
        S.parse(BASE + "description: '" + "x" * 70_000 + "'\n", "s.yaml")
    many = ", ".join(f"{i + 1}e-9" for i in range(5000))   # 5000 x 5000 x 28 tasks: refused before expansion
    with pytest.raises(UserError, match="at most 100,000"):
        S.parse("name: m\nmodels: miniatures\ntasks: all\nsearch: {batch_size: [8, 16], learning_rate: [" + many
                + "]}\n", "s.yaml")
    assert time.monotonic() - t0 < 30
