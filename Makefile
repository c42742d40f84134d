# Two entry points: `make demo` (the main job) and `make test` (CI). Both create .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint extension blender-matrix clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch pinned first so pip takes the CPU wheel on disk, never a CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0 "numpy<2"
	$(BIN)/python -m pip install --quiet bpy==5.0.1 -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dphm demo --out demo_out

# One venv per Blender release we claim, each holding only that bpy (tools/blender_matrix.py).
blender-matrix:
	$(BIN)/python tools/blender_matrix.py create

test: $(STAMP) blender-matrix
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

extension: $(STAMP)
	$(BIN)/python tools/build_extension.py build --out dist

clean:
	rm -rf $(VENV) .venvs dist build demo_out .pytest_cache .ruff_cache
