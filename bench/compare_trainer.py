"""Our trial runner against ``transformers.Trainer`` on the same trial.

One trial (model, task, training rows, hyper-parameters, seed) is run three ways, each in its
own subprocess so that peak memory is per variant:

* ``ours``            ``orchestrator.runner.prepare`` + ``run`` (dynamic padding, length grouping)
* ``trainer-default`` ``Trainer`` as ``run_glue.py`` sets it up by default: every example padded
                      to ``max_length`` (128), ``default_data_collator``, random sampling
* ``trainer-tuned``   ``Trainer`` with ``DataCollatorWithPadding`` (pad to the batch's longest)
                      and ``train_sampling_strategy="group_by_length"`` (5.x's name for the
                      old ``group_by_length=True``)

All three start from ``runner.prepare``: the same features (the feature cache), the same
``runner.train_subset`` rows, the same model with the same seeded head. The Trainer gets a
torch ``Dataset`` over those features and the same recipe: AdamW (weight decay 0.01, not on
biases / LayerNorm; eps 1e-6), linear warm-up over the first 10% of steps then linear decay,
gradient clipping at 1.0, evaluation at every epoch end, scored with ``orchestrator.metrics``.
No checkpoints, no reporting.

Timing is identical for every variant, taken by hooks on the model and on every optimizer:
the training loop runs from the first training forward to the last optimizer step, minus the
time spent evaluating in between; examples/s is training examples seen (counted by the same
hook) over that time. ``wall_s`` is ``prepare()`` through the end of training and its
evaluations (imports excluded). Peak memory is the process's peak RSS (``VmHWM``); it is read
before training and then reset (``/proc/self/clear_refs``) so the training phase's own peak is
reported too. After timing, every variant's final model is also scored by the runner's own
``evaluate`` as a cross-check of the Trainer's evaluation. The process's CPU time over the
loop (``cpu_ms_per_example``) and the share of the machine other processes used meanwhile
(``others_cpu_share``, from /proc/stat) are recorded too: on a shared machine wall-clock
timings are only comparable when that share is low, and with several torch threads on a busy
machine every op's threads wait for each other (use ``--threads 1`` there, and ``--repeats N``
to interleave runs and report medians).

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.compare_trainer --model all-MiniLM-L6-v2 --task SST-2 \\
        --max-train-examples 4000 --batch-size 32 --lr 1e-4 --epochs 1 --seed 0

Writes ``<out>/compare_trainer.json`` and ``<out>/compare_trainer.md`` (default out: bench/out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("ours", "trainer-default", "trainer-tuned")


# --------------------------------------------------------------------------- memory

def _proc_status(key: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    kib = _proc_status("VmHWM")
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(kib / 1024, 1)


def reset_peak_rss() -> bool:
    """Resets VmHWM (and ru_maxrss) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------- probe

def cpu_snapshot() -> dict:
    """Wall clock, this process's CPU time, and the whole machine's busy/steal/total jiffies
    (from /proc/stat), so that a measurement can say how much of the machine others used."""
    snap = {"wall": time.perf_counter(), "cpu": time.process_time()}
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
        snap["busy"] = user + nice + system + irq + softirq
        snap["steal"] = steal
        snap["total"] = user + nice + system + idle + iowait + irq + softirq + steal
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        snap["self"] = int(fields[11]) + int(fields[12])   # utime + stime, all threads
    except (OSError, ValueError, IndexError):
        pass
    return snap


