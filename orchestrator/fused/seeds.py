"""A fused unit whose members differ in seed as well as learning rate: each member is what its
solo trial would be, from its own seed's initial weights, on its own seed's batch order and
dropout masks.

The members of one seed form a group. ``Seeds`` builds each further seed's model as its solo
trial builds it (``runner.seeded_model``: every generator seeded, then the model), and keeps a
torch generator per seed that starts where that solo trial's default generator starts training
(the first seed's: the state the unit is built in, as a one-seed unit draws from it). Each
epoch, every group draws its batch order from its own numpy generator. Each step, every group's
batch is gathered as its solo trial gathers it (its rows, its width), then padded to the widest
group's rows and width and expanded to the members: inputs ``[K, B, L]``, labels ``[K, B]``.
Padded key positions are masked and padded rows weigh nothing in a member's loss, so each
member computes its solo trial's numbers, to float summation order (sums over the padded width
add exact zeros, possibly in another order: the tracking test's tolerance, not bit-equality).
Dropout masks are drawn per group at that group's own shape, from its generator, so each
group's random stream is its solo trial's; then padded and expanded. Members of one seed share
one draw. A group whose members have all left draws nothing more.

Nothing here reads a device value back: widths and row counts are the host's, and a member's
share of a batch split in micro-batches is counted on the device.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

from ..config import TrialConfig
from ..train import runner
from ..train.batches import DeviceRows, batch_widths


def _generator_here(device: torch.device) -> torch.Generator:
    """A generator in the state of ``device``'s default generator now."""
    if device.type == "cuda":
        g = torch.Generator(device=device)
        g.set_state(torch.cuda.get_rng_state(device))
    else:
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
    return g


def _pad_to(t: torch.Tensor, shape) -> torch.Tensor:
    """``t`` padded with zeros at the end of each dimension to ``shape``."""
    pads = []
    for have, want in zip(reversed(t.shape), reversed(shape)):
        pads += [0, want - have]
    return functional.pad(t, pads) if any(pads) else t


class Draws:
    """One micro-batch of a several-seed unit as ``stacked.StackedBert`` sees it: each group's
    (rows, width) or None (no rows: it draws nothing), the groups' generators, each member's
    group (``index``, [K] on the device), its real rows (``valid``, [K, B]) and their count
    (``rows``, [K], at least 1)."""

    def __init__(self, dims: list[tuple[int, int] | None], generators: list[torch.Generator],
                 index: torch.Tensor, valid: torch.Tensor):
        self.dims, self.generators, self.index = dims, generators, index
        self.valid = valid.to(torch.float32)
        self.rows = self.valid.sum(dim=1).clamp_min(1.0)

    def masks(self, p: float, shape, b: int, l: int) -> torch.Tensor:
        """Each member's dropout mask, [K, *shape(b, l)]: its group's, drawn at the group's own
        ``shape(rows, width)`` as its solo trial's ``functional.dropout`` draws it on CPU (a
        Bernoulli draw scaled by 1/(1-p)), then padded with zeros."""
        full = shape(b, l)
        out = []
        for dims, g in zip(self.dims, self.generators):
            if dims is None:
                out.append(torch.zeros(full, dtype=torch.float32, device=self.index.device))
                continue
            m = torch.empty(shape(*dims), dtype=torch.float32, device=self.index.device)
            out.append(_pad_to(m.bernoulli_(1 - p, generator=g).div_(1 - p), full))
        return torch.stack(out).index_select(0, self.index)


class Seeds:
    """The seeds of a unit's members (``configs``; ``p`` prepared for the first): ``order`` the
    distinct seeds, ``group`` each member's (by its row in the stack), ``models`` each seed's
    initial model (``p.model`` the first's; dropped once stacked). One seed: nothing changes."""

    def __init__(self, p: runner.Prepared, configs: list[TrialConfig]):
        seeds = [c.seed for c in configs]
        self.order = list(dict.fromkeys(seeds))
        self.group = [self.order.index(s) for s in seeds]
        self.device = p.device
        self.models: list | None = [p.model]
        self.generators: list[torch.Generator] = []
        self.index = torch.tensor(self.group, dtype=torch.long, device=p.device)
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
        self.group = [self.group[r] for r in rows]
        self.index = torch.tensor(self.group, dtype=torch.long, device=self.device)

    def epochs(self, p: runner.Prepared, data: DeviceRows, rngs: list[np.random.Generator]):
        """One epoch's steps: per step, each group's (rows on the device, width), as its solo trial's."""
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
        """One step's micro-batches for every member: (inputs ``[K, B, L]`` with ``draws``, labels
        ``[K, B]``, each member's share of its batch, [K])."""
        present = set(self.group)
        per = [data.parts(rows, width, micro) if g in present else [] for g, (rows, width) in enumerate(batches)]
        steps = []
        for j in range(max(len(x) for x in per)):
            got = [x[j] if j < len(x) else None for x in per]
            b = max(x[0]["input_ids"].shape[0] for x in got if x is not None)
            l = max(x[0]["input_ids"].shape[1] for x in got if x is not None)
            batch = {}
            for key in got[next(i for i, x in enumerate(got) if x is not None)][0]:
                batch[key] = self._expand([_pad_to(x[0][key], (b, l)) if x is not None else
                                           torch.zeros((b, l), dtype=torch.long, device=self.device) for x in got])
            labels = self._expand([_pad_to(x[1], (b,)) if x is not None else None for x in got], (b,))
            valid = batch["attention_mask"][..., 0] > 0   # a real row's first token is real
            dims = [(x[0]["input_ids"].shape[0], x[0]["input_ids"].shape[1]) if x is not None else None for x in got]
            batch["draws"] = Draws(dims, self.generators, self.index, valid)
            steps.append((batch, labels, batch["draws"].valid.sum(dim=1)))
        total = sum(s for _, _, s in steps).clamp_min(1.0)
        return [(batch, labels, rows / total) for batch, labels, rows in steps]

    def _expand(self, per_group: list, shape=None) -> torch.Tensor:
        """Each group's tensor (None: zeros of ``shape``), stacked and taken for each member: [K, ...]."""
        like = next(t for t in per_group if t is not None)
        full = [t if t is not None else torch.zeros(shape, dtype=like.dtype, device=like.device) for t in per_group]
        return torch.stack(full).index_select(0, self.index)
