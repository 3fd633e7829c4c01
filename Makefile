# edgelr: `make demo` and `make test` work on a fresh clone; each installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# A local CPU wheel on our machines; an unpinned torch would pull GBs of CUDA packages.
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed
EDGE   := .venv-edge
# Two rows of the tutorial's table, to score on the device side.
ROWS   := 'lecture_hours,lab_hours,passed\n2,3,0\n5,3,1\n'
# Three pumps: one as in training, one at a site never seen with empty cells, one all but empty.
# The same pumps as JSON Lines, with an id to keep; the third far outside the training range.
READINGS := '{"sensor_id": "p7", "site": "north", "model": "P100", "temperature_c": 71.5, "vibration_mm_s": 4.2, "pressure_bar": 4.1, "run_hours": 3100}\n{"sensor_id": "p12", "site": "harbour", "model": null, "temperature_c": 58.0, "pressure_bar": 4.3, "run_hours": 400, "failed": "no"}\n{"sensor_id": "p31", "site": "east", "temperature_c": 140.0, "vibration_mm_s": 100, "pressure_bar": 4.0, "run_hours": 2000}\n'
PUMPS  := 'site,model,temperature_c,vibration_mm_s,pressure_bar,run_hours,failed\nnorth,P100,71.5,4.2,4.1,3100,yes\nharbour,,58.0,,4.3,400,no\nsouth,,,,,,no\n' 

.PHONY: install demo test lint edge-check bench bench-train clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[train,report,dev]'
	touch $(STAMP)

demo: install
	$(BIN)/edgelr train -o models/model.pt
	$(BIN)/edgelr export models/model.pt -o models/model.onnx
	$(BIN)/edgelr verify models/model.pt models/model.onnx
	$(BIN)/edgelr info models/model.onnx
	mkdir -p build && printf $(ROWS) > build/demo_rows.csv
	$(BIN)/edgelr predict models/model.onnx build/demo_rows.csv
	# A table with text columns and empty cells: encoded inside the exported graph.
	$(BIN)/edgelr train --dataset pumps --impute median -o models/pumps.pt
	$(BIN)/edgelr export models/pumps.pt -o models/pumps.onnx
	printf $(PUMPS) > build/demo_pumps.csv
	$(BIN)/edgelr predict models/pumps.onnx build/demo_pumps.csv

lint: install
	$(BIN)/ruff check edgelr tests bench models/reference

test: lint
	$(BIN)/python -m pytest -q

# A virtualenv with no extras (numpy, onnxruntime, click): scoring must work there.
edge-check: install
	mkdir -p build/edge
	$(BIN)/edgelr train --val-fraction 0 -o build/edge/model.pt > /dev/null
	$(BIN)/edgelr export build/edge/model.pt -o build/edge/model.onnx > /dev/null
	$(BIN)/edgelr train --dataset pumps --impute median -o build/edge/pumps.pt > /dev/null
	$(BIN)/edgelr export build/edge/pumps.pt -o build/edge/pumps.onnx > /dev/null
	printf $(ROWS) > build/edge/rows.csv
	printf $(PUMPS) > build/edge/pumps.csv
	rm -rf $(EDGE) && $(PYTHON) -m venv $(EDGE)
	$(EDGE)/bin/pip install --quiet .
	$(EDGE)/bin/python -c "import importlib.util as u, sys; bad = [m for m in ('torch', 'onnx', 'onnxscript') \
	    if u.find_spec(m)]; sys.exit(f'edge venv should not have {bad}') if bad else print('no torch, no onnx')"
	cd build/edge && ../../$(EDGE)/bin/edgelr predict model.onnx rows.csv
	cd build/edge && ../../$(EDGE)/bin/edgelr evaluate model.onnx rows.csv --label passed
	cd build/edge && ../../$(EDGE)/bin/edgelr info model.onnx
	cd build/edge && ../../$(EDGE)/bin/edgelr predict pumps.onnx pumps.csv
	cd build/edge && ../../$(EDGE)/bin/edgelr evaluate pumps.onnx pumps.csv --label failed
	# On the device: stdin CSV and JSON Lines, .jsonl in and out, --keep, --explain, drift warnings, --strict.
	printf $(READINGS) > build/edge/readings.jsonl
	cd build/edge && cat rows.csv | ../../$(EDGE)/bin/edgelr predict model.onnx - --keep passed
	cd build/edge && cat pumps.csv | ../../$(EDGE)/bin/edgelr evaluate pumps.onnx - --label failed
	cd build/edge && cat readings.jsonl | ../../$(EDGE)/bin/edgelr predict pumps.onnx - --format jsonl \
	    --keep sensor_id -o - 2> drift.err
	grep -q "outside their column's training range" build/edge/drift.err && cat build/edge/drift.err
	cd build/edge && ../../$(EDGE)/bin/edgelr predict pumps.onnx readings.jsonl --keep sensor_id --explain \
	    -o explained.csv && head -2 explained.csv
	cd build/edge && ../../$(EDGE)/bin/edgelr predict pumps.onnx pumps.csv --explain -o explained.jsonl \
	    && grep -q '"contributions"' explained.jsonl
	cd build/edge && ! ../../$(EDGE)/bin/edgelr predict pumps.onnx readings.jsonl --strict -o strict.csv \
	    && test ! -e strict.csv
	! $(EDGE)/bin/edgelr train 2> build/edge/train.err
	grep -q "pip install 'edgelr\[train\]'" build/edge/train.err && cat build/edge/train.err
	@echo "edge-check: OK"

# The figures of spec section 7, ratios measured in one run (docs/benchmarks.md):
# scoring (~20 s), text columns (~40 s), then training (~4 min; `make bench-train` runs that part alone).
bench: install
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/tables.py
	$(BIN)/python bench/training.py

bench-train: install
	$(BIN)/python bench/training.py

clean:
	rm -rf $(VENV) $(EDGE) build dist *.egg-info .pytest_cache .ruff_cache
