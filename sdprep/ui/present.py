"""Text the server composes for the page: derived values, problems, build progress and results, the environment,
the engines library. Pure functions of core objects and a language (no components, no events), so they are
tested without a server; I/O only where a core function does it (detect_family, render_config).
"""

from __future__ import annotations

import html
import itertools
import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sdprep import derive
from sdprep.config import RuntimeDefaults, render_config
from sdprep.engines import PreparedModel, Variant
from sdprep.family import detect_family
from sdprep.jobs.board import BuildJob
from sdprep.jobs.build import BuildEvent, BuildResult
from sdprep.jobs.check import CheckResult
from sdprep.jobs.environment import Environment
from sdprep.manifest import KIND_LABELS
from sdprep.params import BakedParams
from sdprep.ui.text import TEXT, t
from sdprep.validate import Problem

LOG_MAX_LINES = 400
_SLOT_FIELD = re.compile(r"^controlnets\[(\d+)\]\.(\w+)$")


# --- problems ----------------------------------------------------------------------------------------------------
def field_label(name: str, lang: str) -> str:
    """The form's label of a problem's field, e.g. "Denoise steps (denoise_steps)"; the raw name if it has none."""
    slot = _SLOT_FIELD.match(name)
    key = f"cn{slot.group(1)}_{slot.group(2)}" if slot else f"f_{name}"
    return t(key, lang) if key in TEXT else name


def problems_html(problems: Iterable[Problem], lang: str) -> str:
    """A short list for under a section: red errors, amber warnings, each naming its field."""
    items = [
        f'<li class="sdprep-{problem.severity}"><span class="sdprep-severity">{t("sev_" + problem.severity, lang)}'
        f"</span> <b>{html.escape(field_label(problem.field, lang))}</b>: {html.escape(problem.message)}</li>"
        for problem in sorted(problems, key=lambda p: p.severity != "error")
    ]
    return f'<ul class="sdprep-problems">{"".join(items)}</ul>' if items else ""


def summary_markdown(problems: list[Problem], lang: str) -> str:
    errors = sum(problem.severity == "error" for problem in problems)
    warnings = len(problems) - errors
    if errors:
        return t("sum_errors", lang, errors=errors, warnings=warnings)
    if warnings:
        return t("sum_warnings", lang, warnings=warnings)
    return t("sum_ok", lang)


def route_problems(problems: list[Problem], sections: dict[str, tuple[str, ...]]) -> dict[str, list[Problem]]:
    """Each problem under the section that shows its field (ControlNet slot fields under "controlnet")."""
    routed: dict[str, list[Problem]] = {name: [] for name in sections}
    for problem in problems:
        base = problem.field.split("[", 1)[0].split(".", 1)[0]
        for name, fields in sections.items():
            if problem.field in fields or base in fields:
                routed[name].append(problem)
                break
    return routed


# --- derived values -------------------------------------------------------------------------------------------
def _safe(compute: Any, fallback: str) -> Any:
    try:
        return compute()
    except (ValueError, KeyError):
        return fallback


