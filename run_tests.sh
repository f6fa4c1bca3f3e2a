#!/usr/bin/env bash
# Runs every check CI runs, on a fresh machine too: creates .venv, installs the dev requirements once,
# then ruff (lint + format), mypy (strict, over sdprep and the entry) and pytest.
# Extra arguments go to pytest, e.g. `bash run_tests.sh -k runner`.
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
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
