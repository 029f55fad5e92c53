# Two commands from a fresh clone: `make demo` (the main job) and `make test`.
# Both create .venv with the pinned recipe first (see README "Install").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keras-mi-installed
DEMO_OUT ?= runs/demo
# --durations: every run names its slowest tests (what to thin when make test grows).
PYTEST_ARGS ?= --durations=25
# make test runs the suite in TEST_WORKERS processes (pytest-xdist), a test file per
# process at a time (--dist loadfile), so a module's fixture (a JAX child, a trained
# run folder) is built once. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

.PHONY: setup test demo lock clean bench-quick

setup: $(STAMP)

# Step 1: the normal resolve, held to requirements/lock.txt so a fresh machine
# gets the same versions. Step 2: the packages with stale metadata, --no-deps.
$(STAMP): requirements/base.in requirements/lock.txt requirements/no-deps.txt setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/base.in -c requirements/lock.txt
	$(PY) -m pip install -q --no-deps -r requirements/no-deps.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Lint first (ruff: pyflakes, pycodestyle at 100 columns, isort; see pyproject.toml),
# then the suite, which also runs every docstring example (tests/test_doctests.py).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS) --ignore=tests/bench tests

demo: $(STAMP)
	$(VENV)/bin/keras-mi evaluate --out $(DEMO_OUT)

# Every bench/*.py --quick, each in its own process (tests/bench); CI runs it
# after `make test`.
bench-quick: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) tests/bench

# Re-pin after changing requirements/base.in (run on the reference machine).
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v -i -E '^(tensorflow[-_]privacy|tensorflow[-_]empirical[-_]privacy|tf[-_]keras)==' > requirements/lock.txt

clean:
	rm -rf $(VENV) build *.egg-info
