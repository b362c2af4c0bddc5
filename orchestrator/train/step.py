"""One training step on the device, without waiting for it: the learning-rate schedule as device
tensors, the solo step (forward, backward, clipping, AdamW, schedule) and its compiled form.

Nothing in a step reads a value back to the host or lifts a Python number into a tensor
(``tests/train/test_host_sync.py`` counts the operators): the step count, the schedule's factor
and the learning rates are tensors updated in place; the attention mask goes to the model as
a prepared 4-D additive mask (``model_inputs``), so transformers does not inspect it (its SDPA
mask asks ``padding_mask.all()`` every forward); the loss stays a tensor. The training loop
reads it only to check for NaN (every step on CPU, every ``GPU_CHECK_EVERY`` on a GPU).

``compiled`` (``TrialConfig.compile``) returns the step under ``torch.compile`` with
``fullgraph=True`` (on CUDA ``mode="reduce-overhead"``: CUDA graphs), one callable per process
and model configuration, so a worker's later trials reuse its graphs: one per batch shape,
which the buckets (``batches``) keep to nine. Compiled, the backward pass is traced
(``trace_autograd_ops``) and the AdamW update is foreach arithmetic on the optimizer's own
state (``adamw_foreach``): ``torch.optim.AdamW.step`` breaks the graph on purpose and the fused
kernel with a tensor learning rate cannot be traced. Results equal the eager step's to float
rounding.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch

MASKED_TYPES = ("bert", "distilbert")   # models that take a prepared 4-D mask as it is (transformers 5)


class Schedule:
    """The learning rate's factor as a device tensor: linear warm-up over the first
    ``ceil(total * warmup_ratio)`` steps, then linear decay to 0 (``runner.lr_factor`` on the host).
    ``factor`` is the factor of the next optimizer step; ``advance`` moves it on, in place."""

    def __init__(self, total_steps: int, warmup_ratio: float, device):
        self.total, self.warmup = total_steps, int(math.ceil(total_steps * warmup_ratio))
        self.t = torch.zeros((), dtype=torch.float32, device=device)        # optimizer steps taken
        self.factor = torch.zeros((), dtype=torch.float32, device=device)
        self._set()

    def _set(self) -> None:
        warm = self.t / max(1, self.warmup)
        decay = ((self.t - self.total) / -max(1, self.total - self.warmup)).clamp_min(0.0)
        self.factor.copy_(torch.where(self.t < self.warmup, warm, decay))

    def advance(self) -> None:
        self.t.add_(1)
        self._set()


def tensor_lr(optimizer, schedule: Schedule, peak: float) -> torch.Tensor | None:
    """Point every parameter group of ``optimizer`` (fused AdamW) at one device tensor,
    ``peak * factor``, set now and after each ``schedule.advance`` (``sync_lr``). None for an
    optimizer without the fused kernel (its learning rate stays a float, read from the host)."""
    if not optimizer.defaults.get("fused"):
        sync_lr(None, schedule, peak, optimizer)
        return None
    lr = schedule.factor * peak
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def sync_lr(lr: torch.Tensor | None, schedule: Schedule, peak: float, optimizer=None) -> None:
    if lr is not None:
        torch.mul(schedule.factor, peak, out=lr)
    elif optimizer is not None:
        for group in optimizer.param_groups:
            group["lr"] = peak * float(schedule.factor)


def model_inputs(batch: dict, model) -> dict:
    """``batch`` with its attention mask as the 4-D additive mask [B, 1, 1, L] transformers builds
    itself, for the models that take one as it is (BERT, DistilBERT with SDPA or eager attention);
    other models get the batch unchanged."""
    cfg = model.config
    if cfg.model_type not in MASKED_TYPES or getattr(cfg, "_attn_implementation", None) not in ("sdpa", "eager"):
        return batch
    mask = batch["attention_mask"]
    neg = torch.finfo(torch.float32).min
    additive = (mask[:, None, None, :] == 0).to(torch.float32) * neg
    return {**batch, "attention_mask": additive}


def _loss(model, batch: dict, labels, loss_fn):
    inputs = model_inputs(batch, model)
    return model(**inputs, labels=labels).loss if loss_fn is None else loss_fn(model(**inputs).logits, labels)


def train_step(model, optimizer, schedule: Schedule, lr: torch.Tensor, peak: float, parts, max_grad_norm: float,
               autocast: Callable = contextlib.nullcontext, loss_fn=None, scaler=None) -> torch.Tensor:
    """One optimizer step of a solo trial on one batch given as micro-batches ``parts``
    ((inputs, labels, share of the batch) each): gradients, clipping (global norm), AdamW,
    the schedule moved on, gradients cleared. Returns the batch's mean loss, a device tensor."""
    total = None
    for batch, labels, share in parts:
        with autocast():
            loss = _loss(model, batch, labels, loss_fn)
        scaled = loss * share
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        part = loss.detach().float() * share
        total = part if total is None else total + part
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm, foreach=True)
    if scaler is not None:       # fp16 (a GPU without bf16): the scaler reads its inf check back
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    schedule.advance()
    sync_lr(lr, schedule, peak, optimizer)
    optimizer.zero_grad(set_to_none=True)
    return total


