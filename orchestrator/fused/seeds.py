"""A fused unit whose members differ in seed as well as learning rate: each member is what its
solo trial would be, from its own seed's initial weights, on its own seed's batch order and
dropout masks.

The members of one seed form a group, adjacent in the stack (``Seeds.row_of``: rows in seed
order; a member that leaves keeps the others in order). ``Seeds`` builds each further seed's
model as its solo trial builds it (``runner.seeded_model``: every generator seeded, then the
model) and keeps a torch generator per seed that starts where that solo trial's default
generator starts training (the first seed's: the state the unit is built in, which a one-seed
unit draws from). Each epoch, every group draws its batch order from its own numpy generator;
each step, every group's batch is gathered as its solo trial gathers it (its rows, its width,
its micro-batches), and ``stacked.StackedBert.group_losses`` runs each group's members on their
own batch, with their own dropout generator, from a split of the stacked weights: no padding to
another seed's width, one draw per seed (shared by its members), one backward pass for all. So
a member computes its solo trial's numbers as a one-seed unit's member does, to float rounding.
A group that has no further micro-batch in a step (its batch is an epoch's short one) is given
zeros and draws nothing; a group whose members have all left is not run.

Nothing here reads a device value back: widths, row counts and shares are the host's.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import TrialConfig
from ..train import runner
from ..train.batches import DeviceRows, batch_widths
from .stacked import Group


def _generator_here(device: torch.device) -> torch.Generator:
    """A generator in the state of ``device``'s default generator now."""
    if device.type == "cuda":
        g = torch.Generator(device=device)
        g.set_state(torch.cuda.get_rng_state(device))
    else:
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
    return g


class Seeds:
    """The seeds of a unit's members (``configs``; ``p`` prepared for the first): ``order`` the
    distinct seeds, ``row_of[i]`` member i's row in the stack (rows in seed order), ``group`` each
    row's seed (its index in ``order``), ``models`` each seed's initial model (``p.model`` the
    first's; dropped once stacked). One seed: rows in member order, nothing else changes."""

    def __init__(self, p: runner.Prepared, configs: list[TrialConfig]):
        seeds = [c.seed for c in configs]
        self.order = list(dict.fromkeys(seeds))
        by_row = sorted(range(len(configs)), key=lambda i: (self.order.index(seeds[i]), i))
        self.row_of = [by_row.index(i) for i in range(len(configs))]
        self.group = [self.order.index(seeds[i]) for i in by_row]
        self.models: list | None = [p.model]
        self.generators: list[torch.Generator] = []
        if not self.many:
            return
        cpu = torch.get_rng_state()
        gpu = torch.cuda.get_rng_state(p.device) if p.device.type == "cuda" else None
        self.generators.append(_generator_here(p.device))
        for s in self.order[1:]:
            self.models.append(runner.seeded_model(p.spec, p.task, p.config, s).to(p.device))
            self.generators.append(_generator_here(p.device))
        torch.set_rng_state(cpu)   # the default generators as they were
        if gpu is not None:
            torch.cuda.set_rng_state(gpu, p.device)

    @property
    def many(self) -> bool:
        return len(self.order) > 1

    def keep(self, rows: list[int]) -> None:
        """Only these rows stay (ascending: the groups stay adjacent)."""
        self.group = [self.group[r] for r in rows]

    def runs(self) -> list[tuple[int, int, int]]:
        """(seed index, first row, row after the last) of each group still in the stack, in row order."""
        out: list[tuple[int, int, int]] = []
        for row, g in enumerate(self.group):
            if out and out[-1][0] == g:
                out[-1] = (g, out[-1][1], row + 1)
            else:
                out.append((g, row, row + 1))
        return out

    def epochs(self, p: runner.Prepared, data: DeviceRows, rngs: list[np.random.Generator]):
        """One epoch's steps: per step, each seed's (rows on the device, width), as its solo trial's."""
        cfg, out = p.config, []
        for rng in rngs:
            order = runner.batch_order(p.train.lengths, cfg.batch_size, rng, cfg.group_by_length)
            out.append(data.epoch(order, batch_widths(p.train.lengths, order, cfg.batch_size, cfg.max_length,
                                                      bucketed=cfg.compile)))
        return zip(*out)

    def rows_of(self, batches, row: int) -> int:
        """How many rows the member at ``row`` trains on in this step's ``batches``."""
        return len(batches[self.group[row]][0])

    def parts(self, data: DeviceRows, batches, micro: int) -> list:
        """One step's micro-batches for every member, as ``fused_step`` takes them: ({"groups":
        [stacked.Group, ...]}, None, 1.0), each group's losses weighted by its own share."""
        runs = self.runs()
        per = {g: data.parts(*batches[g], micro) for g, _, _ in runs}
        out = []
        for j in range(max(len(x) for x in per.values())):
            groups = [Group(lo, hi, self.generators[g], *(per[g][j] if j < len(per[g]) else (None, None, 0.0)))
                      for g, lo, hi in runs]
            out.append(({"groups": groups}, None, 1.0))
        return out
