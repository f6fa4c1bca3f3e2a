"""Run the fault suite and write docs/reliability.md from the figures it records.

    python bench/reliability.py            runs `pytest tests/test_faults.py`, then renders the document
    python bench/reliability.py --no-run   renders from the last run's tests/artifacts/reliability.json

The suite (tests/test_faults.py) asserts; this only reports what it measured: counts, reasons, durations.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "tests" / "artifacts" / "reliability.json"


def short(text: str, limit: int = 150) -> str:
    text = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/ ]+", "<tmp>", str(text))
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seconds_summary(values: list[float]) -> str:
    if not values:
        return "–"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def render(data: dict[str, Any], pytest_line: str) -> str:
    run = data.get("run", {})
    cli = data.get("bad_inputs_cli", {})
    api = data.get("bad_inputs_api", {})
    ui = data.get("bad_inputs_ui", {})
    faults = data.get("faults", {})
    concurrent = data.get("concurrent", {})
    kills = data.get("sigkill_writes", {})
    lines = [
        "# Reliability",
        "",
        f"Figures from one run of the fault suite, `tests/test_faults.py` (part of `bash run_tests.sh` and CI), on "
        f"{run.get('date', '?')}: {pytest_line or 'see the run'} in {run.get('seconds', '?')} s, Python "
        f"{run.get('python', '?')}, {run.get('platform', '?')}, {run.get('cores', '?')} cores"
        f"{', as root' if run.get('root') else ''}. Regenerate with `python bench/reliability.py`. The tests assert "
        "every property below; this page only reports what they measured.",
        "",
        "## Bad input",
        "",
        f"**{len(cli) + len(api) + len(ui)} bad inputs**, each refused with a message that names the field or flag, "
        "nothing written (every file and folder under the test's folder has the same size and mtime before and "
        "after), and, for the web UI, the server still answering `GET /` and a valid preview after each one.",
        "",
        "| through | cases | refused how | time per case |",
        "|---|---:|---|---|",
        f"| CLI (`gradio_prepare.py build …`, a real process) | {len(cli)} | exit code 2, every problem on stderr "
        f"with its flag, no traceback | {seconds_summary([c['seconds'] for c in cli.values()])} (whole process) |",
        f"| parameters API (`params_from_values` → `validate`, then `run_build`) | {len(api)} | an error tied to the "
        f"field; `run_build` refuses before any event | validate() median "
        f"{statistics.median([c['validate_ms'] for c in api.values()]) if api else 0:.2f} ms |",
        f"| web UI API (`/build`, `/save_config` through gradio_client against a started app) | {len(ui)} | "
        f"{sum(c['refused_by'] == 'form' for c in ui.values())} by the form's validation (field named in the "
        f"result), {sum(c['refused_by'] == 'gradio' for c in ui.values())} by Gradio's own range/choice checks "
        f"(value and limits named) | {seconds_summary([c['seconds'] for c in ui.values()])} (round trip) |",
        "",
        "<details><summary>Every case and its message</summary>",
        "",
        "| case | message |",
        "|---|---|",
    ]
    for prefix, cases in (("CLI", cli), ("API", api), ("UI", ui)):
        lines += [f"| {prefix} `{name}` | {short(case['message'])} |" for name, case in cases.items()]
    lines += [
        "",
        "</details>",
        "",
        "## Build faults (stand-in StreamDiffusion)",
        "",
        "Each starts from a proven build whose `config.yaml` is kept; the faulty build changes the parameters "
        "(2 steps), so a wrongly written config would differ. Asserted each time: one line of reason (no "
        "traceback), `config.yaml` byte-identical, no temp file left, and the same parameters then build.",
        "",
        "| fault | outcome | reason (one line, as shown) | s to reason | earlier config.yaml | next build |",
        "|---|---|---|---:|---|---|",
    ]
    for name, fault in faults.items():
        extra = ""
        if "seconds_from_cancel_to_result" in fault:
            extra = f" (cancel → result {fault['seconds_from_cancel_to_result']:.2f} s)"
        intact = "byte-identical" if fault["earlier_config_intact"] else "CHANGED"
        reason = fault["reason"] + (f" ({fault['problem']})" if fault.get("problem") else "")
        lines.append(
            f"| {short(name, 90)} | {fault['outcome']} | {short(reason, 280)} | "
            f"{fault['seconds_to_reason']:.2f}{extra} | {intact} | {fault['next_build']} "
            f"({fault['next_build_seconds']:.2f} s) |"
        )
    cli_faults = data.get("cli_faults", {})
    if cli_faults:
        lines += [
            "",
            "Through the CLI the same faults exit with code 1 and this first line on stderr (config.yaml "
            "byte-identical, the next `build` exits 0):",
            "",
            *[f"- `{mode}`: `{short(line, 200)}`" for mode, line in cli_faults.items()],
        ]
    app_killed = data.get("faults_app_killed", {})
    if app_killed:
        lines += [
            "",
            "The app killed with SIGKILL while its child works (the GPU lock dies with the app, so a child left "
            "running would share the GPU with the next build): the child and everything it started are gone after "
            + ", ".join(f"{seconds:.1f} s ({name.split(':')[0]})" for name, seconds in app_killed.items())
            + ".",
        ]
    lines += [
        "",
        "How the two file-system faults are made (CI runs as root, for whom `chmod` does not stop writes, and "
        "mounts are not available): *disk full* replaces `os.fsync` in the app's process so that syncing the temp "
        "file of `config.yaml` (or of any file in the engines folder) raises `ENOSPC`; *read-only* replaces "
        "`os.access`, `os.open`, `os.mkdir`, `os.replace` and `open` so that writing under the folder raises "
        "`EACCES`, as the OS would for a normal user. The build child is a separate process and is not affected.",
        "",
        "## Concurrent builds",
        "",
    ]
    board, ui_concurrent = concurrent.get("jobboard"), concurrent.get("ui")
    if board:
        lines.append(
            f"- **JobBoard** (the UI's build queue), {board['builds']} different builds submitted by 8 threads at "
            f"once: {board['overlaps']} overlaps (smallest gap between one build's end and the next one's start: "
            f"{board['smallest_gap_between_builds_ms']} ms), run in submission order: "
            f"{'yes' if board['ran_in_submission_order'] else 'NO'}, all 8 results and configs right, "
            f"{board['total_seconds']} s in all."
        )
    if ui_concurrent:
        lines.append(
            f"- **Web UI**, {ui_concurrent['requests']} Build requests from 8 sessions at once: every one answered "
            f'"Built" with its own config path; the build children\'s own log time stamps show '
            f"{ui_concurrent['overlaps']} overlaps (smallest gap {ui_concurrent['smallest_gap_between_children_ms']} "
            f"ms); every `configs/<variant>.yaml` equals its parameters' config and each model's `config.yaml` is "
            f"the one of its last build; {ui_concurrent['total_seconds']} s in all."
        )
    queued = concurrent.get("queued build cancelled: seconds to its result")
    if queued is not None:
        lines.append(
            f"- A queued build cancelled while another runs ends in {queued:.2f} s; the running one goes on, and "
            "the next in the queue builds after it."
        )
    lines += ["", "## SIGKILL while writing configs", ""]
    loop, killed_cli = kills.get("writer loop"), kills.get("CLI build killed")
    if loop:
        lines.append(
            f"- A process writing 8 different configs in a loop through the real write path "
            f"(`write_config` → `atomic_write_text`) killed with SIGKILL at random moments, {loop['kills']} "
            f"times: partial `config.yaml` {loop['partial_configs']} times (it always parsed and equalled one of "
            f"the complete texts; {loop['distinct_complete_configs_seen']} different ones were seen). The kills "
            f"left {loop['temp_files_left_by_kills']} temp files (`.config.yaml.*.tmp`), never listed or read as a "
            f"config; the next build removed them once older than 10 minutes "
            f"({loop['temp_files_left_after_the_next_build']} left)."
        )
    if killed_cli:
        lines.append(
            f"- The CLI killed with SIGKILL {killed_cli['kills']} times at random moments of a build "
            f"(0.1–0.6 s after start; its build child ends with it): partial `config.yaml` "
            f"{killed_cli['partial_configs']} times ({killed_cli['kills_after_a_config_existed']} kills found a "
            f"config to check), `build.json` always valid JSON; the next build: {killed_cli['next_build']}, with "
            "nothing left set aside."
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="render from the last run's figures")
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    args = parser.parse_args(argv)
    pytest_line = ""
    if not args.no_run:
        FIGURES.unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "tests/test_faults.py"], cwd=ROOT, capture_output=True, text=True
        )
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
        pytest_line = next((line for line in reversed(done.stdout.splitlines()) if " passed" in line), "")
        pytest_line = pytest_line.strip("= ").split(" in ")[0]
        if done.returncode != 0:
            print("the fault suite failed; docs/reliability.md not written", file=sys.stderr)
            return done.returncode
    data = json.loads(FIGURES.read_text(encoding="utf-8"))
    Path(args.out).write_text(render(data, pytest_line), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
