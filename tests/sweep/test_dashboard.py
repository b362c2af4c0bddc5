"""Watching a real sweep: the live view in a terminal (tmux) mid-sweep and after it ends, the Ray
dashboard in headless chromium (the sweep on the Jobs page with its driver log, trial names in the
actor list, a trial's scores in its worker log), Tune's TensorBoard files and ``status --watch`` ending with the sweep; a fused unit's label.

One small sweep (BERT-Tiny from scratch, 200 SST-2 examples, three learning rates): the 1e-4 trial
waits before its second evaluation, so the terminal shows it running with its first score; the
3e-5 trial waits at its start, so the sweep is still running while the dashboard is looked at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import dashboard_proxy
import numpy as np
import pytest

from orchestrator.config import TrialConfig, make_trial
from orchestrator.store import records as store
from orchestrator.sweep.dashboard import announce, named
from orchestrator.sweep.tune_jobs import as_tune

REPO = Path(__file__).resolve().parents[2]
SESSION = f"glue-sweep-watch-{os.getpid()}"
FIRST = "BERT-Tiny (random init) / SST-2 / bs 16 / lr 1e-4 / seed 0"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("chromium is not installed (make test installs Debian's chromium: apt-get install chromium)")


def screenshot(url: str, out: Path, profile: Path) -> np.ndarray:
    from PIL import Image

    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1600,1000",
                    "--virtual-time-budget=15000", url], capture_output=True, timeout=180)
    assert out.is_file(), f"chromium wrote no screenshot of {url}"
    px = np.asarray(Image.open(out).convert("RGB").resize((400, 250)), dtype=np.int32).reshape(-1, 3)
    assert (px.sum(axis=1) < 600).mean() > 0.01, f"{out}: a blank page"
    print(f"screenshot: {out}")
    return px


def tmux(*args) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def screen_with(text: str):
    """The terminal's text once it shows ``text``, else None."""
    s = screen()
    return s if text in s else None


def wait(what, timeout: float, step: float = 2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:.0f}s waiting; the terminal shows:\n{screen()}")


def statuses(run: Path) -> dict[str, str]:
    return {r["trial_id"]: r["status"] for r in store.read_records(run)[0]}


@pytest.fixture
def sweep(tmp_path, real_glue_dir):
    spec = tmp_path / "watch.yaml"
    spec.write_text(f"name: watch\nmodels: [{{name: BERT-Tiny, init: random}}]\ntasks: [SST-2]\n"
                    f"search: {{batch_size: [16], learning_rate: [1e-4, 5e-5, 3e-5]}}\nepochs: 2\n"
                    f"max_train_examples: 200\nresults: {tmp_path / 'results'}\ndata: {{glue_dir: {real_glue_dir}}}\n"
                    "fuse: off\n")   # solo trials: the injected sleep and stall reach a trial through its own model
    env = {"HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "token", "PYTHONPATH": str(REPO),
           "GLUE_SWEEP_HOOKS": str(REPO / "tests" / "faults" / "plugin.py"), "GLUE_SWEEP_FAULTS": "sleep:lr3e-5:120,stall:lr1e-4:30",
           "COLUMNS": "160", "LINES": "50"}
    cmd = ("env -u GLUE_SWEEP_NO_JOB " + " ".join(f"{k}={v}" for k, v in env.items())   # as a Ray Job, as `make sweep`
           + f" {sys.executable} -m orchestrator.cli.main run {spec}")
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "50", f"cd {REPO} && {cmd}; echo EXIT=$?; sleep 600")
    try:
        yield tmp_path / "results" / "watch"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def seconds(text: str) -> int:
    """Seconds of a duration the live view prints (``3m05s``, ``1h02m``)."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip("│ "))
    h, mi, s = (int(x or 0) for x in m.groups())
    return 3600 * h + 60 * mi + s


def elapsed(text: str) -> int:
    return seconds(re.search(r"elapsed (\S+?);", text).group(1))


def page_text(url: str, profile: Path) -> str:
    """The page's DOM once its scripts have run (headless chromium), tags removed."""
    out = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={profile}", "--window-size=1600,1000", "--virtual-time-budget=15000",
                          "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    return re.sub(r"<[^>]+>", " ", out)


