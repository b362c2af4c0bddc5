"""AdamW for K stacked members: one learning rate per member, each member's own gradient
clipping (its global norm over all its parameters), the same betas, epsilon, decoupled weight
decay and bias correction as ``torch.optim.AdamW`` (which each member matches to float
rounding: ``tests/fused/test_loop.py``).

A parameter is one tensor ``[K, ...]`` holding every member's copy. The update of one member
is linear in its learning rate, so members differ only in the scalar each kernel is given:
with ``torch._fused_adamw_`` (CPU and CUDA) one fused pass per member and weight-decay group,
over views of the stacked tensors; without it, foreach arithmetic on the whole stack with the
learning rates broadcast along the member axis. ``keep`` drops members that left the stack.

Clipping costs no pass of its own over the gradients: ``clip_`` takes every member's norm and
the step applies the factor, as the fused kernel's gradient scale
(it divides each gradient as it reads it) or, without it, in the foreach arithmetic.

No step reads a value back to the host or lifts a Python number into a tensor: the step count
and the members' learning rates (``lr``: each member's peak times the schedule's factor, a
device tensor or a float) are device tensors updated in place. The foreach arithmetic is what a
compiled step runs (the fused kernel with a tensor learning rate cannot be traced).
"""

from __future__ import annotations

import torch


def _col(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.view(-1, *([1] * (ndim - 1)))


class StackedAdamW:
    def __init__(self, params: dict[str, torch.Tensor], lrs: list[float], decayed: set[str], weight_decay: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6, fused: bool | None = None):
        self.params = params
        self.lrs = list(lrs)
        self.decayed = decayed
        self.weight_decay, self.betas, self.eps = weight_decay, betas, eps
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        device = next(iter(params.values())).device
        self.step_t = torch.zeros((), dtype=torch.float32, device=device)     # steps taken
        self.lr_peak = torch.tensor(self.lrs, dtype=torch.float32, device=device)   # [K]
        self.lr = self.lr_peak.clone()             # [K]: this step's learning rates
        self.fused = hasattr(torch, "_fused_adamw_") if fused is None else fused
        self.coef: torch.Tensor | None = None      # each member's clipping factor for the next step
        self._views: dict = {}                     # (member, names) -> views of params and moments

    @property
    def k(self) -> int:
        return len(self.lrs)

    def grads(self) -> list[torch.Tensor]:
        return [p.grad for p in self.params.values() if p.grad is not None]

    def clip_(self, max_norm: float) -> torch.Tensor:
        """Each member's gradients are to be scaled to global norm at most ``max_norm`` (as
        ``clip_grad_norm_`` does for one model); the next ``step`` applies it. Returns the
        members' norms before clipping, [K]."""
        per = torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in self.grads()])
        total = torch.linalg.vector_norm(per, dim=0)                                      # [K]
        self.coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        return total

    def step(self, factor) -> None:
        """One AdamW step; member k's learning rate is ``lrs[k] * factor`` (the schedule's factor, a
        float or a device tensor)."""
        self.step_t.add_(1)
        torch.mul(self.lr_peak, factor, out=self.lr)
        names = [n for n, p in self.params.items() if p.grad is not None]
        for decay in (True, False):
            group = [n for n in names if (n in self.decayed) == decay]
            if group:
                wd = self.weight_decay if decay else 0.0
                (self._fused if self.fused else self._foreach)(group, wd)
        self.coef = None

    def _member_views(self, k: int, names: list[str]) -> tuple[list, list, list]:
        key = (k, tuple(names))
        if key not in self._views:
            self._views[key] = ([self.params[n].detach()[k] for n in names], [self.exp_avg[n][k] for n in names],
                                [self.exp_avg_sq[n][k] for n in names])
        return self._views[key]

    def _fused(self, names: list[str], wd: float) -> None:
        b1, b2 = self.betas
        # the kernel divides each gradient by its scale: 1 / (clipping factor)
        scales = None if self.coef is None else (1.0 / self.coef).to(torch.float32)
        for k in range(self.k):
            params, exp_avg, exp_avg_sq = self._member_views(k, names)
            torch._fused_adamw_(params, [self.params[n].grad[k] for n in names], exp_avg, exp_avg_sq, [],
                                [self.step_t] * len(names), lr=self.lr[k], beta1=b1, beta2=b2, weight_decay=wd,
                                eps=self.eps, amsgrad=False, maximize=False,
                                grad_scale=None if scales is None else scales[k])

    def _foreach(self, names: list[str], wd: float) -> None:
        b1, b2 = self.betas
        lr = self.lr
        bc1, bc2_sqrt = 1 - torch.pow(b1, self.step_t), torch.sqrt(1 - torch.pow(b2, self.step_t))
        for n in names:
            p, g, m, v = self.params[n].detach(), self.params[n].grad, self.exp_avg[n], self.exp_avg_sq[n]
            if self.coef is not None:
                g = g * _col(self.coef.to(g.dtype), g.ndim)
            lr_k = _col(lr, p.ndim)
            p.mul_(1 - lr_k * wd)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.sub_(m / denom * (lr_k / bc1))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def keep(self, rows: list[int]) -> None:
        """Keep only the members at ``rows`` (positions in the current stack), in that order;
        ``params`` is updated in place with new leaf tensors."""
        idx = torch.tensor(rows, device=next(iter(self.params.values())).device)
        for n, p in list(self.params.items()):
            new = p.detach().index_select(0, idx).requires_grad_(p.requires_grad)
            if p.grad is not None:
                new.grad = p.grad.index_select(0, idx)
            self.params[n] = new
            self.exp_avg[n] = self.exp_avg[n].index_select(0, idx)
            self.exp_avg_sq[n] = self.exp_avg_sq[n].index_select(0, idx)
        self.lrs = [self.lrs[r] for r in rows]
        self.lr_peak, self.lr = self.lr_peak.index_select(0, idx), self.lr.index_select(0, idx)
        self.coef = None if self.coef is None else self.coef.index_select(0, idx.to(self.coef.device))
        self._views = {}
