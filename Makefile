# Build the post, run the tests, train the models.  `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
EXTRAS ?= dev  # CI adds actionlint (an extra of its own: it downloads its binary at install)
export QUARTO_PYTHON := $(abspath $(PY))
# Quarto (pip install quarto-cli puts it in .venv/bin) and the Jupyter kernel must come from the venv.
WITH_VENV := PATH="$(abspath $(VENV))/bin:$$PATH"

.PHONY: help setup lint test train render preview quarto-check bench-train bench-rsvd clean clean-cache

help:
	@echo "make setup        create .venv and install the package with pinned dependencies"
	@echo "make lint         ruff check and ruff format --check over the whole tree"
	@echo "make test         make lint, then the test suite (the post runs in quick mode)"
	@echo "make train        train or load every experiment with all its seeds (full mode, JOBS=nproc at a time)"
	@echo "make render       train or load the models, then quarto render into _site/"
	@echo "make preview      quarto preview (live reload)"
	@echo "make bench-train  training throughput vs the PyTorch example loop and the machine's FLOP/s"
	@echo "make bench-rsvd   randomized SVD vs torch.svd_lowrank, scikit-learn and the full SVD"
	@echo "make clean        remove rendered output; make clean-cache also removes trained models"

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(strip $(EXTRAS))]'
	touch $@

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(WITH_VENV) $(PY) -m pytest  # quarto may live in .venv (pip install quarto-cli)

train: setup
	LOWRANK_QUICK= $(PY) -m lowrank train --jobs $(JOBS)  # one model per core: small matmuls use two threads poorly

render: train quarto-check
	LOWRANK_QUICK= $(WITH_VENV) quarto render

preview: setup quarto-check
	$(WITH_VENV) quarto preview

quarto-check:
	@$(WITH_VENV) command -v quarto >/dev/null || { echo "quarto not found: install it with 'pip install quarto-cli' (into .venv) or from https://quarto.org/docs/get-started/"; exit 1; }

bench-train: setup
	$(PY) bench/train_speed.py

bench-rsvd: setup
	$(PY) bench/rsvd.py

clean:
	rm -rf _site .quarto post/*.quarto_ipynb post/index_files .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

clean-cache:
	rm -rf .cache/lowrank
