"""``glue-sweep submit``: a GLUE test-server submission (a zip of prediction files) from a
sweep's best configurations, and ``glue-sweep submit --check``, its validator.

For every task of one model, the configuration the leaderboard chose (``results.load.build``:
best batch size and learning rate, the epoch they were judged at) is re-trained with the
trial record's own settings (model_ref, init, batch size, learning rate, epochs, seed,
max_train_examples, max_length, eval_every). With several seeds, the seed that scored best at
the chosen epoch is used. Training keeps the trial's schedule (its ``epochs``: warm-up and
decay are unchanged) and stops at the chosen epoch, so the weights are the ones the leaderboard
scored; the re-trained dev score is printed beside the recorded one as a check. The model then
predicts its test split(s); AX is predicted with the MNLI model. The sweep keeps no weights
(``keep_best_checkpoint`` is not implemented), so every task is trained again.

The files follow :func:`submission_files`, derived from the task definitions: one per test
split (``MNLI-m.tsv``, ``MNLI-mm.tsv`` from the split tags), header ``index<TAB>prediction``,
one row per test example in the test file's order with its index; a classification prediction
is the task's file value ``Task.labels[class id]`` (0/1 for CoLA, SST-2, MRPC, QQP, WNLI;
entailment/neutral/contradiction for MNLI and AX; entailment/not_entailment for QNLI and RTE);
a regression prediction is clipped to ``Task.label_range`` with three decimals (STS-B).

A zip is written to a temporary file, validated, then renamed into place; one that fails the
validator is never written. When files are missing (no result for a task, or its test or
training data absent), the zip is named ``*_INCOMPLETE.zip``, the missing files and why are
listed, and the exit code is 1. The validator treats a zip whose name ends in
``_INCOMPLETE.zip`` the same way: missing files are listed, the rest is validated.

files      the server's files and their conventions
validate   check_zip (``submit --check``)
choose     plan(): the configuration re-trained per task, the files that will be missing
predict    submit(): re-train, predict, write and validate the zip
"""

from .choose import Choice, Plan, plan
from .files import EXIT_INCOMPLETE, HEADER, SubmissionFile, incomplete_name, is_incomplete_name, submission_files
from .predict import submit, train_and_predict, write_zip
from .validate import CheckReport, check_file, check_zip

__all__ = ["Choice", "Plan", "plan", "EXIT_INCOMPLETE", "HEADER", "SubmissionFile", "incomplete_name",
           "is_incomplete_name", "submission_files", "submit", "train_and_predict", "write_zip", "CheckReport",
           "check_file", "check_zip"]
