@echo off
rem Start the StreamDiffusion model prep app (Windows, double-click): creates .venv on the first run with a 64-bit
rem Python 3.10-3.12, installs requirements.txt with uv whenever it changed, starts the app and opens
rem http://127.0.0.1:7861 in the browser. Arguments go to the app, e.g.  run.bat --port 7862 --auth me:secret ;
rem run.bat setup  sets up the build Python (.venv-build: CUDA torch, TensorRT, StreamDiffusion) once, and
rem run.bat doctor  self-tests it. This file must keep CRLF line endings (.gitattributes): cmd misreads LF files.
setlocal
cd /d "%~dp0"
rem UTF-8 for every Python started from here, whatever the console's code page (cp1251, cp1252, ...).
set "PYTHONUTF8=1"

rem Run from inside a ZIP, Explorer extracts only this file: the app's files are not beside it.
if not exist "gradio_prepare.py" goto not_extracted
rem .venv and the build environment are made here: the folder must be writable (not C:\Program Files).
set "WRITE_TEST=.sdprep-write-test.tmp"
copy /y nul "%WRITE_TEST%" >nul 2>&1
if not exist "%WRITE_TEST%" goto not_writable
del "%WRITE_TEST%"

set "VENV_PY=.venv\Scripts\python.exe"
rem A .venv left half-made (an interrupted first run, a moved or deleted Python) is made again.
if not exist ".venv" goto make_venv
if not exist "%VENV_PY%" goto broken_venv
"%VENV_PY%" -c "import sys" >nul 2>&1 || goto broken_venv
goto have_venv

:broken_venv
echo .venv is incomplete or its Python no longer runs: making it again ...
rmdir /s /q ".venv"
if exist ".venv" goto venv_locked

:make_venv
rem A 64-bit Python 3.10-3.12 through the py launcher, newest first: the app's wheels (pandas, gradio) have no 32-bit
rem builds, and 3.13 lacks some. What the launcher said about each one goes to a file shown if none fits.
set "PY_LOG=%TEMP%\sdprep-python-search.txt"
set "PY_CHECK=import struct, sys; v = sys.version_info[:2]; bits = struct.calcsize('P') * 8; sys.exit(0 if bits == 64 and (3, 10) <= v <= (3, 12) else f'{sys.executable} is Python {v[0]}.{v[1]}, {bits}-bit')"
set "BASE_PY="
type nul > "%PY_LOG%"
call :try_python py -3.12
if not defined BASE_PY call :try_python py -3.11
if not defined BASE_PY call :try_python py -3.10
if not defined BASE_PY call :try_python python
if not defined BASE_PY goto no_python
echo Creating .venv with %BASE_PY% ...
%BASE_PY% -m venv .venv || goto venv_failed
if not exist "%VENV_PY%" goto venv_failed

:have_venv
rem uv installs the app's requirements many times faster than pip; it comes from PyPI into .venv itself.
"%VENV_PY%" -m uv --version >nul 2>&1 && goto have_uv
echo Installing uv into .venv ...
"%VENV_PY%" -m pip install --disable-pip-version-check -q uv || goto install_failed

:have_uv
rem A copy of the requirements last installed: install again only when requirements.txt differs from it.
set "INSTALLED=.venv\requirements.installed.txt"
fc /b requirements.txt "%INSTALLED%" >nul 2>&1 && goto start_app
echo Installing requirements.txt into .venv ...
"%VENV_PY%" -m uv pip install --python "%VENV_PY%" -q -r requirements.txt || goto install_failed
copy /y requirements.txt "%INSTALLED%" >nul

:start_app
rem The app opens the browser itself once it answers.
if not defined SDPREP_OPEN_BROWSER set "SDPREP_OPEN_BROWSER=1"
"%VENV_PY%" gradio_prepare.py %*
set "CODE=%ERRORLEVEL%"
rem Any exit but 0 keeps the window open, crash codes too (0xC0000005 is negative: "if errorlevel 1" misses it).
if not "%CODE%"=="0" pause
exit /b %CODE%

:try_python
rem %* is the command (py -3.12, or python); its complaints are kept in PY_LOG, not hidden.
echo %*: >> "%PY_LOG%"
%* -c "%PY_CHECK%" >> "%PY_LOG%" 2>&1 && set "BASE_PY=%*"
exit /b 0

:no_python
echo No 64-bit Python 3.10, 3.11 or 3.12 was found. What the py launcher and python said:
type "%PY_LOG%"
echo Install 64-bit Python 3.12 from https://www.python.org/downloads/windows/ (it brings the py launcher), then
echo run this file again.
pause
exit /b 1

:venv_failed
echo Making .venv with %BASE_PY% failed; see the messages above.
pause
exit /b 1

:venv_locked
echo .venv could not be removed: close programs that use it (the app, a terminal inside it), then run this again.
pause
exit /b 1

:install_failed
echo Installing the app's requirements failed; see the messages above (a proxy or certificate problem: see the
echo README's Windows section).
pause
exit /b 1

:not_writable
echo This folder is not writable: %CD%
echo Copy the app to a folder of your own (e.g. %USERPROFILE%\StreamDiffusionPrep) and run run.bat there.
pause
exit /b 1

:not_extracted
echo The app's files are not beside run.bat: extract the whole ZIP to a folder first, then run run.bat there.
pause
exit /b 1
