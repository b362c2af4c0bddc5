"""Where the library's log lines go when ``glue-sweep`` runs: the only place that configures logging.

Library modules log to their own ``logging.getLogger(__name__)`` (``orchestrator.*``) and never
configure logging. A command shows those lines on stderr as plain text (``%(message)s``: the
lines a user saw before they were log records), INFO by default, DEBUG with ``-v``, WARNING with
``-q``. What a command's result is (tables, summaries) is printed by the handlers directly.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

ROOT = "orchestrator"   # the package's logger: every library module's logger is below it


class StderrHandler(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a line is logged (redirected, captured)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:   # always the current sys.stderr
        pass


def level(verbose: bool = False, quiet: bool = False) -> int:
    """The level of ``-v`` (DEBUG), ``-q`` (WARNING) or neither (INFO)."""
    return logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO


@contextmanager
def configured(at: int = logging.INFO) -> Iterator[logging.Logger]:
    """The ``orchestrator`` logger writing its lines, at ``at`` and above, to stderr for as long
    as the command runs; as it was before afterwards (``main`` may run again in one process)."""
    logger = logging.getLogger(ROOT)
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    before = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(at)
    logger.propagate = False   # shown once, whatever handlers other libraries put on the root logger
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(before[0])
        logger.propagate = before[1]


def quiet_progress() -> None:
    """Leave out the progress lines of the command running now (its own ``--quiet``)."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