def derived_markdown(params: BakedParams, lang: str) -> str:
    missing = t("d_unavailable", lang)
    rows = [
        (t("d_t_index", lang), f"`{_safe(lambda: derive.t_index_list(params), missing)}`"),
        (t("d_unet_batch", lang), f"{_safe(lambda: derive.unet_batch(params), missing)}"),
        (t("d_scheduler", lang), f"{_safe(lambda: derive.scheduler(params), missing)}"),
        (t("d_family", lang), _family_text(params)),
        (t("d_lora_dict", lang), f"`{_safe(lambda: json.dumps(derive.lora_dict(params)), missing)}`"),
        (t("d_engine_dir", lang), f"`{derive.engine_dir(params)}`"),
        (t("d_config_path", lang), f"`{derive.config_path(params)}`"),
        (t("d_variant", lang), f"`{_safe(lambda: derive.variant_name(params), missing)}`"),
    ]
    lines = [f"| {t('d_name', lang)} | {t('d_value', lang)} |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _family_text(params: BakedParams) -> str:
    family = _safe(lambda: derive.family(params), "?")
    return derive.FAMILY_LABELS.get(family, str(family))


def config_preview(params: BakedParams, runtime: RuntimeDefaults, problems: list[Problem]) -> str:
    try:
        return render_config(params, runtime)
    except (ValueError, KeyError):
        lines = [f"# {problem.field}: {problem.message}" for problem in problems if problem.severity == "error"]
        return "\n".join(["# config.yaml cannot be written until these errors are fixed:", *lines]) + "\n"


def section_hints(params: BakedParams, lang: str) -> dict[str, str]:
    """One line of derived values for under each section."""
    guess = detect_family(params.model)
    detected = derive.FAMILY_LABELS.get(guess.family, guess.family)
    if params.model_family == "auto":
        checkpoint = t("hint_family", lang, family=detected, source=guess.source)
    else:
        checkpoint = t("hint_family_set", lang, family=_family_text(params), detected=detected)
    sampling = _safe(
        lambda: t(
            "hint_sampling",
            lang,
            t_index=derive.t_index_list(params),
            batch=derive.unet_batch(params),
            scheduler=derive.scheduler(params),
        ),
        "",
    )
    consistency = _safe(lambda: derive.consistency_lora_id(params), None)
    lora_lines = [
        t("hint_consistency", lang, lora=consistency, scale=derive.CONSISTENCY_LORA_SCALE)
        if consistency
        else t("hint_no_consistency", lang),
        _safe(lambda: t("hint_final_loras", lang, loras=json.dumps(derive.lora_dict(params))), ""),
    ]
    return {
        "checkpoint": checkpoint,
        "sampling": sampling,
        "resolution": _safe(
            lambda: t(
                "hint_resolution", lang, width=params.width, height=params.height, variant=derive.variant_name(params)
            ),
            "",
        ),
        "lora": "  \n".join(line for line in lora_lines if line),
        "controlnet": t("hint_controlnet", lang, count=len(params.controlnets))
        if params.use_controlnet
        else t("hint_controlnet_off", lang),
        "ipadapter": t("hint_ipadapter", lang, type=params.ipadapter_type, tokens=params.ipadapter_tokens)
        if params.use_ipadapter
        else t("hint_ipadapter_off", lang),
        "output": t("hint_output", lang, config=derive.config_path(params)),
    }


# --- builds ---------------------------------------------------------------------------------------------------
_MARKERS = {"stage": "==>", "log": "   ", "waiting": "...", "raw": "  |"}


def log_line(event: BuildEvent) -> str:
    return f"[{event.elapsed:7.1f}s] {_MARKERS.get(event.kind, '   ')} {event.message}"


def log_text(events: list[BuildEvent], lang: str) -> str:
    lines = [log_line(event) for event in events]
    if len(lines) > LOG_MAX_LINES:
        hidden = len(lines) - LOG_MAX_LINES
        lines = [t("log_earlier", lang, count=hidden), *lines[-LOG_MAX_LINES:]]
    return "\n".join(lines)


def stage_durations(events: list[BuildEvent], until: float | None) -> list[tuple[str, float]]:
    """(stage, seconds) from the stage events; the last one runs until `until` (or is left out when None)."""
    stages = [event for event in events if event.kind == "stage"]
    durations = [(a.message, b.elapsed - a.elapsed) for a, b in itertools.pairwise(stages)]
    if stages and until is not None:
        durations.append((stages[-1].message, max(0.0, until - stages[-1].elapsed)))
    return durations


def outcome_label(outcome: str, lang: str) -> str:
    return t(f"out_{outcome}", lang)


def progress_markdown(job: BuildJob, position: int, lang: str, now: float | None = None) -> str:
    """Where the build is: queued (with its position), the running stage with times, or done; and what it builds."""
    elapsed = f"{(now or time.time()) - job.created:.1f}"
    events, result = list(job.events), job.result
    what = t("prog_what", lang, model=job.params.model, folder=derive.engine_dir(job.params))
    if result is not None:
        line = t("prog_finished", lang, outcome=outcome_label(result.outcome, lang), elapsed=f"{result.duration:.1f}")
        # A good result lists its stage durations itself; others keep them here.
        done = [] if result.ok else [f"{stage} {seconds:.1f} s" for stage, seconds in result.stages.items()]
        return "  \n".join([line, what] + ([t("prog_stages", lang, stages=" · ".join(done))] if done else []))
    if position > 0:
        return "  \n".join([t("prog_queued", lang, ahead=position, position=position + 1, elapsed=elapsed), what])
    stages = [event for event in events if event.kind in ("stage", "waiting")]
    if not stages:
        return "  \n".join([t("prog_starting", lang, elapsed=elapsed), what])
    last = stages[-1]
    if last.kind == "waiting":
        return "  \n".join([t("prog_waiting_gpu", lang, message=last.message), what])
    line = t("prog_running", lang, stage=last.message, since=f"{last.elapsed:.1f}", elapsed=elapsed)
    done = [f"{stage} {seconds:.1f} s" for stage, seconds in stage_durations(events, None)]
    return "  \n".join([line, what] + ([t("prog_stages", lang, stages=" · ".join(done))] if done else []))


def human_size(size: int | float | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def result_markdown(result: BuildResult | None, lang: str) -> str:
    if result is None:
        return ""
    lines = [f"#### {outcome_label(result.outcome, lang)}", "", html.escape(result.reason), ""]
    if result.ok:
        if result.config_path:
            lines += [t("res_config", lang, path=result.config_path), ""]
        if result.variant:
            lines += [t("res_variant", lang, variant=result.variant, duration=f"{result.duration:.1f}"), ""]
        if result.engines:
            lines += [f"**{t('res_engines', lang)}**", ""]
            for engine in result.engines:
                state = t("res_reused", lang) if engine.get("reused") else t("res_built", lang)
                kind = KIND_LABELS.get(engine.get("kind", ""), engine.get("kind", ""))
                lines.append(f"- **{kind}** · {human_size(engine.get('size'))} · {state}  \n  `{engine.get('path')}`")
            lines.append("")
        if result.stages:
            lines += [
                f"**{t('res_stages', lang)}**",
                "",
                f"| {t('res_stage', lang)} | {t('res_seconds', lang)} |",
                "|---|---:|",
            ]
            lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in result.stages.items()]
        return "\n".join(lines)
    if result.problems:
        lines += [f"**{t('res_problems', lang)}**", ""]
        lines += [
            f"- {t('sev_' + p.severity, lang)}: **{field_label(p.field, lang)}**: {html.escape(p.message)}"
            for p in result.problems
        ]
        lines.append("")
    if result.outcome == "failed" and result.log_tail:
        lines += [f"**{t('res_log_tail', lang)}**", "", "```text", *result.log_tail, "```", ""]
    if result.log_path:
        lines.append(t("res_log_path", lang, path=result.log_path))
    return "\n".join(lines)


def check_markdown(check: CheckResult | None, lang: str) -> str:
    """The load-and-run check after a build: its speed and numbers, or why it failed."""
    if check is None:
        return ""
    lines = [f"#### {t('chk_heading', lang)}: {t('chk_' + check.outcome, lang)}", ""]
    lines += [html.escape(check.speed or check.reason), "", html.escape(check.numbers()), ""]
    if not check.ok:
        for name in check.rebuilt + check.missing:
            lines.append(f"- `{name}`")
        if check.log_tail and check.outcome == "failed":
            lines += ["", f"**{t('res_log_tail', lang)}**", "", "```text", *check.log_tail[-8:], "```"]
    if check.log_path:
        lines += ["", t("res_log_path", lang, path=check.log_path)]
    return "\n".join(lines)


# --- environment ----------------------------------------------------------------------------------------------
def environment_markdown(environment: Environment | None, error: str | None, lang: str) -> str:
    if error:
        return t("env_error", lang, error=html.escape(error))
    if environment is None:
        return t("env_not_checked", lang)
    summary = environment.summary()
    vram = summary.get("vram_total")
    none = t("env_none", lang)
    rows = [
        ("env_gpu", summary.get("gpu") or none),
        ("env_vram", human_size(vram) if vram else "—"),
        ("env_cc", summary.get("compute_capability") or "—"),
        ("env_cuda", summary.get("cuda") or none),
        ("env_torch", summary.get("torch") or none),
        ("env_tensorrt", summary.get("tensorrt") or none),
        ("env_python", summary.get("python") or "?"),
        ("env_sd", summary.get("streamdiffusion") or none),
        (
            "env_sd_location",
            f"`{summary.get('streamdiffusion_location')}`" if summary.get("streamdiffusion_location") else none,
        ),
    ]
    lines = [f"| {t('env_item', lang)} | {t('env_value', lang)} |", "|---|---|"]
    lines += [f"| {t(key, lang)} | {value} |" for key, value in rows]
    if environment.features:
        lines += [
            "",
            f"**{t('env_features', lang)}**",
            "",
            f"| {t('env_feature', lang)} | {t('env_supported', lang)} |",
            "|---|---|",
        ]
        for name, supported in environment.features.items():
            feature = t(f"feat_{name}", lang) if f"feat_{name}" in TEXT else f"`{name}`"
            mark = {True: f"✔ {t('yes', lang)}", False: f"✘ {t('no', lang)}"}.get(supported, t("unknown", lang))
            lines.append(f"| {feature} | {mark} |")
    missing = environment.missing()
    lines.append("")
    if missing:
        lines += [f"**{t('env_missing', lang)}**", ""] + [f"- {html.escape(line)}" for line in missing]
    else:
        lines.append(t("env_ready", lang))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(environment.probed_at))
    lines += ["", t("env_checked_at", lang, when=when)]
    return "\n".join(lines)


