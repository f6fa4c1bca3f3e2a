"""The layer rules of docs/ARCHITECTURE.md, read from the source (every import, deferred ones included, and every call
that starts a process): a change that breaks one fails here, naming the file and line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from testkit.paths import APP, ROOT

PACKAGE = ROOT / "sdprep"
FRONT_ENDS = ("ui", "cli")  # sdprep/ui (the page) and sdprep/cli (the command line)
CHILD = "child"  # runs inside the build Python, not in the app
PROCESS_MODULE = PACKAGE / "jobs" / "process.py"
GPU_LIBRARIES = ("torch", "tensorrt", "streamdiffusion")
WEB_LIBRARIES = ("gradio", "gradio_client")
TEST_CODE = ("tests", "testkit", "bench")

# Calls that start a process: `subprocess.run(...)`, `os.system(...)`, ... (module, then its function names; an empty
# set is every function of the module).
PROCESS_STARTERS: dict[str, set[str]] = {
    "subprocess": {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"},
    "os": {"system", "popen", "fork", "forkpty", "posix_spawn", "posix_spawnp", "startfile"}
    | {f"exec{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
    | {f"spawn{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    "multiprocessing": set(),
    "pty": {"spawn", "fork"},
}


def layer(path: Path) -> str:
    """ "ui", "cli", "child" or "core" for a file of the package."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 and parts[0] in (*FRONT_ENDS, CHILD) else "core"


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imports(path: Path, placed: Path | None = None) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in the file, wherever it stands (relative ones resolved as if
    the file stood at `placed`, by default where it is)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = (placed or path).relative_to(ROOT).with_suffix("").parts[: -node.level]
                yield node.lineno, ".".join((*base, node.module or ""))
            elif node.module:
                yield node.lineno, node.module


def is_within(module: str, *packages: str) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_the_core_imports_no_front_end_and_no_web_library() -> None:
    """The core (everything of sdprep but ui, cli and child) serves both front ends: it knows neither, nor Gradio."""
    wrong = [
        f"{where(path, line)} imports {module}"
        for path in sources()
        if layer(path) == "core"
        for line, module in imports(path)
        if is_within(module, *(f"sdprep.{front}" for front in FRONT_ENDS), *WEB_LIBRARIES)
    ]
    assert not wrong, wrong


def test_the_front_ends_do_not_import_each_other() -> None:
    wrong = [
        f"{where(path, line)} imports {module}"
        for path in sources()
        if layer(path) in FRONT_ENDS
        for line, module in imports(path)
        for other in FRONT_ENDS
        if other != layer(path) and is_within(module, f"sdprep.{other}")
    ]
    assert not wrong, wrong


def test_the_app_imports_nothing_of_the_tests() -> None:
    wrong = [
        f"{where(path, line)} imports {module}"
        for path in [APP, *sources()]
        for line, module in imports(path)
        if is_within(module, *TEST_CODE)
    ]
    assert not wrong, wrong


def test_the_child_scripts_import_nothing_of_the_app() -> None:
    """sdprep/child runs by path in the build Python, where the app is not installed: it imports its siblings by their
    bare names, never sdprep (nor the app's web libraries)."""
    wrong = [
        f"{where(path, line)} imports {module}"
        for path in sources()
        if layer(path) == CHILD
        for line, module in imports(path)
        if is_within(module, "sdprep", *WEB_LIBRARIES)
    ]
    assert not wrong, wrong


def test_only_the_child_scripts_import_the_gpu_libraries() -> None:
    wrong = [
        f"{where(path, line)} imports {module}"
        for path in [APP, *(path for path in sources() if layer(path) != CHILD)]
        for line, module in imports(path)
        if is_within(module, *GPU_LIBRARIES)
    ]
    assert not wrong, wrong


# A build's stages in their order (docs/ARCHITECTURE.md): jobs/build.py runs them; build_stage is what they share.
BUILD_STAGES = ("build_stage", "build_preflight", "build_admission", "build_reuse", "build_child", "build_record")


def test_a_build_stage_imports_only_earlier_stages() -> None:
    """Each stage stands alone: it imports what the stages share and the stages before it, never the build that runs
    them (jobs/build.py) nor a later stage."""
    found = {path.stem for path in (PACKAGE / "jobs").glob("build_*.py")}
    assert found == set(BUILD_STAGES), "a new stage goes into BUILD_STAGES, in order"
    wrong = [
        f"{where(path, line)} imports {module}"
        for order, stage in enumerate(BUILD_STAGES)
        for path in [PACKAGE / "jobs" / f"{stage}.py"]
        for line, module in imports(path)
        if module == "sdprep.jobs.build" or any(module == f"sdprep.jobs.{later}" for later in BUILD_STAGES[order + 1 :])
    ]
    assert not wrong, wrong


def process_starts(path: Path) -> Iterator[tuple[int, str]]:
    """(line, what) for every call of a process starter, by module attribute (`subprocess.run(...)`) or by a name
    imported from such a module (`from subprocess import run`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    imported: dict[str, str] = {}  # local name -> "module.function"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in PROCESS_STARTERS and not node.level:
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "multiprocessing":
            yield node.lineno, "multiprocessing"
        if isinstance(node, ast.Import) and any(alias.name.startswith("multiprocessing") for alias in node.names):
            yield node.lineno, "multiprocessing"
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
            starters = PROCESS_STARTERS.get(function.value.id)
            if starters is not None and (not starters or function.attr in starters):
                yield node.lineno, f"{function.value.id}.{function.attr}"
        elif isinstance(function, ast.Name) and function.id in imported:
            module, name = imported[function.id].split(".", 1)
            if not PROCESS_STARTERS[module] or name in PROCESS_STARTERS[module]:
                yield node.lineno, imported[function.id]


def test_only_the_process_module_starts_processes() -> None:
    """Every process of the app starts in sdprep/jobs/process.py, which puts it in a group of its own and ends it with
    everything it started. (The child scripts run in the build Python, outside the app: the stand-in's hang and the
    self-test's probes are theirs.)"""
    app_files = [APP, *(path for path in sources() if layer(path) != CHILD)]
    wrong = [
        f"{where(path, line)} calls {what}"
        for path in app_files
        if path != PROCESS_MODULE
        for line, what in process_starts(path)
    ]
    assert not wrong, wrong
    assert any(process_starts(PROCESS_MODULE)), "the rule would hold for a checker that finds nothing"


def test_the_checker_finds_what_the_rules_forbid(tmp_path: Path) -> None:
    """The rules above see deferred imports, relative imports and process starts through an imported name."""
    placed = PACKAGE / "jobs" / "sample.py"  # never written there: only its place resolves `..ui`
    source = (
        "def f():\n"
        "    import gradio\n"
        "    from ..ui import app\n"
        "    from subprocess import Popen as P\n"
        "    import os\n"
        "    P(['x'])\n"
        "    os.execv('x', ['x'])\n"
    )
    sample = tmp_path / "sample.py"
    sample.write_text(source, encoding="utf-8")
    found = [module for _, module in imports(sample, placed)]
    assert "gradio" in found and "sdprep.ui" in found
    assert [what for _, what in process_starts(sample)] == ["subprocess.Popen", "os.execv"]
