# deco-bench: `make repro` runs the pipeline on the embedded default, `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch and torchvision must come as a matching pair (torch-fidelity and clean-fid import torchvision).
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test repro bench bench-baseline report clean help lock

# The install skips byte-compilation (pip --no-compile, below): Python writes each module's bytecode on its first
# import instead. An environment with PYTHONDONTWRITEBYTECODE set would then recompile torch's sources in every
# process (+1.5-3 s each, for every pipeline stage and test subprocess), so the targets here do not pass it on.
# The __pycache__ folders this writes are ignored by git (.gitignore) and by DVC (.dvcignore).
unexport PYTHONDONTWRITEBYTECODE

help:
	@echo "make install  - create $(VENV) and install deco-bench into it (idempotent)"
	@echo "make repro    - run the whole DVC pipeline on the active profile (embedded default) and print the report path"
	@echo "make test     - lint, check the import layers, run the test suite (CPU, < 8 min)"
	@echo "make bench    - run the pytest-benchmark suite (tests/benchmarks); compare with a saved run of this machine"
	@echo "make lock     - re-resolve the dependencies and rewrite constraints.txt (the pinned versions)"
	@echo "make bench-baseline - save this machine's run of the hot-path benchmarks for later 'make bench' comparisons"

install: $(STAMP)

# pip prints every package it fetches with a progress bar. constraints.txt pins every resolved version (`make lock`
# regenerates it). On Linux the torch wheel pulls ~3 GB of CUDA libraries even for CPU use: the longest step.
# --no-compile: Python compiles only the modules it imports, on first import, instead of pip byte-compiling
# every file of torch & co. at install time. Installed size: ~5.9 GB (nvidia CUDA libraries 3.2 GB, torch 1.2 GB,
# triton 0.9 GB, the rest 0.6 GB).
$(STAMP): pyproject.toml constraints.txt
	@echo "== deco-bench install [1/4]: virtual environment $(VENV)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "== deco-bench install [2/4]: pip itself (pinned by constraints.txt)"
	$(BIN)/python -m pip install --upgrade pip -c constraints.txt
	@echo "== deco-bench install [3/4]: $(TORCH_PAIR) (~5 GB installed on Linux, 3.2 GB of it CUDA libraries)"
	$(BIN)/python -m pip install --progress-bar on --no-compile -c constraints.txt $(TORCH_PAIR)
	@echo "== deco-bench install [4/4]: deco-bench and its test tools (~150 pinned packages, ~0.6 GB)"
	$(BIN)/python -m pip install --progress-bar on --no-compile -c constraints.txt -e '.[test]' $(TORCH_PAIR)
	touch $(STAMP)
	@echo "== deco-bench install: done ($$($(BIN)/python -m pip list --format=freeze | wc -l) packages in $(VENV))"

# constraints.txt from scratch: a throw-away environment installed without it, then frozen (pip and setuptools kept,
# the editable deco-bench left out).
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e '.[test]' $(TORCH_PAIR)
	{ sed -n '/^#/p' constraints.txt; .lock-venv/bin/python -m pip freeze --all --exclude-editable | LC_ALL=C sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

# ruff (lint) and lint-imports (the import layers of docs/architecture.md) first: seconds, and they fail fast.
# The suite runs on every core (pytest-xdist); --dist loadfile keeps a file's tests, and its shared fixtures such
# as the pipeline run of tests/test_pipeline.py, in one worker. `pytest -q` alone runs it serially.
test: install
	$(BIN)/ruff check deco_bench tests
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# dvc runs each stage's `python -m ...` through PATH: the virtual environment's bin comes first.
repro: install
	@test -d .dvc || $(BIN)/dvc init --quiet
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/python -m deco_bench.report.where

# pytest-benchmark files saved runs by OS and Python version, not by machine: pytest_baseline picks the newest saved
# run recorded on this hardware (deco-bench's fingerprint) and prints the options that compare with it. With none,
# one line says so and the suite runs without comparing (BENCH_REQUIRE=1: stop with exit 2 instead).
BENCH_STORAGE ?= bench/baselines/pytest
BENCH_FAIL    ?= median:25%
BENCH_NAME    ?= local
bench: install
	@compare=$$($(BIN)/python -m deco_bench.tools.pytest_baseline --storage $(BENCH_STORAGE) --fail $(BENCH_FAIL) \
	  $(if $(BENCH_REQUIRE),--require)) || exit $$?; \
	set -x; $(BIN)/python -m pytest tests/benchmarks --benchmark-enable \
	  --benchmark-storage=file://$(BENCH_STORAGE) $$compare -q

bench-baseline: install
	$(BIN)/python -m pytest tests/benchmarks/test_hot_paths.py --benchmark-enable \
	  --benchmark-storage=file://$(BENCH_STORAGE) --benchmark-save=$(BENCH_NAME) -q

clean:
	rm -rf $(VENV) .pytest_cache