# --- engines library ------------------------------------------------------------------------------------------
def variant_status(variant: Variant, lang: str) -> str:
    if variant.missing:
        return t("status_missing", lang)
    if variant.changed:
        return t("status_changed", lang)
    if variant.stale:
        return t("status_stale", lang)
    return t("status_ready", lang)


def library_html(models: list[PreparedModel], folder: Path, lang: str) -> str:
    esc = html.escape
    if not models:
        return f"<p>{esc(t('lib_empty', lang, folder=folder)).replace('`', '')}</p>"
    parts = [f'<p class="sdprep-muted">{esc(t("lib_folder", lang, folder=folder).replace("`", ""))}</p>']
    for model in models:
        latest = next((v for v in model.variants if v.name == model.latest_variant), None)
        state = variant_status(latest, lang) if latest else t("lib_no_build", lang)
        config = esc(str(model.config)) if model.config else "—"
        parts.append(
            f'<div class="sdprep-model"><h4>{esc(model.slug)} <span class="sdprep-badge">{esc(state)}</span></h4>'
            f"<p>{esc(t('lib_model', lang))}: <code>{esc(model.model)}</code> · "
            f"{esc(t('lib_config', lang))}: <code>{config}</code></p>"
        )
        if model.variants:
            parts.append(
                "<table><thead><tr>"
                + "".join(
                    f"<th>{esc(t(key, lang))}</th>"
                    for key in ("d_variant", "lib_status", "lib_engines", "lib_built", "lib_on")
                )
                + "</tr></thead><tbody>"
            )
            for variant in model.variants:
                marker = f' <span class="sdprep-badge">{esc(t("lib_latest", lang))}</span>' if variant is latest else ""
                engines = "".join(
                    f"<li><code>{esc(engine['path'])}</code> {esc(human_size(engine['size']))}</li>"
                    for engine in variant.engines
                )
                missing = "".join(f"<li class='sdprep-error'><code>{esc(path)}</code></li>" for path in variant.missing)
                parts.append(
                    f"<tr><td><code>{esc(variant.name)}</code>{marker}</td>"
                    f"<td>{esc(variant_status(variant, lang))}"
                    f"{f'<br><small>{esc(variant.check_summary)}</small>' if variant.check_summary else ''}</td>"
                    f"<td><details><summary>{len(variant.engines)} · {esc(human_size(variant.size))}</summary>"
                    f"<ul>{engines}{missing}</ul></details></td>"
                    f"<td>{esc(variant.built_at)}</td>"
                    f"<td>{esc(str(variant.gpu))} / {esc(str(variant.tensorrt))}</td></tr>"
                )
            parts.append("</tbody></table>")
        if model.loose_engines:
            parts.append(f'<p class="sdprep-muted">{esc(t("lib_loose", lang, count=model.loose_engines))}</p>')
        parts.append("</div>")
    return "".join(parts)
