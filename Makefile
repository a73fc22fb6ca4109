# The README's two commands are `make demo` and `make test`; both set up .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel of torch that lies on the CI machine's disk; users with a GPU install their own build.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test test-fast lint bench clean

$(BIN)/e2r: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/e2r

setup: $(BIN)/e2r

demo: setup
	$(BIN)/e2r demo

# pytest exits 5 when no test ran; `set -e` semantics make that a failure too.
test: setup
	$(BIN)/ruff check e2r trainer indexer queries tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

test-fast: setup
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
