#!/usr/bin/env bash
# Start the StreamDiffusion model prep app (Linux / macOS): creates .venv on the first run, installs
# requirements.txt whenever it changed, starts the app and opens http://127.0.0.1:7861 in the browser.
# Arguments go to the app, e.g. `./run.sh --port 7862 --auth me:secret` or `./run.sh --python /path/to/sd/python`.
# StreamDiffusion, torch and TensorRT are not installed here: they live in the Python that builds (see README).
set -euo pipefail
cd "$(dirname "$0")"

python_cmd=${PYTHON:-}
if [ -z "$python_cmd" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null 2>&1; then python_cmd=$candidate; break; fi
  done
fi
if [ -z "$python_cmd" ]; then
  echo "Python 3.10 or newer is needed (https://www.python.org/downloads/)." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $python_cmd ..."
  "$python_cmd" -m venv .venv
fi
venv_python=.venv/bin/python

# A copy of the requirements last installed: install again only when requirements.txt differs from it.
installed=.venv/requirements.installed.txt
if ! cmp -s requirements.txt "$installed"; then
  echo "Installing requirements.txt into .venv ..."
  "$venv_python" -m pip install --disable-pip-version-check -q -r requirements.txt
  cp requirements.txt "$installed"
fi

# The app opens the browser itself once it answers (SDPREP_OPEN_BROWSER).
export SDPREP_OPEN_BROWSER=${SDPREP_OPEN_BROWSER:-1}
exec "$venv_python" gradio_prepare.py "$@"
