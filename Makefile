# Two entry points for a fresh machine: `make demo` (the offline end-to-end run) and `make test`.
# On a CPU machine torch comes as the pinned CPU wheel; on a GPU machine install your CUDA torch
# into .venv first (or run with TORCH=) and it is kept.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install demo test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"

demo: install
	$(BIN)/python -m illada_eval.demo_run

test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest
