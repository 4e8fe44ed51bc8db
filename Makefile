# Seesaw: `make demo` sets up .venv and runs the default job; `make test` runs every test (CI).
PY := .venv/bin/python

.PHONY: demo test venv clean
venv: .venv/.installed
.venv/.installed: pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh cpu
	touch $@

demo: venv
	$(PY) -m ray_jobs.train

# two pytest-xdist workers (tests/conftest.py hands out the longest files first): the cluster and
# Tune tests wait on Ray part of the time, and the other worker's tests use it (17.3 min of
# pytest instead of 23 on 2 cores, BENCHMARKS.md)
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest -q -n $(TEST_WORKERS)

clean:
	rm -rf .venv runs data/synthetic
