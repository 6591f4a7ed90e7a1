#!/usr/bin/env bash
# The Python face: `pip install ./python` into the repo-local .venv (maturin is fetched
# from PyPI as the PEP 517 backend; a dev-profile build keeps this step short), then
# mypy.stubtest checks the hand-written stubs against the built module, then pytest runs
# python/tests (per-test timeouts, warnings as errors: python/pyproject.toml).
# Respects an inherited CARGO_TARGET_DIR (maturin builds through cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf -- '--> %s\n' "$*"; }

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
py=.venv/bin/python
pip_quiet=(--quiet --disable-pip-version-check)

step "test tools"
"$py" -m pip install "${pip_quiet[@]}" pytest pytest-timeout pytest-asyncio mypy numpy

step "pip install ./python (dev profile)"
MATURIN_PEP517_ARGS="--profile dev --locked" \
  "$py" -m pip install "${pip_quiet[@]}" --force-reinstall --no-deps ./python

# Run from outside python/ so that the installed package, not the source folder, is
# what gets imported.
cd "$(mktemp -d)"
trap 'rm -rf "$PWD"' EXIT
repo="$OLDPWD"

step "stubtest"
"$repo/$py" -m mypy.stubtest channel_messaging

step "pytest"
"$repo/$py" -m pytest -q -p no:cacheprovider -c "$repo/python/pyproject.toml" \
  --rootdir "$repo/python" "$repo/python/tests"
