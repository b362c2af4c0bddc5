"""Task files are read as sweep files are: the strict YAML 1.2 loader (a repeated key is an error
naming ``file:line``) into pydantic models (an unknown key is ``file:line`` with a did-you-mean),
every error one line."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserError
from orchestrator.registry import tasks

GOOD = """\
name: Toy
kind: classification
labels: [a, b]
metrics: [accuracy]
text_columns: [sentence]
splits:
  train: {file: Toy/train.tsv}
  dev: {file: Toy/dev.tsv, eval: true}
hub: {config: toy, splits: {train: train, dev: validation}}
"""


def _load(tmp_path, text: str):
    path = tmp_path / "toy.yaml"
    path.write_text(text, encoding="utf-8")
    return path, tasks._parse(path)


def _error(tmp_path, text: str) -> tuple[str, str]:
    path = tmp_path / "toy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as e:
        tasks._parse(path)
    msg = str(e.value)
    assert "\n" not in msg
    return str(path), msg


def test_a_good_file_loads(tmp_path):
    _, t = _load(tmp_path, GOOD)
    assert t.name == "Toy" and t.labels == ("a", "b") and set(t.splits) == {"train", "dev"}


def test_a_repeated_key_is_an_error_naming_its_line(tmp_path):
    path, msg = _error(tmp_path, GOOD.replace("metrics: [accuracy]\n", "metrics: [accuracy]\nlabels: [x, y]\n"))
    assert msg == f"{path}:5: duplicate key 'labels' (first on line 3)"


def test_a_repeated_key_inside_a_split_is_an_error_naming_its_line(tmp_path):
    path, msg = _error(tmp_path, GOOD.replace("{file: Toy/dev.tsv, eval: true}",
                                              "{file: Toy/dev.tsv, eval: true, file: Toy/other.tsv}"))
    assert msg == f"{path}:8: duplicate key 'file' (first on line 8)"


def test_an_unknown_key_names_its_line_and_the_key_meant(tmp_path):
    path, msg = _error(tmp_path, GOOD + "metric: [f1]\n")
    assert msg == f"{path}:10: unknown key 'metric' (did you mean 'metrics'?)"


def test_an_unknown_key_in_a_section_names_its_line_and_the_section(tmp_path):
    path, msg = _error(tmp_path, GOOD.replace("{file: Toy/train.tsv}", "{file: Toy/train.tsv, row: 5}"))
    assert msg == f"{path}:7: unknown key 'row' in splits/train (did you mean 'rows'?)"
    path, msg = _error(tmp_path, GOOD.replace("config: toy,", "config: toy, repos: x,"))
    assert msg == f"{path}:9: unknown key 'repos' in hub (did you mean 'repo'?)"


def test_yaml_1_2_scalars(tmp_path):
    """``no`` is a string (YAML 1.1 read it as false), so a label named ``no`` stays ``no``."""
    _, t = _load(tmp_path, GOOD.replace("labels: [a, b]", "labels: [no, yes]"))
    assert t.labels == ("no", "yes")


def test_the_registry_reads_the_strict_way(tasks_dir):
    (tasks_dir / "rte.yaml").write_text((tasks_dir / "rte.yaml").read_text(encoding="utf-8") + "kind: regression\n",
                                        encoding="utf-8")
    with pytest.raises(UserError, match=r"rte\.yaml:\d+: duplicate key 'kind'"):
        tasks.all_tasks()
