# The Python face: `pip install ./python` into the repo-local .venv, its demo, and the
# benchmark rows' build. Tests: ci/test-python.sh (run by `make test`).
#
# Targets: python-install (release build into .venv), demo-python. Respects CARGO_TARGET_DIR.

PY_VENV := .venv
PY := $(PY_VENV)/bin/python

DEMOS += demo-python

.PHONY: python-install demo-python

$(PY):
	python3 -m venv $(PY_VENV)

python-install: $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python

demo-python: python-install
	$(PY) python/examples/demo.py