def adamw_foreach(optimizer, lr: torch.Tensor) -> None:
    """``optimizer``'s AdamW update (its groups' betas, eps, weight decay; its state) as foreach
    arithmetic with the learning rate a tensor: what a compiled step runs in place of ``step``."""
    for group in optimizer.param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        b1, b2 = group["betas"]
        states = [optimizer.state[p] for p in params]
        steps = states[0]["step"]
        for s in states:
            s["step"].add_(1)
        ps = [p.detach() for p in params]
        grads = [p.grad for p in params]
        m, v = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_mul_(ps, 1 - lr * group["weight_decay"])
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, torch.sqrt(1 - torch.pow(b2, steps)))
        torch._foreach_add_(denom, group["eps"])
        upd = torch._foreach_div(m, denom)
        torch._foreach_mul_(upd, lr / (1 - torch.pow(b1, steps)))
        torch._foreach_sub_(ps, upd)


def init_state(optimizer) -> None:
    """Create AdamW's state (step, moments) as ``torch.optim.AdamW`` would at its first step."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.requires_grad and not optimizer.state[p]:
                optimizer.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                      "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                      "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}


def _clip(grads: list[torch.Tensor], max_norm: float) -> None:
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


def _compiled_solo(model, optimizer, schedule: Schedule, lr, peak, parts, max_grad_norm, autocast, loss_fn):
    total = None
    for batch, labels, share in parts:
        with autocast():
            loss = _loss(model, batch, labels, loss_fn)
        (loss * share).backward()
        part = loss.detach().float() * share
        total = part if total is None else total + part
    params = [p for p in model.parameters() if p.grad is not None]
    _clip([p.grad for p in params], max_grad_norm)
    adamw_foreach(optimizer, lr)
    schedule.advance()
    sync_lr(lr, schedule, peak)
    for p in params:
        p.grad = None
    return total


def _settle_problem_type(model, labels) -> None:
    """What transformers' classifier sets on its config at its first forward with labels, set
    before: a compiled step would otherwise be compiled again when it changes."""
    cfg = model.config
    if getattr(cfg, "problem_type", "") is None and labels is not None:
        cfg.problem_type = ("regression" if cfg.num_labels == 1 else "single_label_classification"
                            if labels.dtype in (torch.long, torch.int) else "multi_label_classification")


_COMPILED: dict = {}   # (what, key, backend, mode) -> compiled callable, for this process


def compiled(what: str, fn: Callable, key: str, device, backend: str | None = None) -> Callable:
    """``fn`` compiled once per process and ``key`` (a model's configuration): fullgraph, one graph
    per batch shape (``dynamic=False``), on CUDA with CUDA graphs."""
    import torch._dynamo

    torch._dynamo.config.trace_autograd_ops = True          # the backward pass inside the graph
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)   # one graph a shape
    backend = backend or "inductor"
    mode = "reduce-overhead" if torch.device(device).type == "cuda" and backend == "inductor" else None
    k = (what, key, backend, mode)
    if k not in _COMPILED:
        _COMPILED[k] = torch.compile(fn, fullgraph=True, dynamic=False, backend=backend, mode=mode)
    return _COMPILED[k]


def solo_step(model, compile: bool = False, backend: str | None = None) -> Callable:
    """The solo step: ``train_step``, or compiled (``_compiled_solo``: no gradient scaler)."""
    if not compile:
        return train_step
    key = f"{type(model).__name__}:{model.config.to_json_string(use_diff=False)}"
    fn = compiled("solo", _compiled_solo, key, next(model.parameters()).device, backend)

    def step(model, optimizer, schedule, lr, peak, parts, max_grad_norm, autocast=contextlib.nullcontext,
             loss_fn=None, scaler=None):
        init_state(optimizer)
        _settle_problem_type(model, parts[0][1])
        return fn(model, optimizer, schedule, lr, peak, parts, max_grad_norm, autocast, loss_fn)
    return step
