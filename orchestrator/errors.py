"""The one exception type for bad input: the CLI prints its message as one line, exit 2; and
``within``, a check of something remote (a cluster, a store) that refuses in one line when it
gets no answer in time instead of hanging."""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Bad input from the user (a file, a flag, a spec): message says what and where."""


def within(seconds: float, fn: Callable[[], T], late: str) -> T:
    """``fn()``, or ``UserError(late)`` when it has not returned after ``seconds`` (it goes on in
    a daemon thread, which never holds the process up). What ``fn`` raises is raised here."""
    out: list = []

    def run():
        try:
            out.append((True, fn()))
        except BaseException as e:   # handed to the caller's thread
            out.append((False, e))

    t = threading.Thread(target=run, name="check-within", daemon=True)
    t.start()
    t.join(seconds)
    if not out:
        raise UserError(late)
    ok, value = out[0]
    if not ok:
        raise value
    return value
