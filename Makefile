# deco-bench: `make repro` runs the pipeline on the embedded default, `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch and torchvision must come as a matching pair (torch-fidelity and clean-fid import torchvision).
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test repro bench report clean help

help:
	@echo "make install  - create $(VENV) and install deco-bench into it (idempotent)"
	@echo "make repro    - run the whole DVC pipeline on the active profile (embedded default) and print the report path"
	@echo "make test     - run the test suite (CPU, < 10 min)"
	@echo "make bench    - run the pytest-benchmark regression suite (tests/benchmarks)"

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PAIR)
	$(BIN)/python -m pip install --quiet -e '.[test]' $(TORCH_PAIR)
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# dvc runs each stage's `python -m ...` through PATH: the virtual environment's bin comes first.
repro: install
	@test -d .dvc || $(BIN)/dvc init --quiet
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	@$(BIN)/python -m deco_bench.report.where

bench: install
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable --benchmark-storage=file://bench/baselines/pytest \
	  --benchmark-compare --benchmark-compare-fail=median:25% -q

clean:
	rm -rf $(VENV) .pytest_cache
