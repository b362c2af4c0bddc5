"""Small stand-ins, in the exact GLUE column layout, for the files too large to carry:
MNLI (train, dev and test, matched and mismatched), QQP (train, dev, test) and QNLI's train.

``make_glue_dir(dst, real)`` builds a complete GLUE directory: every real task of ``real``
linked in, plus these files written. Rows are generated from templates with a seed, so the
content is plausible and learnable (the label follows from the words) and the same each run.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

SUBJECTS = ["the cat", "a young boy", "the old woman", "two dogs", "the committee", "my neighbour", "a tourist",
            "the teacher", "the band", "a farmer"]
VERBS = [("is sleeping", "is awake"), ("is eating an apple", "is not eating"), ("runs in the park", "sits at home"),
         ("plays the guitar", "never plays music"), ("reads a newspaper", "cannot read"), ("sings loudly", "is silent")]
PLACES = ["in the morning", "near the river", "at the station", "after lunch", "during the storm", "on the roof"]
GENRES_M = ["fiction", "government", "slate", "telephone", "travel"]
GENRES_MM = ["facetoface", "letters", "nineeleven", "oup", "verbatim"]


def _parse(s: str) -> str:
    words = s.rstrip(".").split()
    return "( " + " ".join(words) + " )"


def _nli_pair(rng: random.Random):
    subj, (verb, neg), place = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES)
    premise = f"{subj.capitalize()} {verb} {place}."
    label = rng.choice(["entailment", "neutral", "contradiction"])
    if label == "entailment":
        hyp = f"{subj.capitalize()} {verb}."
    elif label == "contradiction":
        hyp = f"{subj.capitalize()} {neg}."
    else:
        other = rng.choice([p for p in PLACES if p != place])
        hyp = f"{subj.capitalize()} {verb} {other} too, probably."
    return premise, hyp, label


def _write(path: Path, header: list[str] | None, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


MNLI_BASE = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
             "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]


def write_mnli(root: Path, n_train: int = 600, n_dev: int = 120, n_test: int = 100, seed: int = 1) -> None:
    rng = random.Random(seed)

    def rows(n, genres, n_labels):
        out = []
        for i in range(n):
            p, h, lab = _nli_pair(rng)
            pid = str(rng.randint(10000, 99999))
            row = [str(i), pid, pid + rng.choice("enc"), rng.choice(genres), _parse(p), _parse(h),
                   "(ROOT " + _parse(p) + ")", "(ROOT " + _parse(h) + ")", p, h]
            if n_labels:
                row += [lab] * n_labels + [lab]
            out.append(row)
        return out

    d = root / "MNLI"
    _write(d / "train.tsv", MNLI_BASE + ["label1", "gold_label"], rows(n_train, GENRES_M, 1))
    dev_head = MNLI_BASE + ["label1", "label2", "label3", "label4", "label5", "gold_label"]
    _write(d / "dev_matched.tsv", dev_head, rows(n_dev, GENRES_M, 5))
    _write(d / "dev_mismatched.tsv", dev_head, rows(n_dev, GENRES_MM, 5))
    _write(d / "test_matched.tsv", MNLI_BASE, rows(n_test, GENRES_M, 0))
    _write(d / "test_mismatched.tsv", MNLI_BASE, rows(n_test, GENRES_MM, 0))


def _question(rng: random.Random):
    subj, (verb, neg), place = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES)
    q1 = f"Why does {subj} {verb.split(' ', 1)[1] if ' ' in verb else verb} {place}?"
    dup = rng.random() < 0.4
    if dup:
        q2 = f"What is the reason {subj} {verb} {place}?"
    else:
        q2 = f"How often does {rng.choice(SUBJECTS)} say that it {neg}?"
    return q1, q2, "1" if dup else "0"


def write_qqp(root: Path, n_train: int = 600, n_dev: int = 150, n_test: int = 100, seed: int = 2) -> None:
    rng = random.Random(seed)
    d = root / "QQP"

    def rows(n, start):
        out = []
        for i in range(n):
            q1, q2, lab = _question(rng)
            out.append([str(start + i), str(2 * (start + i) + 1), str(2 * (start + i) + 2), q1, q2, lab])
        return out

    _write(d / "train.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], rows(n_train, 0))
    _write(d / "dev.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], rows(n_dev, 500000))
    _write(d / "test.tsv", ["id", "question1", "question2"], [[str(i), q1, q2] for i, (q1, q2, _) in
                                                             enumerate(_question(rng) for _ in range(n_test))])


def write_qnli_train(root: Path, n_train: int = 600, seed: int = 3) -> None:
    rng = random.Random(seed)
    rows = []
    for i in range(n_train):
        subj, (verb, neg), place = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES)
        question = f"Where does {subj} {verb.split(' ', 1)[-1]}?"
        answer = rng.random() < 0.5
        sentence = f"{subj.capitalize()} {verb} {place}." if answer else f"{rng.choice(SUBJECTS).capitalize()} {neg}."
        rows.append([str(i), question, sentence, "entailment" if answer else "not_entailment"])
    _write(root / "QNLI" / "train.tsv", ["index", "question", "sentence", "label"], rows)


def make_glue_dir(dst: Path, real: Path) -> Path:
    """A full GLUE directory at ``dst``: the real tasks of ``real`` linked file by file,
    MNLI and QQP written whole, QNLI's missing train written beside its real dev/test."""
    dst = Path(dst)
    for task_dir in sorted(Path(real).iterdir()):
        if not task_dir.is_dir():
            continue
        (dst / task_dir.name).mkdir(parents=True, exist_ok=True)
        for f in task_dir.iterdir():
            link = dst / task_dir.name / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
    write_mnli(dst)
    write_qqp(dst)
    if not (dst / "QNLI" / "train.tsv").exists():
        write_qnli_train(dst)
    return dst
