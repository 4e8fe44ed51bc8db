# Seesaw: `make demo` sets up .venv and runs the default job; `make test` runs the tests.
PY := .venv/bin/python

.PHONY: demo test test-all venv clean
venv: .venv/.installed
.venv/.installed: pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh cpu
	touch $@

demo: venv
	$(PY) -m ray_jobs.train

test: venv
	$(PY) -m pytest -q

test-all: venv  # also the `slow` tests (2-node cluster, Tune search + resume): ~27 min on 2 cores
	$(PY) -m pytest -q -m "slow or not slow"

clean:
	rm -rf .venv runs data/synthetic
