# cplitool developer entry points. Every target here is documented in README.md.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RECIPE ?= recipes/quickstart.toml

.PHONY: setup quickstart test test-slow lint gate gate-baseline gpu-check gpu-bundle clean

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

# Lint, format check, type check, the import rules and cycle check, then the fast tests; then the numeric
# reference tests once more with torch's scalar kernels, a stand-in for another CPU (docs/development.md).
test: setup lint
	$(BIN)/pytest
	ATEN_CPU_CAPABILITY=default $(BIN)/pytest -m reference

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/typecheck_view.py
	$(BIN)/mypy
	$(BIN)/python tools/check_imports.py

# Long tests (ablation smoke runs, recipe end-to-end runs).
test-slow: setup
	$(BIN)/pytest -m slow

# Latency gate (CI), independent of the quickstart: VGG-16 (CIFAR) with seeded random weights and cplitool's L1
# pruning of it to half the MACs, exported to ONNX once per code version (cached under runs/gate/pairs), timed
# interleaved on ONNX Runtime CPU with one thread; exit 1 when their CPU-time ratio exceeds the measured
# baseline deploy/baselines/cpu.json by more than its tolerance (5 x the measured run-to-run spread). A
# regression seen under load (load average above the core count) is measured once more. About a minute.
# `make gate-baseline` re-measures the baseline (10 runs) on the machine the gate will run on.
gate: setup
	$(BIN)/cplitool gate --baseline deploy/baselines/cpu.json

gate-baseline: setup
	$(BIN)/cplitool gate --baseline deploy/baselines/cpu.json --record 10 --multiple 5

# On a GPU host with PyTorch+CUDA: GPU tests and dense-vs-pruned CUDA benchmarks (JSON under benchmarks/results/).
# Uses the .venv's python when there is one (a GPU host without network may only have its system python).
GPU_PY := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PY))
gpu-check:
	$(GPU_PY) benchmarks/gpu_check.py

# For a GPU host without network: gpu-bundle/ (git-ignored, about 1 MiB) with the pure-Python wheels the GPU
# check needs and such a host lacks (torch_pruning, onnxslim, ...), for Python 3.12; gpu_check.py uses it.
gpu-bundle: setup
	$(BIN)/python benchmarks/gpu_bundle.py

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache
