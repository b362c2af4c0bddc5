"""Two sweeps started at once on one machine (``make faults``: about five minutes, two real sweeps
held open): each has its own local Ray with every port chosen free, its own lock and store (one
local, one on S3 on loopback), and each dashboard serves its own trial's worker log."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sweep"))
from test_driver import CLI, REPO, env, records, run_cli, write_spec  # noqa: E402

from orchestrator.store import location as storage, records as store  # noqa: E402


def dashboard_get(info: dict, path: str, **query) -> bytes:
    """A GET on a sweep's Ray dashboard (``dashboard.json``'s address), with its login token."""
    token = Path(info["token_file"]).read_text().strip() if info.get("auth") == "token" else None
    req = urllib.request.Request(f"{info['url']}{path}?{urllib.parse.urlencode(query)}",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def trial_log(info: dict, task: str) -> tuple[str, str] | None:
    """The worker log (stderr) of the ``task`` trial at lr 1e-4, read through the dashboard's log
    API (which needs the node's dashboard agent): (the actor's label, its log) once the actor list
    shows it, else None. The actor is found by its label in the actor list."""
    actors = json.loads(dashboard_get(info, "/api/v0/actors", detail=1))["data"]["result"]["result"]
    want = f" / {task} / bs 16 / lr 1e-4 / seed 0"
    actor = next((a for a in actors if a["class_name"] == "GlueTrial" and a["repr_name"].endswith(want)), None)
    if actor is None:
        print("actors:", [(a["class_name"], a["repr_name"], a["state"]) for a in actors])
        return None
    text = dashboard_get(info, "/api/v0/logs/file", actor_id=actor["actor_id"], suffix="err", lines=2000).decode()
    return actor["repr_name"], text


def test_two_sweeps_started_at_once_both_finish_with_their_own_results(tmp_path, real_glue_dir, s3_server):
    """Sweep A: a relative data.glue_dir, results in a local directory. Sweep B: a relative
    GLUE_DIR, its store on S3. Each starts its own local Ray (every port chosen free: GCS,
    dashboard and its agent, metrics, object and node managers), lock and store; while both run
    (their 5e-5 trials asleep), each one's dashboard serves its finished trial's worker log."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "glue").symlink_to(real_glue_dir)
    spec_a = write_spec(a, "alpha", Path("results"), Path("glue"), tasks="[SST-2]", bs="[16]", lr="[1e-4, 5e-5]",
                        epochs=1, examples=120)
    spec_b = write_spec(b, "beta", Path("results"), Path("glue"), tasks="[RTE]", bs="[16]", lr="[1e-4, 5e-5]",
                        epochs=1, examples=120)
    spec_b.write_text(spec_b.read_text().replace("data: {glue_dir: glue}\n", ""))
    uri = s3_server("concurrent")
    asleep = {"GLUE_SWEEP_FAULTS": "sleep:lr5e-5:150"}
    procs = [subprocess.Popen(CLI + ["run", spec_a.name], cwd=a,
                              env=dict(env(PYTHONPATH=str(REPO), **asleep), GLUE_DIR="/nowhere"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
             subprocess.Popen(CLI + ["run", spec_b.name, "--storage", uri], cwd=b,
                              env=env(PYTHONPATH=str(REPO), GLUE_DIR="glue", **asleep), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)]
    runs = {"alpha": storage.at(a / "results" / "alpha"), "beta": storage.at(uri).join("beta")}
    logs, end = {}, time.monotonic() + 420
    try:
        while len(logs) < 2 and time.monotonic() < end and all(p.poll() is None for p in procs):
            for name, loc in runs.items():
                done = [r for r in store.read_records(loc)[0] if r["status"] == "completed"]
                if name not in logs and done and loc.join("dashboard.json").exists():
                    got = trial_log(json.loads(loc.join("dashboard.json").read_text()), done[0]["trial"]["task"])
                    logs.update({name: got} if got else {})
            time.sleep(2)
        still_running = [p.poll() is None for p in procs]
        errs = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:   # a failed check leaves no sweep behind
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errs]
    assert still_running == [True, True] and set(logs) == {"alpha", "beta"}, (still_running, logs.keys())
    for name, (label, text) in logs.items():   # each dashboard serves its own trial's lines
        assert f"[{label}] epoch 1 step" in text and "score" in text, (name, label, text[-1500:])
    assert "/ SST-2 /" in logs["alpha"][0] and "/ RTE /" in logs["beta"][0]
    ra = records(a / "results" / "alpha")
    rb = {r["trial_id"]: r for r in store.read_records(runs["beta"])[0]}
    assert len(ra) == 2 and all(r["status"] == "completed" and r["trial"]["task"] == "SST-2" for r in ra.values())
    assert len(rb) == 2 and all(r["status"] == "completed" and r["trial"]["task"] == "RTE" for r in rb.values())
    assert store.data_source(a / "results" / "alpha") == (str(a / "glue"), None)
    assert store.data_source(runs["beta"]) == (str(b / "glue"), None)
    urls = [json.loads(loc.join("dashboard.json").read_text())["url"] for loc in runs.values()]
    assert urls[0] != urls[1]                         # two dashboards, two ports
    st = run_cli(["status", uri.replace("concurrent", "concurrent/beta")])
    assert st.returncode == 0 and "2 trials: 2 completed" in st.stdout
