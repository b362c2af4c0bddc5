"""``glue-sweep speed``: measured size and inference speed of models on this machine.

For each model: parameters of the bare encoder (total and without the embeddings; the task
head is not counted, like the published figures) and inference throughput (examples/s) of a
sequence-classification model in eval mode, fp32, no gradients, at each batch size, sequence
length 128 by default. Models are built with random weights from their architecture (a speed
does not depend on the weights), so nothing is downloaded. BERT-Base is measured in every run
that measures anything, and each model's speed-up is its throughput over the BERT-Base
throughput of the same run (and batch size). The models of a run are timed round-robin, one
pass each per round, and a model's time is its fastest pass: on a shared machine other work
only ever adds time, so the fastest pass is the least disturbed one. On a shared machine use
one thread (``--threads 1``): with several, the threads of every op wait for each other
whenever another process holds a core, which inflates a small model's time many-fold.

Results are cached per model and machine in ``<cache>/speed/<fingerprint>.json`` (the
glue-sweep cache dir, ``$GLUE_SWEEP_CACHE``); the fingerprint is the CPU model, core count,
torch threads, torch version and device. A cached figure is reused unless ``--refresh``; a
``--quick`` figure (fewer iterations) is not reused for a full measurement.

``--out FILE`` writes ``{model: speed-up}`` at one batch size (``--speedup-batch``, default
the largest), the format ``glue-sweep leaderboard RUN --speedups FILE`` reads; each model is
also written as ``<model> (random init)``, the leaderboard's label of its untrained baseline
(same architecture, same speed).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

from ..data.features import cache_dir
from ..errors import UserError
from ..fileio import atomic_write_json, read_json
from ..registry.models import load_model, resolve

# torch (and, through the feature cache, numpy) is imported where it is used: the command line
# imports this module for every command, most of which never measure anything.

REFERENCE = "BERT-Base"
SEQ_LEN = 128
BATCH_SIZES = (1, 128)
# (warm-up passes, min rounds, min timed seconds per model, max rounds)
FULL = (1, 3, 1.0, 30)
QUICK = (1, 3, 0.1, 10)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: str | None = None) -> dict:
    import torch  # heavy: see the top

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(torch.device(dev)) if dev.startswith("cuda") else "cpu"
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "device": dev, "device_name": name}


def fingerprint(m: dict) -> str:
    return hashlib.sha1(json.dumps(m, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(m: dict) -> Path:
    return cache_dir() / "speed" / f"{fingerprint(m)}.json"


def _load_cache(path: Path) -> dict:
    try:
        doc = read_json(path.read_text(encoding="utf-8"))
        return doc.get("entries", {}) if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def _key(ref: str, seq_len: int, batch: int) -> str:
    return f"{ref}|seq{seq_len}|bs{batch}"


# ----------------------------------------------------------------------------- measuring

def count_params(model) -> tuple[int, int]:
    """(total, without embeddings) of the bare encoder (the task head not counted)."""
    base = model.base_model
    total = emb = 0
    for name, p in base.named_parameters():
        total += p.numel()
        if name.startswith("embeddings."):
            emb += p.numel()
    return total, total - emb


def _build(spec):
    model = load_model(spec, 2, init="random")
    model.eval()
    return model


def _inputs(model, batch: int, seq_len: int, device) -> dict:
    import torch  # heavy: see the top

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (batch, seq_len), generator=g).to(device)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def time_models(models: dict, batch: int, seq_len: int, device, plan=FULL) -> dict[str, list[float]]:
    """Seconds of each timed forward pass of every model, taken round-robin (one pass of each
    model per round) so that a change in the machine's load touches every model alike."""
    import torch  # heavy: see the top

    warmup, min_iters, min_s, max_iters = plan
    inputs = {k: _inputs(m, batch, seq_len, device) for k, m in models.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for k, m in models.items():
            for _ in range(warmup):
                m(**inputs[k])
        sync()
        start, rounds = time.perf_counter(), 0
        while rounds < max_iters and (rounds < min_iters or time.perf_counter() - start < min_s * len(models)):
            for k, m in models.items():
                t0 = time.perf_counter()
                m(**inputs[k])
                sync()
                times[k].append(time.perf_counter() - t0)
            rounds += 1
    return times


def _time_specs(order: list, batch_sizes: list[int], seq_len: int, quick: bool, dev) -> dict:
    """Cache entries of every model of ``order`` at every batch size; ``order[0]`` is the
    reference every speed-up is over."""
    built, sizes, entries = {}, {}, {}
    for spec in order:
        built[spec.ref] = _build(spec).to(dev)
        sizes[spec.ref] = count_params(built[spec.ref])
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for b in batch_sizes:
        times = time_models(built, b, seq_len, dev, QUICK if quick else FULL)
        best = {k: min(v) for k, v in times.items()}
        ref_thr = b / best[order[0].ref]
        for spec in order:
            sec = best[spec.ref]
            entries[_key(spec.ref, seq_len, b)] = {
                "model": spec.name, "params_total": sizes[spec.ref][0], "params_non_embedding": sizes[spec.ref][1],
                "throughput": b / sec, "latency_ms": sec * 1e3,
                "median_ms": statistics.median(times[spec.ref]) * 1e3, "iters": len(times[spec.ref]),
                "quick": quick, "reference_throughput": ref_thr, "speedup": (b / sec) / ref_thr, "measured_at": now}
            log.info(f"{spec.name}: batch {b}: {b / sec:,.1f} examples/s ({sec * 1e3:,.1f} ms/batch fastest, "
                     f"{statistics.median(times[spec.ref]) * 1e3:,.1f} median of {len(times[spec.ref])})")
    return entries


def measure(models, batch_sizes=BATCH_SIZES, seq_len: int = SEQ_LEN, quick: bool = False, device: str | None = None,
            refresh: bool = False, use_cache: bool = True) -> dict:
    """Measure (or read from the cache) every model; returns ``{"machine": ..., "seq_len": ...,
    "models": [row, ...]}``, a row per model in the order given: model, ref, params_total,
    params_non_embedding, and ``batches``: {batch: {throughput, latency_ms, median_ms, iters,
    speedup, reference_throughput, quick, cached, measured_at}}. A model's time is its fastest
    timed pass (the one least disturbed by other work on the machine)."""
    import torch  # heavy: see the top

    batch_sizes = sorted({int(b) for b in batch_sizes})
    if not batch_sizes or batch_sizes[0] <= 0:
        raise UserError("batch sizes must be positive integers")
    if not 1 <= seq_len <= 512:
        raise UserError(f"sequence length must be between 1 and 512, not {seq_len}")
    specs = []
    for n in models:
        s = resolve(n)
        if s.ref not in {x.ref for x in specs}:
            specs.append(s)
    if not specs:
        raise UserError("no model given")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    m = machine(str(dev))
    path = cache_path(m)
    entries = _load_cache(path) if use_cache else {}

    def usable(spec, b):
        e = entries.get(_key(spec.ref, seq_len, b))
        return e is not None and not refresh and (quick or not e.get("quick"))

    todo = [s for s in specs if not all(usable(s, b) for b in batch_sizes)]
    log.debug(f"speed: {len(specs) - len(todo)} of {len(specs)} model(s) from the cache {path}"
              + (" (--refresh: none reused)" if refresh else ""))
    if todo:
        ref = resolve(REFERENCE)
        entries.update(_time_specs([ref] + [s for s in todo if s.ref != ref.ref], batch_sizes, seq_len, quick, dev))
        if use_cache:
            atomic_write_json(path, {"machine": m, "entries": entries})
    rows: dict[str, dict] = {}
    for spec in specs:
        batches = {}
        for b in batch_sizes:
            e = dict(entries[_key(spec.ref, seq_len, b)])
            e["cached"] = spec not in todo
            batches[b] = e
        first = batches[batch_sizes[0]]
        rows[spec.ref] = {"model": spec.name, "ref": spec.ref, "params_total": first["params_total"],
                          "params_non_embedding": first["params_non_embedding"], "batches": batches}
    return {"machine": m, "seq_len": seq_len, "batch_sizes": batch_sizes, "reference": REFERENCE,
            "models": [rows[s.ref] for s in specs]}


def speedups(result: dict, batch: int | None = None, random_init_labels: bool = True) -> dict[str, float]:
    """``{model: speed-up over BERT-Base}`` at ``batch`` (default: the largest measured), the
    format ``results.formats.read_speedups`` reads."""
    b = max(result["batch_sizes"]) if batch is None else int(batch)
    if b not in result["batch_sizes"]:
        raise UserError(f"batch size {b} was not measured (measured: {result['batch_sizes']})")
    out = {}
    for r in result["models"]:
        out[r["model"]] = round(float(r["batches"][b]["speedup"]), 3)
    if random_init_labels:
        out.update({f"{k} (random init)": v for k, v in list(out.items())})
    return out


def render(result: dict) -> str:
    m = result["machine"]
    where = f"{m['device_name']}" if m["device"] != "cpu" else f"{m['cpu']}, {m['cores']} cores, {m['threads']} thread{'s' if m['threads'] != 1 else ''}"
    lines = [f"inference speed on {where}, torch {m['torch']}, sequence length {result['seq_len']}, fp32; "
             f"speed-up over {result['reference']} measured in the same run"]
    bs = result["batch_sizes"]
    head = ["model", "params", "non-emb"] + [x for b in bs for x in (f"bs{b} ex/s", f"bs{b} speedup")] + ["cached"]
    rows = []
    for r in result["models"]:
        cells = [r["model"], f"{r['params_total'] / 1e6:.1f}M", f"{r['params_non_embedding'] / 1e6:.1f}M"]
        for b in bs:
            e = r["batches"][b]
            cells += [f"{e['throughput']:,.1f}", f"{e['speedup']:.2f}x"]
        cells.append("yes" if all(r["batches"][b]["cached"] for b in bs) else "no")
        rows.append(cells)
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines.append("  ".join(h.ljust(w[0]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head)))
    for cells in rows:
        lines.append("  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells)))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the command

def run(models, *, batch_sizes=BATCH_SIZES, seq_len: int = SEQ_LEN, quick: bool = False, device: str | None = None,
        threads: int | None = None, refresh: bool = False, out: str | None = None, speedup_batch: int | None = None,
        json_out: str | None = None) -> dict:
    """``glue-sweep speed`` (its options: ``cli.add_speed_command``): measure on ``threads`` torch threads (default: torch's), then write
    ``{model: speed-up}`` at ``speedup_batch`` (default: the largest) to ``out`` and every
    figure to ``json_out``, where given. Returns :func:`measure`'s result."""
    import torch  # heavy: see the top

    if speedup_batch is not None and speedup_batch not in batch_sizes:
        raise UserError(f"--speedup-batch {speedup_batch} is not one of --batch-sizes {list(batch_sizes)}")
    if threads:
        torch.set_num_threads(threads)
    result = measure(models, batch_sizes, seq_len, quick, device, refresh)
    if out:
        atomic_write_json(out, speedups(result, speedup_batch))
    if json_out:
        atomic_write_json(json_out, result)
    return result
