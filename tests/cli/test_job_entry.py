"""A sweep submitted as a Ray Job (``submit-job``): its entrypoint names the interpreter that runs
it, and an interpreter that lacks the project's dependencies is one line, exit 2, not a traceback
(``orchestrator.cli.job_entry``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestrator.cli import job_entry
from orchestrator.spec import sweep as S

REPO = Path(__file__).resolve().parents[2]


def test_the_job_names_its_interpreter_and_refuses_missing_packages_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(job_entry, "NEEDS", job_entry.NEEDS + ("no_such_package_for_glue_sweep",))
    assert job_entry.main(["plan", "nothing.yaml"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"glue-sweep job: interpreter {sys.executable} (Python {sys.version.split()[0]})"
    assert len(err) == 2 and err[1].startswith("glue-sweep: error: the job's interpreter " + sys.executable)
    assert "lacks no_such_package_for_glue_sweep" in err[1] and "--python" in err[1]


def test_an_interpreter_with_the_packages_runs_the_command(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: j\nmodels: [BERT-Tiny]\ntasks: [SST-2]\n")
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli.job_entry", "plan", str(spec)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr.startswith(f"glue-sweep job: interpreter {sys.executable}") and "BERT-Tiny" in r.stdout


def test_submit_job_runs_the_entrypoint_with_the_named_interpreter(tmp_path, monkeypatch):
    from orchestrator.sweep import ray_job as job

    seen = {}

    class Client:
        def list_jobs(self):
            return []

        def submit_job(self, entrypoint, runtime_env, **kw):
            seen["entry"] = entrypoint
            seen["staged"] = (Path(runtime_env["working_dir"]) / "orchestrator" / "cli" / "job_entry.py").is_file()

        def get_address(self):
            return "http://127.0.0.1:8265"

    monkeypatch.setattr(job, "client", lambda address: Client())
    sweep = S.parse(f"name: j\nmodels: [BERT-Tiny]\ntasks: [SST-2]\nresults: {tmp_path / 'out'}\n")
    job.submit(sweep, None, str(tmp_path / "store"), python="/opt/env/bin/python")
    assert seen["entry"].startswith("/opt/env/bin/python -m orchestrator.cli.job_entry run sweep.yaml --storage ")
    assert seen["staged"]
