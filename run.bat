@echo off
rem Start the StreamDiffusion model prep app (Windows, double-click): creates .venv on the first run, installs
rem requirements.txt with uv whenever it changed, starts the app and opens http://127.0.0.1:7861 in the browser.
rem Arguments go to the app, e.g.  run.bat --port 7862 --auth me:secret ; and  run.bat setup  sets up the build
rem Python (.venv-build: CUDA torch, TensorRT, StreamDiffusion) once,  run.bat doctor  self-tests it.
setlocal
cd /d "%~dp0"

if exist ".venv\Scripts\python.exe" goto have_venv
echo Creating .venv ...
py -3 -m venv .venv 2>nul
if exist ".venv\Scripts\python.exe" goto have_venv
python -m venv .venv
if exist ".venv\Scripts\python.exe" goto have_venv
echo Python 3.10 or newer is needed: https://www.python.org/downloads/ (tick "Add python.exe to PATH").
pause
exit /b 1

:have_venv
set "VENV_PY=.venv\Scripts\python.exe"
rem uv installs the app's requirements many times faster than pip; it comes from PyPI into .venv itself.
"%VENV_PY%" -m uv --version >nul 2>&1
if not errorlevel 1 goto have_uv
echo Installing uv into .venv ...
"%VENV_PY%" -m pip install --disable-pip-version-check -q uv
if errorlevel 1 (
  echo Installing uv failed; see the messages above.
  pause
  exit /b 1
)

:have_uv
rem A copy of the requirements last installed: install again only when requirements.txt differs from it.
set "INSTALLED=.venv\requirements.installed.txt"
fc /b requirements.txt "%INSTALLED%" >nul 2>&1
if not errorlevel 1 goto start_app
echo Installing requirements.txt into .venv ...
"%VENV_PY%" -m uv pip install --python "%VENV_PY%" -q -r requirements.txt
if errorlevel 1 (
  echo Installing the requirements failed; see the messages above.
  pause
  exit /b 1
)
copy /y requirements.txt "%INSTALLED%" >nul

:start_app
rem The app opens the browser itself once it answers.
if not defined SDPREP_OPEN_BROWSER set "SDPREP_OPEN_BROWSER=1"
"%VENV_PY%" gradio_prepare.py %*
if errorlevel 1 pause
endlocal
