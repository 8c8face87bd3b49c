# Two commands for a fresh machine:  `make demo`  and  `make test`.
# Everything installs into .venv next to this file; nothing touches the system Python.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench bench-scale clean

# Re-install when the dependencies or this recipe change.
$(BIN)/cosmoscope: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dask]'
	@touch $@

## demo: install, then simulate four missions, ingest them into the default catalog and summarise
demo: $(BIN)/cosmoscope
	$(BIN)/cosmoscope demo

## test: install, then run the whole test suite
test: $(BIN)/cosmoscope
	$(BIN)/python -m pytest

## bench: the query benchmark (1M rows; results in benchmarks/results/)
bench: $(BIN)/cosmoscope
	$(BIN)/python benchmarks/query_bench.py

## bench-scale: 10M rows on SQLite and 1M on the fake VAST server, beside polars and DuckDB (builds
## the catalogs once under ~/.cache/cosmoscope-bench, about 20 min; results in benchmarks/results/)
bench-scale: $(BIN)/cosmoscope
	$(BIN)/python -m pip install --quiet -e '.[test,dask,bench]'
	$(BIN)/python benchmarks/scale_bench.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
