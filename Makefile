# The README's two commands are `make demo` and `make test`; both set up .venv first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel of torch that lies on the CI machine's disk; users with a GPU install their own build.
TORCH_PIN ?= torch==2.13.0
# The ECG graph's exporter and runtime (e2r.ecg_graph), pinned here; pyproject.toml keeps ranges.
ONNX_PIN ?= onnx==1.23.2
ONNXRUNTIME_PIN ?= onnxruntime==1.32.0
# The serving install (README, "Serving without torch"): search, serve, embed, eval --ecg-labels.
SERVE_VENV ?= .venv-serve

.PHONY: setup setup-serve demo test test-fast lint bench clean

$(BIN)/e2r: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)" "$(ONNX_PIN)" "$(ONNXRUNTIME_PIN)"
	$(BIN)/pip install -q -e ".[test]"
	touch $(BIN)/e2r

setup: $(BIN)/e2r

# No torch: pyproject's serve-onnx dependency group (pip >= 25.1), then e2r itself without its
# dependencies. Runs bundles that carry an ONNX graph (every bundle `e2r train` writes).
$(SERVE_VENV)/bin/e2r: pyproject.toml
	$(PY) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/pip install -q --upgrade pip
	$(SERVE_VENV)/bin/pip install -q --group serve-onnx "$(ONNXRUNTIME_PIN)"
	$(SERVE_VENV)/bin/pip install -q --no-deps .
	touch $(SERVE_VENV)/bin/e2r

setup-serve: $(SERVE_VENV)/bin/e2r

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
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache build *.egg-info