class Probe:
    """Hooks that time and count the training loop the same way whatever drives it."""

    def __init__(self):
        self.first: dict | None = None      # cpu_snapshot() at the first training forward
        self.last: dict | None = None       # ... at the last optimizer step
        self.t_first_forward: float | None = None
        self.step_end: list[float] = []
        self.lrs: list[float] = []
        self.examples = 0
        self.tokens = 0
        self.real_tokens: list = []
        self.widths: list[int] = []
        self.losses: list = []
        self.evals: list[tuple[float, float, float, float]] = []   # wall start, end; cpu start, end
        self.threads: int | None = None
        self.opt_wall = self.opt_cpu = 0.0   # time inside optimizer.step()
        self._opt_t0 = (0.0, 0.0)
        self._handles = []

    def attach(self, model) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self._handles.append(model.register_forward_pre_hook(self._pre, with_kwargs=True))
        self._handles.append(model.register_forward_hook(self._post, with_kwargs=True))
        self._handles.append(register_optimizer_step_pre_hook(self._step_begin))
        self._handles.append(register_optimizer_step_post_hook(self._step))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _pre(self, module, args, kwargs):
        if not module.training:
            return
        import torch

        if self.first is None:
            self.first = cpu_snapshot()
            self.t_first_forward = self.first["wall"]
            self.threads = torch.get_num_threads()
        ids = kwargs["input_ids"] if "input_ids" in kwargs else args[0]
        self.examples += int(ids.shape[0])
        self.tokens += int(ids.numel())
        self.widths.append(int(ids.shape[1]))
        mask = kwargs.get("attention_mask")
        self.real_tokens.append(mask.sum() if mask is not None else ids.numel())

    def _post(self, module, args, kwargs, output):
        if module.training and getattr(output, "loss", None) is not None:
            self.losses.append(output.loss.detach())

    def _step_begin(self, optimizer, args, kwargs):
        self._opt_t0 = (time.perf_counter(), time.process_time())

    def _step(self, optimizer, args, kwargs):
        self.last = cpu_snapshot()
        self.opt_wall += self.last["wall"] - self._opt_t0[0]
        self.opt_cpu += self.last["cpu"] - self._opt_t0[1]
        self.step_end.append(self.last["wall"])
        self.lrs.append(float(optimizer.param_groups[0]["lr"]))

    def timed_eval(self, fn):
        def wrapper(*a, **k):
            s, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.evals.append((s, time.perf_counter(), c, time.process_time()))
        return wrapper

    def summary(self) -> dict:
        if self.first is None or self.last is None:
            return {"examples": self.examples, "steps": 0}
        f, l = self.first, self.last
        inside = [e for e in self.evals if f["wall"] < e[0] < l["wall"]]
        eval_wall = sum(e[1] - e[0] for e in inside)
        eval_cpu = sum(e[3] - e[2] for e in inside)
        loop = l["wall"] - f["wall"] - eval_wall
        cpu = l["cpu"] - f["cpu"] - eval_cpu
        real = int(sum(int(x) for x in self.real_tokens))
        losses = [float(x) for x in self.losses]
        k = max(1, min(10, len(losses) // 4))
        out = {
            "steps": len(self.step_end),
            "examples": self.examples,
            "train_loop_s": round(loop, 3),
            "evals_inside_loop_s": round(eval_wall, 3),
            "examples_per_s": round(self.examples / loop, 2) if loop > 0 else None,
            "ms_per_step": round(1000 * loop / len(self.step_end), 1),
            "train_loop_cpu_s": round(cpu, 3),
            "cpu_ms_per_example": round(1000 * cpu / self.examples, 3) if self.examples else None,
            "optimizer_ms_per_step": round(1000 * self.opt_wall / len(self.step_end), 2),
            "optimizer_cpu_ms_per_step": round(1000 * self.opt_cpu / len(self.step_end), 2),
            "optimizer_share_of_loop": round(self.opt_wall / loop, 4) if loop > 0 else None,
            "padded_tokens": self.tokens,
            "real_tokens": real,
            "padding_fraction": round(1 - real / self.tokens, 4) if self.tokens else None,
            "real_tokens_per_s": round(real / loop, 1) if loop > 0 else None,
            "mean_batch_width": round(sum(self.widths) / len(self.widths), 2) if self.widths else None,
            "threads": self.threads,
            "train_loss_mean": round(sum(losses) / len(losses), 5) if losses else None,
            "train_loss_first": round(sum(losses[:k]) / k, 5) if losses else None,
            "train_loss_last": round(sum(losses[-k:]) / k, 5) if losses else None,
            "lr_trace": self.lrs,
        }
        if "total" in f and "total" in l and l["total"] > f["total"]:
            tot = l["total"] - f["total"]
            # Share of the whole machine's CPU time (all cores) used by other processes, and
            # stolen by the hypervisor, while this loop ran: high values mean a contended timing.
            out["others_cpu_share"] = round(max(0.0, (l["busy"] - f["busy"]) - (l["self"] - f["self"])) / tot, 3)
            out["steal_share"] = round((l["steal"] - f["steal"]) / tot, 3)
        return out


# --------------------------------------------------------------------------- child: one variant

def _progress(label: str, every_s: float = 20.0):
    state = {"last": 0.0, "t0": time.perf_counter()}

    def tick(step: int, total: int, loss: float | None = None) -> None:
        now = time.perf_counter()
        if now - state["last"] < every_s and step != total:
            return
        state["last"] = now
        extra = f"  loss {loss:.4f}" if loss is not None else ""
        print(f"[{label}] step {step}/{total}{extra}  {now - state['t0']:.0f}s", file=sys.stderr, flush=True)

    return tick


def _trial_config(a):
    from orchestrator.runner import TrialConfig

    return TrialConfig(model=a.model, task=a.task, batch_size=a.batch_size, learning_rate=a.lr, epochs=a.epochs,
                       seed=a.seed, init=a.init, max_train_examples=a.max_train_examples, max_length=a.max_length,
                       eval_batch_size=a.eval_batch_size, device=a.device, threads=a.threads)


def _source(a):
    from orchestrator.data import source_from

    return source_from(a.glue_dir, a.hub)


def _optimizer_info(opt) -> dict:
    d = opt.defaults
    groups = [{"n_params": len(g["params"]), "n_elements": int(sum(p.numel() for p in g["params"])),
               "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    return {"class": type(opt).__name__, "lr": d.get("lr"), "betas": list(d.get("betas", ())), "eps": d.get("eps"),
            "fused": d.get("fused"), "foreach": d.get("foreach"), "groups": groups}


def _run_ours(a, p, probe: Probe) -> dict:
    from orchestrator import runner

    captured = {}
    make_optimizer = runner.make_optimizer

    def capture_optimizer(*args, **kw):
        captured["opt"] = make_optimizer(*args, **kw)
        return captured["opt"]

    evals = []
    runner.make_optimizer = capture_optimizer
    runner.evaluate = probe.timed_eval(runner.evaluate)   # run() looks ``evaluate`` up at call time
    tick = _progress(a.variant)
    res = runner.run(p, on_eval=lambda ev: evals.append({"epoch": ev.epoch, "step": ev.step, "metrics": ev.metrics,
                                                         "score": ev.score, "train_loss": ev.train_loss}),
                     on_progress=lambda s, t, l: tick(s, t, l), t_start=time.perf_counter())
    return {"status": res.status, "note": res.note, "evals": evals,
            "final_score": evals[-1]["score"] if evals else None,
            "optimizer": _optimizer_info(captured["opt"]) if "opt" in captured else None,
            "self_reported": {"examples_per_s": res.examples_per_s, "train_s": res.train_s,
                              "startup_s": res.startup_s, "steps": res.steps}}


class EncodedDataset:
    """A torch map-style dataset over an ``Encoded`` split: rows as python lists, like a
    ``datasets`` row; padded to ``pad_to`` (run_glue's pad_to_max_length) or left ragged for
    ``DataCollatorWithPadding``."""

    def __init__(self, enc, use_token_types: bool, pad_to: int | None, pad_id: int):
        self.enc, self.use_token_types, self.pad_to, self.pad_id = enc, use_token_types, pad_to, pad_id

    def __len__(self) -> int:
        return len(self.enc)

    def __getitem__(self, i: int) -> dict:
        s, e = int(self.enc.offsets[i]), int(self.enc.offsets[i + 1])
        n = e - s
        pad = (self.pad_to - n) if self.pad_to else 0
        item = {"input_ids": self.enc.input_ids[s:e].tolist() + [self.pad_id] * pad,
                "attention_mask": [1] * n + [0] * pad}
        if self.use_token_types:
            item["token_type_ids"] = self.enc.token_type_ids[s:e].tolist() + [0] * pad
        if self.enc.labels is not None:
            item["labels"] = self.enc.labels[i].item()
        return item


def _run_trainer(a, p, probe: Probe, tuned: bool) -> dict:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments, default_data_collator

    from orchestrator import metrics as M
    from orchestrator.models import load_tokenizer

    cfg, task = p.config, p.task
    tok = load_tokenizer(p.spec, cfg.init, cfg.trust_remote_code)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    pad_to = None if tuned else cfg.max_length
    train_ds = EncodedDataset(p.train, p.use_token_types, pad_to, pad_id)
    splits = task.eval_splits
    multi = len(splits) > 1
    eval_ds = ({s.name: EncodedDataset(p.evals[s.name], p.use_token_types, pad_to, pad_id) for s in splits} if multi
               else EncodedDataset(p.evals[splits[0].name], p.use_token_types, pad_to, pad_id))
    collator = DataCollatorWithPadding(tok) if tuned else default_data_collator

    use_bf16 = p.device.type == "cuda" and torch.cuda.is_bf16_supported()   # what the runner does
    out_dir = tempfile.mkdtemp(prefix="compare-trainer-")
    kw = dict(
        output_dir=out_dir,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=1, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        weight_decay=cfg.weight_decay, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6,
        max_grad_norm=cfg.max_grad_norm, lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,   # 5.x: a float in [0, 1) is a ratio (warmup_ratio is gone)
        seed=cfg.seed, eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", report_to="none",
        disable_tqdm=True, train_sampling_strategy="group_by_length" if tuned else "random",
        use_cpu=p.device.type == "cpu", dataloader_pin_memory=p.device.type == "cuda", dataloader_num_workers=0,
        bf16=use_bf16,
    )
    if a.trainer_optim:
        kw["optim"] = a.trainer_optim
    args = TrainingArguments(**kw)

    holder: dict = {}
    split_of = {(f"eval_{s.name}" if multi else "eval"): s for s in splits}
    evals: list[dict] = []

    def compute_metrics(ev):
        logits = ev.predictions[0] if isinstance(ev.predictions, (tuple, list)) else ev.predictions
        preds = logits[:, 0] if task.is_regression else logits.argmax(-1)
        split = split_of[holder["prefix"]]
        m = M.compute(task.metrics, preds, ev.label_ids, suffix=(split.tag or split.name) if multi else "")
        holder["metrics"].update(m)
        return m

    class TimedTrainer(Trainer):
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            outer = "metrics" not in holder
            if outer:
                holder["metrics"], t_eval, c_eval = {}, time.perf_counter(), time.process_time()
            holder["prefix"] = metric_key_prefix
            try:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            finally:
                if outer:
                    probe.evals.append((t_eval, time.perf_counter(), c_eval, time.process_time()))
                    m = holder.pop("metrics")
                    losses = [h["loss"] for h in self.state.log_history if "loss" in h]
                    evals.append({"epoch": round(self.state.epoch or 0, 4), "step": self.state.global_step,
                                  "metrics": m, "score": M.headline(m) if m else None,
                                  "train_loss": losses[-1] if losses else None})

    tick = _progress(a.variant)

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            tick(state.global_step, state.max_steps)

    trainer = TimedTrainer(model=p.model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                           data_collator=collator, compute_metrics=compute_metrics, callbacks=[Progress()])
    if cfg.threads:   # in case anything on the way reset it
        torch.set_num_threads(cfg.threads)
    out = trainer.train()
    p.model = trainer.model
    decay_trainer = set(trainer.get_decay_parameter_names(p.model))
    decay_ours = {n for n, q in p.model.named_parameters()
                  if q.requires_grad and not (q.ndim < 2 or "LayerNorm" in n or "layer_norm" in n or n.endswith(".bias"))}
    info = {
        "status": "completed", "evals": evals, "final_score": evals[-1]["score"] if evals else None,
        "optimizer": _optimizer_info(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer")
                                     else trainer.optimizer),
        "decay_params_same_as_runner": decay_trainer == decay_ours,
        "decay_params_only_trainer": sorted(decay_trainer - decay_ours),
        "decay_params_only_runner": sorted(decay_ours - decay_trainer),
        "training_args": {k: str(v) for k, v in kw.items() if k != "output_dir"},
        "self_reported": {"examples_per_s": round(out.metrics.get("train_samples_per_second", 0.0), 2),
                          "train_runtime_s": out.metrics.get("train_runtime"), "train_loss": out.training_loss,
                          "steps": out.global_step},
    }
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)
    return info


def run_variant(a) -> dict:
    import contextlib

    import torch

    from orchestrator import runner

    rss_start = peak_rss_mib()
    t0 = time.perf_counter()
    p = runner.prepare(_trial_config(a), _source(a))
    t_prepared = time.perf_counter()
    evaluate = runner.evaluate   # the unpatched evaluator, for the cross-check
    probe = Probe()
    probe.attach(p.model)
    peak_before_train = peak_rss_mib()
    reset_ok = reset_peak_rss()
    if a.variant == "ours":
        info = _run_ours(a, p, probe)
    else:
        info = _run_trainer(a, p, probe, tuned=a.variant == "trainer-tuned")
    t_end = time.perf_counter()
    peak_train = peak_rss_mib()
    probe.detach()

    use_bf16 = p.device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    check_metrics, check_score = evaluate(p, autocast)

    return {
        "variant": a.variant,
        "wall_s": round(t_end - t0, 3),
        "prepare_s": round(t_prepared - t0, 3),
        "train_and_eval_s": round(t_end - t_prepared, 3),
        "eval_s": round(sum(e[1] - e[0] for e in probe.evals), 3),
        "n_evals": len(probe.evals),
        "peak_rss_mib": max(peak_before_train, peak_train),
        "peak_rss_before_train_mib": peak_before_train,
        "peak_rss_train_mib": peak_train if reset_ok else None,
        "rss_at_start_mib": rss_start,
        "train_examples": len(p.train),
        "n_params": sum(x.numel() for x in p.model.parameters()),
        "device": str(p.device),
        **probe.summary(),
        **info,
        "check_score_runner_evaluate": check_score,
        "check_metrics_runner_evaluate": check_metrics,
    }


def warm_cache(a) -> dict:
    """Tokenises the trial's splits into the feature cache so no variant pays for it."""
    from orchestrator import features as feats
    from orchestrator.models import load_tokenizer, resolve
    from orchestrator.tasks import get_task

    t0 = time.perf_counter()
    task, spec = get_task(a.task), resolve(a.model)
    tok = load_tokenizer(spec, a.init)
    src, stats = _source(a), {}
    for split in ["train"] + [s.name for s in task.eval_splits]:
        feats.features(task, split, src, tok, a.max_length, None, stats)
    return {"variant": "warm", "s": round(time.perf_counter() - t0, 3), **stats}


# --------------------------------------------------------------------------- parent

def _fmt(x, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _ratio(x, y):
    return round(x / y, 3) if x is not None and y else None


# Per-run numbers that repeats are summarised over (by their median).
MEDIAN_KEYS = ("examples_per_s", "train_loop_s", "ms_per_step", "train_loop_cpu_s", "cpu_ms_per_example",
               "optimizer_ms_per_step", "optimizer_cpu_ms_per_step", "optimizer_share_of_loop",
               "real_tokens_per_s", "wall_s", "train_and_eval_s", "eval_s", "prepare_s", "peak_rss_mib",
               "peak_rss_train_mib", "others_cpu_share", "steal_share", "process_wall_s")
RUN_KEYS = MEDIAN_KEYS + ("final_score", "check_score_runner_evaluate", "train_loss_mean", "loadavg_at_start")


def aggregate(runs: list[dict]) -> dict:
    """One variant's runs -> the first run's full record with the timing keys replaced by
    their median over the runs, and every run's timing keys under ``repeats``."""
    import statistics

    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    agg = dict(ok[0])
    for k in MEDIAN_KEYS:
        vals = [r[k] for r in ok if r.get(k) is not None]
        agg[k] = round(statistics.median(vals), 3) if vals else None
    agg["repeats"] = [{k: r.get(k) for k in RUN_KEYS} if "error" not in r else r for r in runs]
    agg["n_runs"] = len(ok)
    agg["scores_identical_across_repeats"] = len({r.get("final_score") for r in ok}) == 1
    return agg


def build_report(a, results: dict[str, dict], env: dict) -> tuple[dict, str]:
    ok = {n: r for n, r in results.items() if "error" not in r}
    ours = ok.get("ours")
    ratios = {}
    if ok:
        pairs = [("ours", "trainer-default", "ours/default"), ("ours", "trainer-tuned", "ours/tuned")]
        for mine, name, label in pairs:
            x, y = ok.get(mine), ok.get(name)
            if x and y:
                ratios[label] = {
                    "examples_per_s": _ratio(x.get("examples_per_s"), y.get("examples_per_s")),
                    "train_loop_s": _ratio(x.get("train_loop_s"), y.get("train_loop_s")),
                    "cpu_ms_per_example": _ratio(x.get("cpu_ms_per_example"), y.get("cpu_ms_per_example")),
                    "wall_s": _ratio(x.get("wall_s"), y.get("wall_s")),
                    "peak_rss": _ratio(x.get("peak_rss_mib"), y.get("peak_rss_mib")),
                }
    lr_check = {}
    if ours and ours.get("lr_trace"):
        for name, r in ok.items():
            if name != "ours" and r.get("lr_trace"):
                same_len = len(r["lr_trace"]) == len(ours["lr_trace"])
                lr_check[name] = {"same_steps": same_len,
                                  "max_abs_diff": max(abs(x - y) for x, y in zip(ours["lr_trace"], r["lr_trace"]))
                                  if same_len else None}
    report = {"config": {k: v for k, v in vars(a).items() if k not in ("variant", "result_file")},
              "environment": env, "variants": results, "ratios": ratios, "lr_schedule_vs_ours": lr_check}

    reps = f"; median of {a.repeats} interleaved runs per variant" if a.repeats > 1 else ""
    lines = [f"# Runner vs transformers.Trainer: {a.model} on {a.task}",
             "",
             f"{env['train_examples']} training examples, batch {a.batch_size}, lr {a.lr:g}, {a.epochs:g} epoch(s), "
             f"seed {a.seed}, init {a.init}, max length {a.max_length}; device {env['device']}, "
             f"{env['threads']} thread(s), {env['cpus']} CPU(s){reps}; torch {env['torch']}, "
             f"transformers {env['transformers']}; runner at {(env['git'].get('commit') or '?')[:10]}"
             f"{' + local changes' if env['git'].get('orchestrator_modified') else ''}"
             f"{' (runner files changed during the run!)' if env['git'].get('runner_changed_during_run_to') else ''}.",
             "",
             "| variant | dev score | dev score (runner evaluate) | train ex/s | CPU ms/ex | padding | mean width "
             "| optimizer ms/step | train loop s | wall s | eval s | peak RSS MiB | peak RSS in training MiB | train loss "
             "| others' CPU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:80]} |" + " |" * 13)
            continue
        lines.append("| " + " | ".join([
            name, _fmt(r.get("final_score")), _fmt(r.get("check_score_runner_evaluate")),
            _fmt(r.get("examples_per_s"), ".1f"), _fmt(r.get("cpu_ms_per_example"), ".1f"),
            _fmt(None if r.get("padding_fraction") is None else 100 * r["padding_fraction"], ".1f") + "%",
            _fmt(r.get("mean_batch_width"), ".1f"), _fmt(r.get("optimizer_ms_per_step"), ".1f"),
            _fmt(r.get("train_loop_s"), ".1f"), _fmt(r.get("wall_s"), ".1f"), _fmt(r.get("eval_s"), ".1f"),
            _fmt(r.get("peak_rss_mib"), ".0f"), _fmt(r.get("peak_rss_train_mib"), ".0f"),
            _fmt(r.get("train_loss_mean"), ".4f"),
            _fmt(None if r.get("others_cpu_share") is None else 100 * r["others_cpu_share"], ".0f") + "%"]) + " |")
    if ratios:
        lines += ["", "| ratio | throughput (ex/s) | train loop time | CPU per example | wall time | peak RSS |",
                  "|---|---:|---:|---:|---:|---:|"]
        for k, v in ratios.items():
            lines.append(f"| {k} | {_fmt(v['examples_per_s'], '.3f')} | {_fmt(v['train_loop_s'], '.3f')} | "
                         f"{_fmt(v['cpu_ms_per_example'], '.3f')} | {_fmt(v['wall_s'], '.3f')} | "
                         f"{_fmt(v['peak_rss'], '.3f')} |")
    lines += ["", "Train ex/s: training examples over the training loop (first training forward to last optimizer "
                  "step, evaluations excluded), timed by the same hooks for every variant; CPU ms/ex: this process's "
                  "CPU time over the same span. Wall: prepare() through the end of training and its evaluations. "
                  "Peak RSS: the variant's own process (VmHWM); 'in training' after resetting it once the model and "
                  "data were loaded. Others' CPU: share of the machine's CPU time used by other processes during "
                  "the loop (high = contended timing)."]
    self_rep = [(n, r["self_reported"]) for n, r in ok.items() if r.get("self_reported")]
    if self_rep:
        lines += ["", "Self-reported throughput (each includes evaluation time): " + "; ".join(
            f"{n} {s.get('examples_per_s')} ex/s" for n, s in self_rep) + "."]
    return report, "\n".join(lines) + "\n"


def _child_cmd(a, variant: str, result_file: Path) -> list[str]:
    argv = [sys.executable, "-m", "bench.compare_trainer", "--variant", variant, "--result-file", str(result_file),
            "--model", a.model, "--task", a.task, "--batch-size", str(a.batch_size), "--lr", repr(a.lr),
            "--epochs", repr(a.epochs), "--seed", str(a.seed), "--init", a.init, "--max-length", str(a.max_length),
            "--eval-batch-size", str(a.eval_batch_size)]
    if a.max_train_examples:
        argv += ["--max-train-examples", str(a.max_train_examples)]
    for flag, v in (("--threads", a.threads), ("--device", a.device), ("--glue-dir", a.glue_dir), ("--hub", a.hub),
                    ("--trainer-optim", a.trainer_optim)):
        if v:
            argv += [flag, str(v)]
    return argv


RUNNER_FILES = ("runner.py", "features.py", "data.py", "models.py", "metrics.py", "tasks.py", "errors.py")


def _git_state() -> dict:
    """The commit the runner was measured at, whether orchestrator/ differed from it, and a
    hash of the orchestrator files a trial actually runs (to notice edits during a run)."""
    import hashlib

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    h = hashlib.sha256()
    for name in RUNNER_FILES:
        f = REPO / "orchestrator" / name
        h.update(name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"") + b"\0")
    return {"commit": git("rev-parse", "HEAD"), "orchestrator_modified": bool(git("status", "--porcelain", "--", "orchestrator")),
            "runner_files_sha256": h.hexdigest()[:16]}


def _environment(a, results: dict, git: dict) -> dict:
    import importlib.metadata as md

    first = next((r for r in results.values() if "error" not in r), {})
    return {"git": git, "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": md.version("torch"), "transformers": md.version("transformers"),
            "accelerate": md.version("accelerate"), "device": first.get("device"), "threads": first.get("threads"),
            "train_examples": first.get("train_examples"), "n_params": first.get("n_params")}


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def parent(a) -> int:
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        print(f"compare_trainer: unknown variant(s) {bad}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if a.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(a.threads)
    git_start = _git_state()
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="compare-trainer-") as tmp:
        plan = [("warm", 0)] + [(v, i) for i in range(a.repeats) for v in variants]   # interleaved repeats
        for v, i in plan:
            rf = Path(tmp) / f"{v}-{i}.json"
            tag = v if a.repeats == 1 or v == "warm" else f"{v} (run {i + 1}/{a.repeats})"
            load = _loadavg()
            print(f"== {tag}  (load average {load})", file=sys.stderr, flush=True)
            t = time.perf_counter()
            proc = subprocess.run(_child_cmd(a, v, rf), cwd=REPO, env=env)
            wall = round(time.perf_counter() - t, 2)
            if proc.returncode != 0 or not rf.is_file():
                err = f"exit code {proc.returncode}"
                print(f"== {tag} failed: {err}", file=sys.stderr, flush=True)
                if v == "warm":
                    return 1
                runs[v].append({"variant": v, "error": err})
                continue
            r = json.loads(rf.read_text())
            r["process_wall_s"], r["loadavg_at_start"] = wall, load
            if v == "warm":
                print(f"== warm cache: {r}", file=sys.stderr, flush=True)
                continue
            runs[v].append(r)
            print(f"== {tag}: score {r.get('final_score')}, {r.get('examples_per_s')} ex/s, "
                  f"{r.get('cpu_ms_per_example')} CPU ms/ex, wall {r.get('wall_s')} s, peak RSS {r.get('peak_rss_mib')} "
                  f"MiB, others' CPU {r.get('others_cpu_share')}", file=sys.stderr, flush=True)
    results = {v: aggregate(rs) for v, rs in runs.items()}
    git_end = _git_state()
    if git_end["runner_files_sha256"] != git_start["runner_files_sha256"]:   # the runner was edited while this ran
        git_start["runner_changed_during_run_to"] = git_end
    report, md = build_report(a, results, _environment(a, results, git_start))
    (out / "compare_trainer.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "compare_trainer.md").write_text(md)
    print(md)
    print(f"wrote {out / 'compare_trainer.json'} and {out / 'compare_trainer.md'}", file=sys.stderr)
    return 0 if all("error" not in r for r in results.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.compare_trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--task", default="SST-2")
    p.add_argument("--max-train-examples", type=int, default=4000, help="0: the whole training split")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", choices=["pretrained", "random"], default="pretrained")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--eval-batch-size", type=int, default=256, help="for every variant (the runner's default)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads in every variant")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    p.add_argument("--glue-dir", default=None, help="GLUE directory (default: $GLUE_DIR, else ../shared/glue_data)")
    p.add_argument("--hub", default=None, help="hub dataset id or local parquet mirror instead of a GLUE directory")
    p.add_argument("--trainer-optim", default=None,
                   help="TrainingArguments.optim for the Trainer variants (default: the Trainer's own default)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs per variant, interleaved (ours, default, tuned, ours, ...); timings are medians")
    p.add_argument("--out", default=str(REPO / "bench" / "out"), help="directory for compare_trainer.json/.md")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    a = build_parser().parse_args(argv)
    if a.max_train_examples is not None and a.max_train_examples <= 0:
        a.max_train_examples = None
    if not a.glue_dir and not a.hub and not os.environ.get("GLUE_DIR"):
        default = REPO.parent / "shared" / "glue_data"
        if default.is_dir():
            a.glue_dir = str(default)
    if a.repeats < 1:
        print("compare_trainer: --repeats must be at least 1", file=sys.stderr)
        return 2
    if a.variant is None:
        return parent(a)
    from orchestrator.errors import UserError

    try:
        result = warm_cache(a) if a.variant == "warm" else run_variant(a)
    except UserError as e:
        print(f"compare_trainer ({a.variant}): error: {e}", file=sys.stderr)
        return 2
    Path(a.result_file).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
