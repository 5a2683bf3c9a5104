# Everything a fresh machine needs: `make demo` runs the main job, `make test` runs the tests, `make docs` builds the
# API reference and the guides into build/docs (offline).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.art-rslad-installed
DOCS_STAMP := $(VENV)/.art-rslad-docs-installed

.PHONY: setup data demo test lint docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev,robustbench]'
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -b html -W -n --keep-going -q docs build/docs
	@echo "Built build/docs/index.html"

data:
	sh scripts/setup-data.sh

setup: $(STAMP) data

demo: setup
	$(BIN)/art-rslad demo

lint: $(STAMP)
	$(BIN)/ruff check art_rslad tests examples bench studies notebooks

test: setup lint
	$(BIN)/python -m pytest -q
