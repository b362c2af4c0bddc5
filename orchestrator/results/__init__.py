"""A run's results: its result store as DataFrames, the best configuration per (model, task),
the leaderboard tables and their files. Pure of torch and Ray; matplotlib only when pictures are
drawn.

load        records -> per-trial and per-evaluation frames -> ``board.Leaderboard``
board       the ``Leaderboard`` (results, configs, models), model labels
budget      what a run's figures measured (training rows, epochs, early stopping, seeds)
values      cell values (``finite``, ``fmt``)
select      the best configuration per (model, task) from the frames (the rules are in its doc)
best        a run's best configuration of one model for a task, its seed and record (submit, teacher)
score       the GLUE Score rule
columns     table columns from the task definitions
tables      the printed tables
compact     the compact-models table (DistilBERT, TinyBERT, MiniLM, ...)
reference   the published figures beside ours
kinds       kinds of training side by side per student; the teacher's reference row
tidy        every evaluation as one tidy frame (``trials.csv``)
curves      learning curves of each group's best configuration (pure)
compare     several runs side by side
render      Markdown, LaTeX and HTML of a table
report      the documents of all the tables
formats     export formats and their parsing
figures     matplotlib figures, PNG/PDF/SVG (imported only to draw)
drawn       pictures drawn once: kept while their data and code are unchanged; drawing processes
export      the files of ``glue-sweep leaderboard``
uncertainty bootstrap intervals, paired tests, held-out selection, ensembles over stored outputs (pure)
confidence  a run's uncertainty and ensemble frames: each cell's stored outputs and dev labels
live        the live view of a sweep from its records (counts, running trials, best, ETA; rich)
"""
