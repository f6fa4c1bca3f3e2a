#!/usr/bin/env bash
# Start the StreamDiffusion model prep app (Linux / macOS): creates .venv on the first run, installs
# requirements.txt with uv whenever it changed, starts the app and opens http://127.0.0.1:7861 in the browser.
# Arguments go to the app, e.g. `./run.sh --port 7862 --auth me:secret`, and `./run.sh setup` sets up the build
# Python (.venv-build: CUDA torch, TensorRT, StreamDiffusion) once, `./run.sh doctor` self-tests it.
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

venv_python=.venv/bin/python
if [ ! -x "$venv_python" ]; then
  echo "Creating .venv with $python_cmd ..."
  "$python_cmd" -m venv .venv
fi
# uv installs the app's requirements many times faster than pip; it comes from PyPI into .venv itself.
if ! "$venv_python" -m uv --version >/dev/null 2>&1; then
  echo "Installing uv into .venv ..."
  "$venv_python" -m pip install --disable-pip-version-check -q uv
fi

# A copy of the requirements last installed: install again only when requirements.txt differs from it.
installed=.venv/requirements.installed.txt
if ! cmp -s requirements.txt "$installed"; then
  echo "Installing requirements.txt into .venv ..."
  "$venv_python" -m uv pip install --python "$venv_python" -q -r requirements.txt
  cp requirements.txt "$installed"
fi

# The app opens the browser itself once it answers (SDPREP_OPEN_BROWSER).
export SDPREP_OPEN_BROWSER=${SDPREP_OPEN_BROWSER:-1}
exec "$venv_python" gradio_prepare.py "$@"
