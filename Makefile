# Everything a fresh machine needs: `make demo` runs the main job, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.art-rslad-installed

.PHONY: setup data demo test lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev,robustbench]'
	touch $(STAMP)

data:
	sh scripts/setup-data.sh

setup: $(STAMP) data

demo: setup
	$(BIN)/art-rslad demo

lint: $(STAMP)
	$(BIN)/ruff check art_rslad tests examples bench studies

test: setup lint
	$(BIN)/python -m pytest -q
