# deco-bench: `make repro` runs the pipeline on the embedded default, `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch and torchvision must come as a matching pair (torch-fidelity and clean-fid import torchvision).
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test repro bench bench-baseline report clean help

help:
	@echo "make install  - create $(VENV) and install deco-bench into it (idempotent)"
	@echo "make repro    - run the whole DVC pipeline on the active profile (embedded default) and print the report path"
	@echo "make test     - lint, check the import layers, run the test suite (CPU, < 8 min)"
	@echo "make bench    - run the pytest-benchmark suite (tests/benchmarks); compare with a saved run of this machine"
	@echo "make bench-baseline - save this machine's run of the hot-path benchmarks for later 'make bench' comparisons"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PAIR)
	$(BIN)/python -m pip install --quiet -e '.[test]' $(TORCH_PAIR)
	touch $(STAMP)

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
