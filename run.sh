#!/usr/bin/env bash
# Start the StreamDiffusion model prep app (Linux / macOS, or Git Bash on Windows): creates .venv on the first run,
# installs requirements.txt with uv whenever it changed, starts the app and opens http://127.0.0.1:7861 in the
# browser. Arguments go to the app, e.g. `./run.sh --port 7862 --auth me:secret`, and `./run.sh setup` sets up the
# build Python (.venv-build: CUDA torch, TensorRT, StreamDiffusion) once, `./run.sh doctor` self-tests it.
# On Windows run.bat does the same from a double-click or cmd; this file works from Git Bash / MSYS2 too.
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONUTF8=1

case "$(uname -s)" in
  MINGW* | MSYS* | CYGWIN*)
    # A Windows venv keeps its Python in Scripts\, and the py launcher picks a 64-bit 3.10-3.12 best.
    venv_python=.venv/Scripts/python.exe
    candidates=("py -3.12" "py -3.11" "py -3.10" python)
    newest="(3, 12)"
    ;;
  *)
    venv_python=.venv/bin/python
    candidates=(python3 python)
    newest="(3, 99)"
    ;;
esac

python_cmd=${PYTHON:-}
if [ -z "$python_cmd" ]; then
  for candidate in "${candidates[@]}"; do
    # shellcheck disable=SC2086  # "py -3.12" is a command and its argument
    if $candidate -c "import struct, sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= $newest or struct.calcsize('P') != 8)" >/dev/null 2>&1; then
      python_cmd=$candidate
      break
    fi
  done
fi
if [ -z "$python_cmd" ]; then
  echo "Python 3.10 or newer (on Windows 3.10-3.12, 64-bit) is needed (https://www.python.org/downloads/); or set PYTHON=/path/to/python." >&2
  exit 1
fi

# A .venv left half-made (an interrupted first run, a removed Python) is made again.
if [ -e .venv ] && ! "$venv_python" -c 'import sys' >/dev/null 2>&1; then
  echo ".venv is incomplete or its Python no longer runs: making it again ..."
  rm -rf .venv
fi
if [ ! -e "$venv_python" ]; then
  echo "Creating .venv with $python_cmd ..."
  # shellcheck disable=SC2086
  $python_cmd -m venv .venv
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
