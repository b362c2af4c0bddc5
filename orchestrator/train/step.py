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
and model configuration, taking tensors and the model only, so a worker's later trials of the
same model reuse its graphs (tested): one per batch shape, which the buckets (``batches``) keep
to nine. Compiled, the backward pass is traced
(``trace_autograd_ops``) and the AdamW update is foreach arithmetic on the optimizer's own
state (``adamw_foreach``): ``torch.optim.AdamW.step`` breaks the graph on purpose and the fused
kernel with a tensor learning rate cannot be traced. Dropout draws eager's random numbers
(inductor's ``fallback_random``), so results equal the eager step's to float rounding, dropout
on or off (``tests/train/test_compile.py`` with ``aot_eager``; inductor on CPU gave the eager
losses to 1e-6 with dropout on). The schedule moves on outside the graph. The CUDA-graph mode
is not measured yet.
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


def adamw_groups(optimizer) -> list[tuple]:
    """``optimizer``'s groups as plain values for ``adamw_foreach``: (parameters, first and second
    moments, step counts, weight decay, betas, eps) each; its state made first (``init_state``)."""
    init_state(optimizer)
    out = []
    for g in optimizer.param_groups:
        ps = [p for p in g["params"] if p.requires_grad]
        st = [optimizer.state[p] for p in ps]
        out.append((ps, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st],
                    g["weight_decay"], *g["betas"], g["eps"]))
    return out


def adamw_foreach(groups: list[tuple], lr: torch.Tensor) -> None:
    """AdamW (``torch.optim.AdamW``'s update, decoupled weight decay, bias correction) over
    ``adamw_groups`` as foreach arithmetic with the learning rate a tensor: what a compiled step
    runs in place of ``optimizer.step``, on the optimizer's own state."""
    for params, m, v, steps, wd, b1, b2, eps in groups:
        grads = [p.grad for p in params]
        ps = [p.detach() for p in params]
        torch._foreach_add_(steps, 1)
        step = steps[0]
        torch._foreach_mul_(ps, 1 - lr * wd)
        torch._foreach_lerp_(m, grads, 1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, torch.sqrt(1 - torch.pow(b2, step)))
        torch._foreach_add_(denom, eps)
        upd = torch._foreach_div(m, denom)
        torch._foreach_mul_(upd, lr / (1 - torch.pow(b1, step)))
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


def _amp(autocast) -> tuple[str, torch.dtype] | None:
    """(device type, dtype) of an autocast factory (``device.precision``'s), None for none."""
    cm = autocast()
    return (cm.device, cm.fast_dtype) if isinstance(cm, torch.autocast) else None


def _compiled_solo(model, groups: list[tuple], lr: torch.Tensor, parts, max_grad_norm: float, amp, loss_fn):
    """Forward, backward, clipping and AdamW of one batch: the compiled part of a solo step. Its
    arguments are tensors, lists, numbers and the model (no optimizer or schedule object), so a
    later trial of the same model configuration reuses its graphs."""
    total = None
    for batch, labels, share in parts:
        with torch.autocast(amp[0], dtype=amp[1]) if amp is not None else contextlib.nullcontext():
            loss = _loss(model, batch, labels, loss_fn)
        (loss * share).backward()
        part = loss.detach().float() * share
        total = part if total is None else total + part
    params = [p for g in groups for p in g[0]]
    _clip([p.grad for p in params], max_grad_norm)
    adamw_foreach(groups, lr)
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

    import torch._inductor.config

    torch._dynamo.config.trace_autograd_ops = True          # the backward pass inside the graph
    torch._inductor.config.fallback_random = True           # dropout draws eager's random numbers: results as eager
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

    groups: dict = {}   # id(optimizer) -> (optimizer, its adamw_groups)

    def step(model, optimizer, schedule, lr, peak, parts, max_grad_norm, autocast=contextlib.nullcontext,
             loss_fn=None, scaler=None):
        if groups.get("opt") is not optimizer:
            groups["opt"], groups["groups"] = optimizer, adamw_groups(optimizer)
        _settle_problem_type(model, parts[0][1])
        total = fn(model, groups["groups"], lr, parts, max_grad_norm, _amp(autocast), loss_fn)
        schedule.advance()                   # outside the graph: its length is the trial's, not the model's
        sync_lr(lr, schedule, peak, optimizer)
        return total
    return step
