"""Extension points of a running sweep, for tests that inject faults and benchmarks that time it.

``GLUE_SWEEP_HOOKS`` names a module (a dotted name, or a path to a ``.py`` file) whose
functions the sweep calls at fixed points; production code defines none:

* ``trial_start(trial)`` in the worker, before the trial prepares (may raise or sleep), for
  each member of a fused unit (one that raises leaves its unit, the others go on);
* ``after_prepare(trial, prepared)`` in the worker, once the model is built (may wrap it); a fused
  unit calls it with its first member, and in a distillation sweep the driver calls it for a
  teacher it re-trains;
* ``unit_ready(trials, unit)`` in the worker, once a fused unit's stacked model is built, before
  its first step (``trials``: its members', in the order of ``unit.members``; may wrap
  ``unit.net.losses`` or ``unit.scorer.evaluate_outputs``);
* ``trial_end(trial, result)`` in the worker, when the trial (or each member of a fused unit)
  has trained and reported its last (``bench.engine`` times the workers with it);
* ``before_record_write(record, writes_so_far)`` in the driver, before each record write
  (may raise ``OSError``).

Every ``GLUE_SWEEP_*`` variable travels to the workers, so a hook module can read its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from functools import lru_cache

HOOK_ENV = "GLUE_SWEEP_HOOKS"


@lru_cache(maxsize=4)
def _load(name: str):
    if name.endswith(".py"):
        spec = importlib.util.spec_from_file_location("glue_sweep_hooks", name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def call(point: str, *args) -> None:
    """Call the hook module's ``point`` function, if a module is named and defines it."""
    name = os.environ.get(HOOK_ENV)
    if not name:
        return
    fn = getattr(_load(name), point, None)
    if fn is not None:
        fn(*args)
