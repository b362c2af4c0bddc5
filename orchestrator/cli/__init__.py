"""The ``glue-sweep`` command line: parsers, handlers and what a command prints. The only
layer that turns a ``UserError`` into one line on stderr and an exit code.

main        the parser of every command; plan, run, submit-job, dashboard, status, leaderboard, speed
train       ``glue-sweep train``: one trial, fine-tuned or distilled, its table and ``metrics.json``
submit      ``glue-sweep submit`` (and ``--check``): parser and handler
args        argument types and groups shared by the commands (data source, device)
console     what commands print: train progress and table, sweep status, dashboard login
preflight   checks before work starts (``--device``), a local Ray on loopback
job_entry   a Ray Job's entrypoint: names its interpreter, checks its packages, runs ``glue-sweep run``
logs        where the library's log lines go: stderr, plain, INFO (``-v`` DEBUG, ``-q`` WARNING)
"""
