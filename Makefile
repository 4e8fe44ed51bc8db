# Seesaw: `make demo` sets up .venv and runs the default job; `make test` runs every test (CI).
PY := .venv/bin/python

.PHONY: demo test venv clean
venv: .venv/.installed
.venv/.installed: pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh cpu
	touch $@

demo: venv
	$(PY) -m ray_jobs.train

test: venv
	$(PY) -m pytest -q

clean:
	rm -rf .venv runs data/synthetic
