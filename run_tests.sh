#!/usr/bin/env bash
# Runs every check CI runs, on a fresh machine too: creates .venv, installs the dev requirements once,
# then ruff (lint + format), mypy (strict, over the app, testkit, tests and bench) and pytest.
# `bash run_tests.sh --quick`: ruff and the core tests only (marker `core`: no app processes), for the edit loop.
# Other arguments go to pytest, e.g. `bash run_tests.sh -k runner` or `bash run_tests.sh --quick -k derive`.
# Browser tests need Chromium (Debian: apt-get install chromium); without it they are skipped.
set -euo pipefail
cd "$(dirname "$0")"
python_cmd=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python_cmd" -m venv .venv
fi
stamp=.venv/.dev-requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  .venv/bin/python -m pip install --disable-pip-version-check -q -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi
quick=false
if [ "${1:-}" = "--quick" ]; then
  quick=true
  shift
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
if $quick; then
  exec .venv/bin/python -m pytest -m core -q "$@"
fi
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
