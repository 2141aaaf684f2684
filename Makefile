# cplitool developer entry points. Every target here is documented in README.md.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RECIPE ?= recipes/quickstart.toml

.PHONY: setup quickstart test test-slow lint gate gpu-check clean

# Create .venv and install cplitool with its test tools (editable).
setup: $(BIN)/cplitool

$(BIN)/cplitool: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $@

# Set up, then run the offline quickstart end to end (digits, small VGG).
quickstart: setup
	$(BIN)/cplitool run $(RECIPE)

# Lint, format check, type check of deploy/, then the fast tests.
test: setup lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Long tests (ablation smoke runs, recipe end-to-end runs).
test-slow: setup
	$(BIN)/pytest -m slow

# Latency gate (CI): run the quickstart (its stages are skipped while up to date), bench its ONNX Runtime CPU
# models at batch 64 on one thread (15 interleaved rounds, 3 s per model: stable on a busy machine), then compare
# the pruned/dense latency ratio with the committed baseline; exit 1 when it regressed beyond the tolerance.
GATE_TOLERANCE ?= 10%
gate: quickstart
	$(BIN)/cplitool bench runs/quickstart --backend onnxruntime --batch 64 --threads 1 --repeats 15 --duration 3
	$(BIN)/cplitool regress runs/quickstart/bench.json --baseline deploy/baselines/cpu.json --tolerance $(GATE_TOLERANCE)

# On a GPU host with PyTorch+CUDA: GPU tests and dense-vs-pruned CUDA benchmarks (JSON under benchmarks/results/).
# Uses the .venv's python when there is one (a GPU host without network may only have its system python).
GPU_PY := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
gpu-check:
	$(GPU_PY) benchmarks/gpu_check.py

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache
