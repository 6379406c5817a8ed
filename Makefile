# The two front-door commands: `make demo` and `make test`. Both set up first; setup is idempotent.
PYTHON ?= python3
PIP := $(PYTHON) -m pip --disable-pip-version-check

.PHONY: torch install setup demo test lint format gpu-check

# torch first: without a GPU, torch==2.13.0 (a CPU wheel on our CI machines; a bare `torch` requirement would
# pull a CUDA build of several GB). A torch that is already installed is kept; users bring their own
# (setup.cfg asks torch>=2.1).
torch:
	@$(PYTHON) -c "import torch" 2>/dev/null || { \
	  if command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install "torch>=2.1"; \
	  else $(PIP) install torch==2.13.0; fi; }

# dilnas and what it needs to run, nothing more (the demo).
install: torch
	$(PIP) install -q -e .

# dilnas with the development tools (tests, lint, the optional launchers and deployment).
setup: torch
	$(PIP) install -q -e ".[dev]"

# Search the dilations on the synthetic data, then retrain the derived network from the search's weights.
ifndef DEMO_DIR
DEMO_DIR := runs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
demo: install
	$(PYTHON) -m dilnas.search hydra.run.dir=$(DEMO_DIR)/search
	$(PYTHON) -m dilnas.export run_dir=$(DEMO_DIR)/search out=$(DEMO_DIR)/arch.json
	$(PYTHON) -m dilnas.info arch=$(DEMO_DIR)/arch.json input_size=[224,224]
	$(PYTHON) -m dilnas.retrain arch=$(DEMO_DIR)/arch.json init=$(DEMO_DIR)/search/checkpoints/last.pt \
	  hydra.run.dir=$(DEMO_DIR)/retrain
	@$(PYTHON) -m dilnas.demo_summary $(DEMO_DIR)

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m mypy dilnas

format:
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .

test: setup lint
	$(PYTHON) -m pytest

# The CUDA paths (AMP retraining, both search relaxations, inference and search benchmarks, DDP over NCCL with
# 2+ GPUs) on a machine with a GPU; without CUDA it says so and exits 0. Logs: runs/gpu-check/DATE.
gpu-check: setup
	PYTHON=$(PYTHON) tools/gpu_check.sh