def dashboard(run: Path):
    info = json.loads((run / "dashboard.json").read_text())
    token = Path(info["token_file"]).read_text().strip()
    return dashboard_proxy.start(info["url"], token)


def api(url: str, path: str, **query):
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(query)}", timeout=30) as r:
        body = r.read()
    return json.loads(body) if body[:1] in b"{[" else body.decode(errors="replace")


def test_live_view_dashboard_and_tensorboard_of_a_real_sweep(sweep, tmp_path):
    run = sweep
    # mid-sweep: the live view in the terminal, with a running trial's epoch and score
    wait(lambda: any(r["evals"] for r in store.read_records(run)[0] if r["status"] == "running"), timeout=300)
    # (the view reads the store every second: it shows the score and an ETA soon after the record has it)
    mid = wait(lambda: (lambda s: s if re.search(r"\d\.\d/2 ", s) and re.search(r"elapsed \S+?;", s) else None)(screen()),
               timeout=25)
    print(mid)
    assert "sweep watch (running): 3 trials:" in mid and "ETA" in mid
    for col in ("model", "task", "bs", "lr", "seed", "epoch", "score", "ex/s", "running", "best so far"):
        assert col in mid, col
    row = next(line for line in mid.splitlines() if "1e-4" in line and "/2 " in line)
    assert "BERT-Tiny (random init)" in row and "SST-2" in row, row
    # the 1e-4 trial stalls before its second evaluation: no record changes, yet the clock runs
    # (the sweep's elapsed time), and the sweep's ETA is never below a running trial's own
    first = elapsed(screen())
    time.sleep(2.5)
    later = screen()
    assert elapsed(later) >= first + 2, (first, later)
    etas = [seconds([c.strip() for c in line.split("│") if c.strip()][-1]) for line in later.splitlines()
            if re.search(r"\d\.\d/2 ", line)]
    assert etas and seconds(re.search(r"ETA (\S+)", later).group(1)) >= max(etas), later

    # the dashboard, while the 3e-5 trial holds the sweep open
    wait(lambda: list(statuses(run).values()).count("completed") >= 2, timeout=240)
    server, url = dashboard(run)
    try:
        want = {FIRST, FIRST.replace("1e-4", "5e-5"), FIRST.replace("1e-4", "3e-5")}

        def named_actors():   # a worker is named after its first trial once it is created
            got = api(url, "/api/v0/actors", detail=1)["data"]["result"]["result"]
            return got if FIRST in {a["repr_name"] for a in got} else None

        # the sweep is a Ray Job of its local Ray: on the Jobs page, running, its driver log the sweep's lines
        jobs = [j for j in api(url, "/api/jobs/") if (j.get("metadata") or {}).get("glue_sweep") == "watch"]
        assert len(jobs) == 1 and jobs[0]["status"] == "RUNNING", jobs
        sid = jobs[0]["submission_id"]
        assert sid.startswith("glue-sweep-watch-"), sid
        driver_log = wait(lambda: (lambda t: t if re.search(r"\[\d\d:\d\d:\d\d\] trials: ", t) else None)(
            api(url, f"/api/jobs/{sid}/logs")["logs"]), timeout=60)
        assert "sweep watch: 3 trials" in driver_log and "Ray dashboard: http://127.0.0.1:" in driver_log
        page = page_text(f"{url}/#/jobs/{sid}", tmp_path / "profile")
        assert sid in page and "RUNNING" in page, page[:2000]
        assert re.search(r"\[\d\d:\d\d:\d\d\]trials:\d+", re.sub(r"\s+", "", page)), page[:4000]   # (highlighted: spaced)
        screenshot(f"{url}/#/jobs/{sid}", tmp_path / "job.png", tmp_path / "profile")
        actors = wait(named_actors, timeout=90)
        first = next(a for a in actors if a["repr_name"] == FIRST)
        assert {a["repr_name"] for a in actors if a["class_name"] == "GlueTrial"} <= want
        screenshot(f"{url}/#/actors", tmp_path / "actors.png", tmp_path / "profile")
        screenshot(f"{url}/#/actors/{first['actor_id']}", tmp_path / "actor.png", tmp_path / "profile")
    finally:
        server.shutdown()
    # the trial's worker log (what the actor page's Logs tab shows first, stderr): one line per evaluation
    session_dir = Path(json.loads((run / "dashboard.json").read_text())["session_dir"])
    logs = sorted(session_dir.glob(f"logs/worker-*-{first['pid']}.err"), key=lambda p: p.stat().st_mtime)
    assert logs, f"no worker log of pid {first['pid']}"
    log = logs[-1].read_text()
    assert f":actor_name:{FIRST}" in log
    assert f"[{FIRST}] epoch 1 step" in log and f"[{FIRST}] epoch 2 step" in log and "score" in log
    # a reused worker announces each trial it starts: every trial's name heads its lines in some worker's log
    session = logs[-1].parent
    every = "".join(p.read_text(errors="replace") for p in session.glob("worker-*.err"))
    for title in want:   # (the 3e-5 trial is still asleep in its fault: announced, not yet evaluated)
        assert f":actor_name:{title}" in every, title
        assert ("lr 3e-5" in title) or f"[{title}] epoch 1 step" in every, title

    # after the end: the view stops, counts add up, the end summary names the winner
    end = wait(lambda: screen_with("EXIT="), timeout=300)
    print(end)
    assert "EXIT=0" in end and "sweep watch (not running): 3 trials: 3 completed" in end
    assert "sweep watch finished: 3 completed" in end and "BERT-Tiny (random init) / SST-2: best dev score" in end
    assert set(statuses(run).values()) == {"completed"}

    # Tune's own logs: TensorBoard event files and progress.csv for every trial
    trial_dirs = [p for p in (run / "ray").glob("attempt-*/*") if p.is_dir()]
    assert len(trial_dirs) == 3
    for d in trial_dirs:
        assert list(d.glob("events.out.tfevents.*")) and (d / "progress.csv").is_file(), d

    # status --watch ends by itself once the sweep is over (plain lines when not on a terminal)
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "status", str(run), "--watch", "1"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "sweep watch (not running): 3 trials: 3 completed" in out.stdout


def test_a_fused_units_actor_and_log_lines_name_every_member(capsys):
    """The label Ray shows for a worker (its ``repr``, taken when Tune creates the actor) and the
    ``:actor_name:`` line it prints when it starts a trial: a fused unit names all its members."""
    unit = [make_trial(TrialConfig(model="google/bert_uncased_L-2_H-128_A-2", task="SST-2", batch_size=32,
                                   learning_rate=lr, epochs=1), "BERT-Tiny") for lr in (1e-4, 5e-5, 3e-5)]
    cls = named(lambda config: None)
    actor, solo = cls.__new__(cls), cls.__new__(cls)
    actor.config = {"trial": {**as_tune(unit[0], "BERT-Tiny"), "members": [as_tune(t, "BERT-Tiny") for t in unit]}}
    solo.config = {"trial": as_tune(unit[1], "BERT-Tiny")}
    want = "BERT-Tiny / SST-2 / bs 32 / lr 1e-4/5e-5/3e-5 / seed 0"
    assert repr(actor) == want
    assert repr(solo) == "BERT-Tiny / SST-2 / bs 32 / lr 5e-5 / seed 0"
    announce(unit)
    out, err = capsys.readouterr()
    assert out == err == f":actor_name:{want}\n"
