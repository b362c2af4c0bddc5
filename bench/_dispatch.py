"""Counting what a piece of torch code asks of the dispatcher: every operator call, the calls
that make the host wait for the device (``SYNCS``), and the Python scalars lifted into tensors
(``LIFTS``: ``torch.tensor(x)``, a host-to-device copy on a GPU). Runs on CPU, where the
operators called are the ones a GPU would launch (a few CPU-only kernels aside).

    with OpCounter() as c:
        step()
    c.calls, c.syncs, c.lifts, c.by_op

Tests (no host sync in a training step) and ``bench`` (operator calls per step, the cost
model's host time) both count with it.
"""

from __future__ import annotations

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode

SYNCS = frozenset({"aten._local_scalar_dense", "aten.item", "aten.is_nonzero", "aten.equal"})
LIFTS = frozenset({"aten.lift_fresh", "aten.lift_fresh_copy", "aten.scalar_tensor"})


def _name(func) -> str:
    return f"{func.namespace}.{func._opname}" if hasattr(func, "_opname") else str(func).split(".default")[0]


class OpCounter(TorchDispatchMode):
    """Operator calls under the dispatcher while active (``by_op``: calls per ``aten.name``)."""

    def __init__(self):
        super().__init__()
        self.by_op: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.by_op[_name(func)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def calls(self) -> int:
        return sum(self.by_op.values())

    @property
    def syncs(self) -> dict[str, int]:
        return {k: v for k, v in self.by_op.items() if k in SYNCS}

    @property
    def lifts(self) -> dict[str, int]:
        return {k: v for k, v in self.by_op.items() if k in LIFTS}
