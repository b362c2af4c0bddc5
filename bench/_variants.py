"""compare_trainer's child side: what one child process runs, a variant of the trial (our
runner, or ``transformers.Trainer`` as run_glue.py sets it up or well tuned) from the same
``runner.prepare``, timed by the probe, then cross-checked by the runner's own ``evaluate``.
"""

from __future__ import annotations

import shutil
import tempfile
import time

import torch

from bench._common import progress
from bench._features import EncodedDataset, trainer_metrics, warm_features
from bench._machine import peak_rss_mib, reset_peak_rss, rss_mib
from bench._probe import Probe
from orchestrator.config import Runtime, TrialConfig
from orchestrator.data.sources import source_from
from orchestrator.registry import metrics as M
from orchestrator.registry.models import load_tokenizer
from orchestrator.train import runner


def _optimizer_info(opt) -> dict:
    d = opt.defaults
    groups = [{"n_params": len(g["params"]), "n_elements": int(sum(p.numel() for p in g["params"])),
               "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    return {"class": type(opt).__name__, "lr": d.get("lr"), "betas": list(d.get("betas", ())), "eps": d.get("eps"),
            "fused": d.get("fused"), "foreach": d.get("foreach"), "groups": groups}


def _run_ours(a, p, probe: Probe) -> dict:
    captured = {}
    make_optimizer = runner.make_optimizer

    def capture_optimizer(*args, **kw):
        captured["opt"] = make_optimizer(*args, **kw)
        return captured["opt"]

    evals = []
    runner.make_optimizer = capture_optimizer
    runner.evaluate = probe.timed_eval(runner.evaluate)   # run() looks ``evaluate`` up at call time
    tick = progress(a.variant)
    res = runner.run(p, on_eval=lambda ev: evals.append({"epoch": ev.epoch, "step": ev.step, "metrics": ev.metrics,
                                                         "score": ev.score, "train_loss": ev.train_loss}),
                     on_progress=lambda s, t, l: tick(s, t, l), t_start=time.perf_counter())
    return {"status": res.status, "note": res.note, "evals": evals,
            "final_score": evals[-1]["score"] if evals else None,
            "optimizer": _optimizer_info(captured["opt"]) if "opt" in captured else None,
            "self_reported": {"examples_per_s": res.examples_per_s, "train_s": res.train_s,
                              "startup_s": res.startup_s, "steps": res.steps}}


def _training_args(a, p, out_dir: str, tuned: bool) -> dict:
    """The runner's recipe as ``TrainingArguments``; bf16 where the runner would use it."""
    cfg, on_gpu = p.config, p.device.type == "cuda"
    kw = dict(
        output_dir=out_dir,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=1, learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        weight_decay=cfg.weight_decay, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-6,
        max_grad_norm=cfg.max_grad_norm, lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,   # 5.x: a float in [0, 1) is a ratio (warmup_ratio is gone)
        seed=cfg.seed, eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", report_to="none",
        disable_tqdm=True, train_sampling_strategy="group_by_length" if tuned else "random",
        use_cpu=p.device.type == "cpu", dataloader_pin_memory=on_gpu, dataloader_num_workers=0,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),   # what the runner does
    )
    if a.trainer_optim:
        kw["optim"] = a.trainer_optim
    return kw


def _timed_trainer(probe: Probe, task, multi: bool, evals: list):
    """A Trainer whose every evaluation is timed by the probe and recorded in ``evals``, scored
    with ``orchestrator.registry.metrics`` (the ``compute_metrics`` it returns)."""
    from transformers import Trainer  # heavy (accelerate): only the Trainer variants' processes need it

    holder: dict = {}
    split_of = {(f"eval_{s.name}" if multi else "eval"): s for s in task.eval_splits}
    score = trainer_metrics(task, lambda: (split_of[holder["prefix"]].tag or split_of[holder["prefix"]].name)
                            if multi else "")

    def compute_metrics(ev):
        m = score(ev)
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

    return TimedTrainer, compute_metrics


def _run_trainer(a, p, probe: Probe, tuned: bool) -> dict:
    from transformers import (  # heavy: see above
        DataCollatorWithPadding,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    cfg, task = p.config, p.task
    tok = load_tokenizer(p.spec, cfg.init, cfg.trust_remote_code)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    pad_to = None if tuned else cfg.max_length
    dataset = lambda enc: EncodedDataset(enc, p.use_token_types, pad_to, pad_id)   # noqa: E731
    multi = len(task.eval_splits) > 1
    eval_ds = {s.name: dataset(p.evals[s.name]) for s in task.eval_splits} if multi else \
        dataset(p.evals[task.eval_splits[0].name])
    out_dir = tempfile.mkdtemp(prefix="compare-trainer-")
    kw = _training_args(a, p, out_dir, tuned)
    evals: list[dict] = []
    trainer_class, compute_metrics = _timed_trainer(probe, task, multi, evals)
    tick = progress(a.variant)

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            tick(state.global_step, state.max_steps)

    trainer = trainer_class(model=p.model, args=TrainingArguments(**kw), train_dataset=dataset(p.train),
                            eval_dataset=eval_ds, data_collator=DataCollatorWithPadding(tok) if tuned else
                            default_data_collator, compute_metrics=compute_metrics, callbacks=[Progress()])
    if p.runtime.threads:   # in case anything on the way reset it
        torch.set_num_threads(p.runtime.threads)
    out = trainer.train()
    p.model = trainer.model
    shutil.rmtree(out_dir, ignore_errors=True)
    decay_trainer = set(trainer.get_decay_parameter_names(p.model))
    ours = {id(q) for q in runner.make_optimizer(p.model, cfg, p.device).param_groups[0]["params"]}   # the decayed
    decay_ours = {n for n, q in p.model.named_parameters() if id(q) in ours}
    opt = trainer.optimizer
    return {
        "status": "completed", "evals": evals, "final_score": evals[-1]["score"] if evals else None,
        "optimizer": _optimizer_info(opt.optimizer if hasattr(opt, "optimizer") else opt),
        "decay_params_same_as_runner": decay_trainer == decay_ours,
        "decay_params_only_trainer": sorted(decay_trainer - decay_ours),
        "decay_params_only_runner": sorted(decay_ours - decay_trainer),
        "training_args": {k: str(v) for k, v in kw.items() if k != "output_dir"},
        "self_reported": {"examples_per_s": round(out.metrics.get("train_samples_per_second", 0.0), 2),
                          "train_runtime_s": out.metrics.get("train_runtime"), "train_loss": out.training_loss,
                          "steps": out.global_step},
    }


def run_variant(a) -> dict:
    rss_start = rss_mib()
    t0 = time.perf_counter()
    config = TrialConfig(model=a.model, task=a.task, batch_size=a.batch_size, learning_rate=a.lr, epochs=a.epochs,
                         seed=a.seed, init=a.init, max_train_examples=a.max_train_examples, max_length=a.max_length,
                         eval_batch_size=a.eval_batch_size)
    p = runner.prepare(config, source_from(a.glue_dir, a.hub), runtime=Runtime(device=a.device, threads=a.threads))
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
    check_metrics, check_score = evaluate(p)   # with the runner's autocast
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
    t0 = time.perf_counter()
    stats = warm_features(a.model, a.init, a.task, a.glue_dir, a.hub, a.max_length)
    return {"variant": "warm", "s": round(time.perf_counter() - t0, 3), **stats}
