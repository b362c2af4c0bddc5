"""A run's results: its result store as DataFrames, the best configuration per (model, task),
the leaderboard tables and their files. Pure of torch and ray; matplotlib only when pictures
are drawn.

* ``load``: records -> per-trial and per-evaluation frames -> :class:`board.Leaderboard`;
* ``select``: the best configuration per (model, task) (the rules are in its doc);
* ``score``: the GLUE Score rule; ``columns``: table columns from the task definitions;
* ``tables``, ``compact``, ``reference``: the tables, the published figures beside ours;
* ``render``: Markdown, LaTeX and HTML of a table; ``report``: the documents of all of them;
* ``figures``: the pictures; ``export``: the files of ``glue-sweep leaderboard``.
"""
