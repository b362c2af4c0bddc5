"""What a run's figures measured: training rows per task, epochs, early stopping, seeds: the
budget every table and report states, so a 1,600-row run is never read as the papers'
full-data figures. From the records' trial settings and the spec the run saved
(``<run>/sweep.yaml``, for its scheduler). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ..store import location as storage


@dataclass(frozen=True)
class Budget:
    train_rows: str    # "all" or "1,600" (several: "1,600-4,000")
    epochs: str        # "3" (several: "2-4")
    scheduler: str     # "ASHA (grace 1 epoch, reduction factor 2)", "none", or "unknown"
    seeds: str         # "1" or "3 (0,1,2)"

    @property
    def full_data(self) -> bool:
        return self.train_rows == "all"

    def line(self) -> str:
        rows = "all training rows" if self.full_data else f"{self.train_rows} training rows per task"
        return (f"budget: {rows}, {self.epochs} epoch(s), early stopping {self.scheduler}, {self.seeds} seed(s); "
                f"scored on the full dev sets")

    def columns(self) -> dict[str, str]:
        """The budget as CSV columns (the same value on every row)."""
        return {"budget_train_rows": self.train_rows, "budget_epochs": self.epochs,
                "budget_scheduler": self.scheduler, "budget_seeds": self.seeds}


def _span(values, fmt=lambda v: f"{v:,}") -> str:
    vs = sorted(set(values))
    if not vs:
        return "-"
    return fmt(vs[0]) if len(vs) == 1 else f"{fmt(vs[0])}-{fmt(vs[-1])}"


def scheduler_of(run) -> str:
    """The early stopping the run's saved spec names: ``none``, ``ASHA (grace ..., reduction
    factor ...)``, or ``unknown`` when the run kept no readable spec."""
    try:
        spec = yaml.safe_load(storage.at(run).join("sweep.yaml").read_text())
        sched = spec.get("scheduler") if isinstance(spec, dict) else None
    except (OSError, ValueError, yaml.YAMLError, RecursionError):
        return "unknown"
    if sched is None:
        return "none"
    if isinstance(sched, str):
        sched = {"type": sched}
    if not isinstance(sched, dict) or str(sched.get("type", "asha")).lower() == "none":
        return "none" if isinstance(sched, dict) else "unknown"
    return (f"ASHA (grace {sched.get('grace_period', 1):g} epoch, reduction factor {sched.get('reduction_factor', 2):g})"
            if all(isinstance(sched.get(k, 1), (int, float)) for k in ("grace_period", "reduction_factor")) else "ASHA")


def budget_of(records: list[dict], run=None) -> Budget:
    """The budget of ``records`` (their trial settings) and of ``run``'s saved spec."""
    trials = [r["trial"] for r in records if isinstance(r.get("trial"), dict)]
    caps = [t.get("max_train_examples") for t in trials]
    rows = "all" if all(c is None for c in caps) else _span(c for c in caps if c is not None)
    if rows != "all" and any(c is None for c in caps):
        rows += " (some runs: all)"
    epochs = _span((float(t["epochs"]) for t in trials if t.get("epochs") is not None), lambda v: f"{v:g}")
    seeds = sorted({t.get("seed") for t in trials if t.get("seed") is not None})
    return Budget(rows, epochs, scheduler_of(run) if run is not None else "unknown",
                  f"{len(seeds)}" + (f" ({','.join(map(str, seeds))})" if len(seeds) > 1 else ""))
