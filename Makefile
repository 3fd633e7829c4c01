# edgelr: `make demo` and `make test` work on a fresh clone; each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A local CPU wheel on our machines; an unpinned torch would pull GBs of CUDA packages.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

demo: install
	$(BIN)/edgelr train -o models/model.pt
	$(BIN)/edgelr export models/model.pt -o models/model.onnx
	$(BIN)/edgelr verify models/model.pt models/model.onnx
	$(BIN)/edgelr info models/model.onnx

lint: install
	$(BIN)/ruff check edgelr tests

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
