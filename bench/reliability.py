"""Run the fault suite and the hardening tests, and write docs/reliability.md from the figures they record.

    python bench/reliability.py            runs `pytest tests/test_faults.py tests/test_hardening.py`, then renders
    python bench/reliability.py --no-run   renders from the last run's tests/artifacts/{reliability,hardening}.json

The tests assert; this only reports what they measured: counts, reasons, durations, the messages people read.
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
HARDENING = ROOT / "tests" / "artifacts" / "hardening.json"
BEFORE = "018410e"  # the tree the adversarial pass broke, before the fixes

# Each defect the adversarial pass found (issue 10), the test that shows it fixed, and what that test met when it was
# run against the tree before the fixes (imports adapted to that tree's names, nothing else).
DEFECTS: list[tuple[str, str, str, str]] = [
    (
        "A request chose the engines folder: list, load, delete and Save anywhere",
        "test_no_request_reaches_outside_the_engines_folder",
        "`/library_list(engines_dir=<outside>)` listed the victim; delete and Save followed the request's folder",
        "outside",
    ),
    (
        "Load config read `/dev/zero` (CLI `--from-config`)",
        "test_cli_from_config_refuses_special_and_huge_files_at_once[dev-zero]",
        "`error: MemoryError` after filling the 2 GiB the test allows",
        "special_files:--from-config dev-zero",
    ),
    (
        "… a FIFO",
        "…[fifo]",
        "hung; killed after 30 s",
        "special_files:--from-config fifo",
    ),
    (
        "… 9 MB of YAML",
        "…[9mb-file]",
        "still parsing after 30 s; killed",
        "special_files:--from-config 9mb-file",
    ),
    (
        "`/dev/zero` or a FIFO accepted as a model, LoRA, ControlNet, IP-Adapter",
        "test_special_files_are_refused_as_weights (5 cases)",
        "accepted, config.yaml written (exit 0)",
        "special_files:--model /dev/zero",
    ),
    (
        "45 page requests to load a FIFO froze the server",
        "test_load_config_of_a_fifo_does_not_hold_the_server",
        "every request still waiting after 20 s; the server answered nothing else",
        "fifo_loads",
    ),
    (
        "A 9 MB upload cost 33 s of CPU",
        "test_an_upload_over_the_limit_is_refused_at_once",
        "upload taken (HTTP 200) and parsed",
        "upload_9mb",
    ),
    (
        "64 waiting builds filled Gradio's queue: form changes and Cancel refused",
        "test_form_changes_and_cancel_answer_with_80_builds_waiting",
        "HTTP 503 (queue full) at the 65th build; after the redesign, before the last fix, the pages following "
        "builds took all 40 of Gradio's event slots and form changes never answered",
        "flood",
    ),
    (
        "A model deleted while it builds",
        "test_delete_while_building_is_refused_and_the_build_goes_on[rebuild]",
        "deleted (no refusal); the first build of a model was refused only because no build.json existed yet",
        "races:delete during a rebuild",
    ),
    (
        "Two builds of one model on two GPUs wrote the same files at once",
        "test_two_builds_of_one_model_on_two_gpus_take_turns_and_both_are_recorded",
        "the two build children ran at the same time (3 s overlap)",
        "races:two GPUs, one model",
    ),
    (
        "Two checkpoints with one file name shared a folder",
        "test_two_checkpoints_with_the_same_file_name_get_their_own_folders",
        "one folder; the second config replaced the first",
        "races:two checkpoints named dreamshaper.safetensors",
    ),
    (
        "Relative LoRA / ControlNet / IP-Adapter paths written as typed",
        "test_relative_lora_controlnet_and_ipadapter_paths_are_written_absolute",
        "`loras/style.safetensors` in lora_dict",
        "files:relative paths",
    ),
    (
        "config.yaml, build.json, configs/*.yaml created 0600 under umask 022",
        "test_written_files_are_0644_under_umask_022[build, config-only]",
        "all 0600",
        "files:modes under umask 022 (build)",
    ),
    (
        "LoRA scales NaN / ±Infinity accepted",
        "test_non_finite_lora_scales_are_refused_naming_the_flag (4), …_in_a_config_are_refused (3)",
        "accepted (exit 0), written as .nan / .inf",
        "files:--lora scale NaN",
    ),
    (
        "One corrupt build.json broke the library",
        "test_a_corrupt_build_json_is_listed_as_unreadable_and_the_rest_of_the_library_works (3), "
        "test_the_library_lists_a_corrupt_build_json_as_unreadable",
        "listed as `no recorded build` (its builds silently gone), or the listing failed",
        "corrupt_manifest:list (foreign)",
    ),
    (
        "… and a build of that model died",
        "test_a_build_sets_a_corrupt_build_json_aside_and_succeeds (3)",
        "`Exception in thread sdprep-work` (foreign), or the broken file silently overwritten",
        "corrupt_manifest:build (foreign)",
    ),
    (
        "(found in this pass) A hand-edited build.json could point the page at files outside the model's folder",
        "test_a_build_json_cannot_point_the_page_outside_its_folder",
        "a recorded check image outside was shown again; a variant's config outside was offered to Load "
        "(tried on the tree just before that fix)",
        "corrupt_manifest:paths outside the model's folder",
    ),
    (
        "A config with wrong types gave a raw TypeError / AttributeError",
        "test_a_hand_written_config_with_wrong_types_names_the_key (7)",
        "accepted, or a raw exception",
        "messages:config width-text",
    ),
    (
        "… non-UTF-8 bytes",
        "test_a_config_that_is_not_utf8_is_one_clear_line",
        "`error: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 …`",
        "messages:config not-utf8",
    ),
    (
        "A model id over 4096 characters, a name over 255",
        "test_names_too_long_for_the_os_are_one_clear_line (4), "
        "test_the_preview_of_a_4097_character_model_shows_a_problem_under_the_field",
        "`OSError: [Errno 36] File name too long` (the page's preview failed with it)",
        "messages:--engines-dir of 363 characters",
    ),
    (
        "A dangling-symlink engines folder",
        "test_a_dangling_symlink_engines_folder_names_the_link",
        "`cannot write …/config.yaml: File exists`",
        "messages:dangling link",
    ),
    (
        "`--gpu -1` (hides every GPU)",
        "test_gpu_minus_one_is_refused[build, check, probe]",
        "accepted (exit 0)",
        "messages:build --gpu -1",
    ),
    (
        "`--streamdiffusion-src` at a missing folder",
        "test_a_missing_streamdiffusion_src_names_the_folder[build, probe]",
        "`PyTorch cannot be imported` (exit 2 for build, 1 for probe)",
        "messages:build --streamdiffusion-src missing (exit 3)",
    ),
    (
        "`build --no-wait` on a busy GPU exited 2 (invalid input), `check` 1",
        "test_no_wait_on_a_busy_gpu_exits_busy_for_build_and_check",
        "exit 2",
        "messages:build --no-wait on a busy GPU (exit 4)",
    ),
    (
        '`--auth "user:"` started a server nobody could log into',
        "test_auth_with_an_empty_user_or_password_is_refused_at_start (5)",
        "`user:` and ` :secret` started the server (3 other spellings were already refused)",
        "messages:--auth 'user:'",
    ),
    (
        "With `--auth`, the login page embeds the API description",
        "test_the_login_page_shows_nothing_of_the_api (xfail, strict)",
        "the same",
        "",
    ),
    # The second adversarial pass (issue 16).
    (
        "A 564-byte YAML alias chain (nine levels) froze the server: its message repr()'d billions of items",
        "test_cli_from_config_refuses_yaml_bombs_at_once[alias-chain], "
        "test_an_uploaded_yaml_bomb_is_not_a_config_and_the_server_goes_on (4 cases each)",
        "every request stalled 7–10 s per upload; the CLI ended with MemoryError after 19–39 s",
        "special_files:--from-config alias-chain",
    ),
    (
        "… nesting 5,000 levels deep, an alias of itself, a 5,000-digit integer",
        "…[5000-deep], …[self-alias], …[5000-digit-int]",
        "`not valid YAML: maximum recursion depth…`; a value repr()'d as `[1, [...]]`; a ValueError traceback",
        "special_files:--from-config 5000-deep",
    ),
    (
        "A log line of three backticks closed the result's log block; a 1,000,000-character line reached the page",
        "test_log_lines_reach_the_page_as_text_and_cut",
        "the lines after it rendered as Markdown/HTML (an image request, a link); about 1 MB per redraw",
        "text:build log: three backticks, an image tag, a link, a 1,000,000-character line",
    ),
    (
        "A LoRA id with a backtick and a tag, a model folder named ``m`<b>X`` rendered as HTML",
        "test_a_lora_id_and_a_model_folder_with_markup_are_shown_as_written, "
        "test_markup_in_a_lora_id_and_a_model_folder_is_shown_as_text (Chromium)",
        "a `<b>` element in the derived values and the progress line",
        "text:LoRA id and model folder with a backtick and a tag",
    ),
    (
        "20 queued “Probe again” clicks made every new page's environment panel wait",
        "test_a_new_page_shows_the_environment_while_twenty_reprobes_wait, "
        "test_twenty_probe_again_clicks_cost_two_probes_one_at_a_time",
        "the panel came after all 20 probes (22 s in the report, 10.6 s here)",
        "reprobes",
    ),
    (
        "`--profile fast --no-static-shapes` wrote `static_shapes: true` (a flag equal to its default was lost)",
        "test_a_flag_typed_beside_a_profile_is_written (2 cases)",
        "`static_shapes: true`; `--profile fast --opt-level 3` wrote level 2",
        "messages:build --profile fast --no-static-shapes",
    ),
    (
        "`--profile fp8 --no-fp8` wrote `fp8: true`",
        "test_a_flag_against_its_profile_is_refused_with_the_reason",
        "exit 0, `fp8: true`",
        "messages:build --profile fp8 --no-fp8",
    ),
    (
        "The copied command with a ControlNet `-lllyasviel/…` or an IP-Adapter `-h94/…` failed; POSIX quoting only",
        "test_the_copied_line_with_a_value_starting_with_a_dash_runs_in_a_real_shell; tests/test_command_line.py "
        "(both shells, parsed back by their rules: hypothesis, 150 cases each)",
        "`argument --controlnet: expected one argument`; a JSON LoRA list broke under Windows' rules",
        "messages:copied line with --controlnet=-lllyasviel/…",
    ),
]


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
        "Figures from one run of the fault suite, `tests/test_faults.py`, and the hardening tests, "
        f"`tests/test_hardening.py` (both part of `bash run_tests.sh` and CI), on {run.get('date', '?')}: "
        f"{pytest_line or 'see the run'} (the fault suite alone {run.get('seconds', '?')} s), Python "
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
            f"- The CLI killed with SIGKILL {killed_cli['kills']} times at random moments of a forced build "
            f"(20–100 % of a whole build's {killed_cli.get('whole_build_seconds', '?')} s after start, "
            f"{killed_cli.get('kills_before_the_cli_ended', '?')} of them before it ended; its build child ends "
            f"with it): partial `config.yaml` {killed_cli['partial_configs']} times "
            f"({killed_cli['kills_after_a_config_existed']} kills found a config to check), `build.json` always "
            f"valid JSON; the next build: {killed_cli['next_build']}, with nothing left set aside."
        )
    lines.append("")
    return "\n".join(lines)


def _now(hardening: dict[str, Any], key: str) -> str:
    """What the hardening test recorded for a defect: a message people read, or its figures."""
    if not key:
        return (
            "open: with `auth=`, Gradio 6 writes `window.gradio_api_info` (each public endpoint, its parameters, "
            "their types and defaults; `/?all_endpoints=true` adds the undocumented ones) into the login page it "
            "serves at `/`, and has no setting to leave it out, while `/gradio_api/info`, `/config` and every call "
            "answer 401 (test_the_login_page_answers_401_for_the_api_before_login). Gradio's other public way, "
            "`launch(auth_dependency=...)` (e.g. HTTP Basic), answers 401 at `/` before login, but replaces "
            "Gradio's login page with the browser's own prompt"
        )
    section, _, case = key.partition(":")
    found = hardening.get(section)
    if found is None:
        return "–"
    if section == "outside":
        refused = sum("refused" in str(text) or "Only configs inside" in str(text) for text in found.values())
        example = short(next(iter(found.values())), 140)
        return f"{refused} of {len(found)} attempts refused, nothing outside touched; e.g. {example}"
    if section == "fifo_loads":
        return (
            f"{found['requests']} loads each answered “not a config file” within {found['all_answered_s']:.2f} s; "
            f"a form change right after: {found['preview_after_s'] * 1000:.0f} ms"
        )
    if section == "reprobes":
        return (
            f"a new page's panel answered in {found['new_page_panel_s']:.2f} s, before the {found['queued']} clicks "
            f"(all answered {found['all_clicks_answered_s']:.2f} s after it was asked)"
        )
    if section == "upload_9mb":
        return f"refused in {found['seconds']:.2f} s: {short(found['answer'], 120)}"
    if section == "flood":
        return (
            f"form change p95 {found['preview_p95_s'] * 1000:.0f} ms; Cancel of a waiting build "
            f"{found['cancel_queued_s'] * 1000:.0f} ms, of the running one {found['cancel_running_s']:.2f} s; "
            "a page's third build refused with its reason"
        )
    return f"`{short(found.get(case, '–'), 220)}`"


def render_hardening(hardening: dict[str, Any]) -> list[str]:
    lines = [
        "## Hardening: what the web side can touch, files, floods, races, messages",
        "",
        "The defects an adversarial pass found (issue 10), each with the test in `tests/test_hardening.py` that "
        f"shows it fixed, what that test met on the tree before the fixes ({BEFORE}, imports adapted to its "
        "names), and what it meets now (the message a person reads, or the figure measured in this run). "
        "The CLI runs with a 2 GiB memory limit in these tests; a hang fails at the suite's one timeout.",
        "",
        "| defect | test | before the fixes | now |",
        "|---|---|---|---|",
    ]
    for defect, test, before, key in DEFECTS:
        lines.append(f"| {defect} | `{test}` | {before} | {_now(hardening, key)} |")
    messages = hardening.get("messages", {})
    if messages:
        lines += ["", "<details><summary>Every message of these cases</summary>", "", "| case | message |", "|---|---|"]
        for section in ("special_files", "races", "files", "corrupt_manifest", "messages", "outside", "text"):
            for case, text in hardening.get(section, {}).items():
                lines.append(f"| {short(case, 80)} | {short(text, 260)} |")
        lines += ["", "</details>", ""]
    return lines


def kept_sections(page: Path) -> str:
    """The marked blocks other writers keep in the page (`<!-- soak:start -->` … `<!-- soak:end -->`, written by
    bench/soak.py): carried over as they are when this page is rendered again."""
    current = page.read_text(encoding="utf-8") if page.exists() else ""
    blocks = re.finditer(r"<!-- (\w+):start -->\n.*?<!-- \1:end -->\n?", current, flags=re.DOTALL)
    return "".join(block[0].rstrip("\n") + "\n" for block in blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="render from the last run's figures")
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    args = parser.parse_args(argv)
    pytest_line = ""
    if not args.no_run:
        FIGURES.unlink(missing_ok=True)
        HARDENING.unlink(missing_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "tests/test_faults.py", "tests/test_hardening.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
        pytest_line = next((line for line in reversed(done.stdout.splitlines()) if " passed" in line), "")
        pytest_line = pytest_line.strip("= ").split(" in ")[0]
        if done.returncode != 0:
            print("the fault suite failed; docs/reliability.md not written", file=sys.stderr)
            return done.returncode
    data = json.loads(FIGURES.read_text(encoding="utf-8"))
    if pytest_line:  # kept with the figures, so --no-run renders the same page
        data.setdefault("run", {})["pytest"] = pytest_line
        FIGURES.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    pytest_line = pytest_line or data.get("run", {}).get("pytest", "")
    hardening = json.loads(HARDENING.read_text(encoding="utf-8")) if HARDENING.exists() else {}
    text = render(data, pytest_line).rstrip("\n") + "\n\n" + "\n".join(render_hardening(hardening)).rstrip() + "\n"
    kept = kept_sections(Path(args.out))
    Path(args.out).write_text(text + ("\n" + kept if kept else ""), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
