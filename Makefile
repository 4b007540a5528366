# Two commands: `make demo` and `make test`. Both create .venv and install on first use:
# every extra (all) + dev tools, at the exact tested versions of constraints.txt.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow lint bench-all clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	@if $(PY) -m pip list 2>/dev/null | grep -iq nvidia && ! command -v nvidia-smi >/dev/null; then \
	  echo "warning: CUDA packages were installed on a machine without a GPU"; fi
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mimlkit demo

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not gpu and not network" -n 2 -q

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow" -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
