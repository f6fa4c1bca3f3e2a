"""The live preview of the form: problems beside their sections, the summary, derived values, the config.yaml."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdprep import derive
from sdprep.command_line import NotACommand, Shell, shell_command
from sdprep.config import RuntimeDefaults
from sdprep.config_write import ConfigToWrite, config_to_write
from sdprep.estimate import Estimate
from sdprep.estimate import lines as estimate_lines
from sdprep.family import FAMILY_LABELS, detect_family
from sdprep.hub import enabled as hub_enabled
from sdprep.hub import hub_answer
from sdprep.messages import Problem
from sdprep.params import BakedParams
from sdprep.paths import is_hf_id
from sdprep.profiles import profile_of, profile_values
from sdprep.runtime import Runtime, summary
from sdprep.text import after_colon, field_label, t, word
from sdprep.ui.views.html import Markup, after_label, code, html_word, join, page_t, page_word, path_code, render

if TYPE_CHECKING:
    from sdprep.jobs.environment import Environment


def problems_html(problems: Iterable[Problem], lang: str) -> str:
    """A short list for under a section: red errors, amber warnings, each naming its field."""
    items = [
        render(
            '<li class="sdprep-$severity"><span class="sdprep-severity">$label</span> <b>$field</b>: $text</li>',
            severity=problem.severity,
            label=t(f"sev_{problem.severity}", lang),
            field=field_label(problem.field, lang),
            text=after_label(html_word(problem.message, lang), lang),
        )
        for problem in sorted(problems, key=lambda p: p.severity != "error")
    ]
    return render('<ul class="sdprep-problems">$items</ul>', items=join(items)) if items else ""


def summary_markdown(problems: list[Problem], lang: str, blocked: str = "") -> str:
    """One line on the state of the form; `blocked` (the environment's reason) comes first when Build cannot run."""
    errors = sum(problem.severity == "error" for problem in problems)
    warnings = len(problems) - errors
    if errors:
        line = t("sum_errors", lang, errors=errors, warnings=warnings)
    elif warnings:
        line = t("sum_warnings_form" if blocked else "sum_warnings", lang, warnings=warnings)
    else:
        line = t("sum_form_ok" if blocked else "sum_ok", lang)
    return f"{blocked}  \n{line}" if blocked else line


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


def _safe(compute: Callable[[], Any], fallback: str | None) -> Any:
    """A derived value, or `fallback` while the form holds values it cannot be derived from (shown as errors)."""
    try:
        return compute()
    except (ValueError, KeyError, TypeError):
        return fallback


def derived_markdown(params: BakedParams, lang: str, runtime: str = "") -> str:
    """The derived values as a table; `runtime`: where the config's runtime values come from (runtime_text)."""
    missing = t("d_unavailable", lang)
    rows = [
        (t("d_t_index", lang), code(str(_safe(lambda: derive.t_index_list(params), missing)), cell=True)),
        (t("d_unet_batch", lang), f"{_safe(lambda: derive.unet_batch(params), missing)}"),
        (t("d_scheduler", lang), f"{_safe(lambda: derive.scheduler(params), missing)}"),
        (t("d_family", lang), _family_text(params)),
        (t("d_profile", lang), t(f"profile_{profile_of(params)}", lang)),
        (t("d_lora_dict", lang), code(str(_safe(lambda: json.dumps(derive.lora_dict(params)), missing)), cell=True)),
        (t("d_engine_dir", lang), path_code(_safe(lambda: derive.engine_dir(params), missing))),
        (t("d_config_path", lang), path_code(_safe(lambda: derive.config_path(params), missing))),
        (t("d_variant", lang), path_code(_safe(lambda: derive.variant_name(params), missing))),
        *([(t("d_runtime", lang), runtime)] if runtime else []),
    ]
    lines = [f"| {t('d_name', lang)} | {t('d_value', lang)} |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _family_text(params: BakedParams) -> str:
    family = _safe(lambda: derive.family(params), "?")
    return FAMILY_LABELS.get(family, str(family))


def config_target(
    params: BakedParams, runtime: RuntimeDefaults, loaded: Runtime | None, problems: list[Problem]
) -> ConfigToWrite | None:
    """The config Save or Build would write now, runtime values included; None while the form has errors."""
    if any(problem.severity == "error" for problem in problems):
        return None
    try:
        return config_to_write(params, runtime, loaded)
    except (ValueError, KeyError, TypeError):
        return None


def runtime_text(target: ConfigToWrite | None, lang: str) -> str:
    """Where the written config's runtime values come from, and what could not be carried, for the derived table."""
    if target is None:
        return ""
    notes = [summary(target.runtime), *target.notes]
    # In a Markdown table cell: a "|" in a file name would end the cell.
    return "<br>".join(str(page_word(note, lang)).replace("|", "&#124;") for note in notes)


def config_preview(target: ConfigToWrite | None, problems: list[Problem], lang: str) -> str:
    if target is not None:
        return target.text()
    lines = [
        f"# {field_label(p.field, lang)}: {after_colon(word(p.message, lang), lang)}"
        for p in problems
        if p.severity == "error"
    ]
    return "\n".join([f"# {t('yaml_blocked', lang)}", *lines]) + "\n"


def _hub_line(model: str, lang: str) -> str:
    """What the Hub said of the id (no waiting: the answer known so far), or that the check was skipped."""
    if not is_hf_id(model.strip()):
        return ""
    if not hub_enabled():
        return t("hub_hint_off", lang)
    answer = hub_answer(model.strip())
    if answer is None:
        return t("hub_hint_pending", lang)
    if answer.status == "exists":
        return t("hub_hint_exists", lang, count=len(answer.files))
    return t(f"hub_hint_{answer.status}", lang)


def section_hints(params: BakedParams, lang: str) -> dict[str, str]:
    """One line of derived values for under each section."""
    guess = detect_family(params.model)
    detected = FAMILY_LABELS.get(guess.family, guess.family)
    source = t(f"family_source_{guess.source}", lang)
    if params.model_family == "auto":
        checkpoint = page_t("hint_family", lang, family=detected, source=source)
    else:
        checkpoint = page_t("hint_family_set", lang, family=_family_text(params), detected=detected)
    hub_line = _hub_line(params.model, lang)
    if hub_line:
        checkpoint = Markup(f"{checkpoint}  \n{hub_line}")  # the app's own sentence: no value from outside
    sampling = _safe(
        lambda: page_t(
            "hint_sampling",
            lang,
            t_index=str(derive.t_index_list(params)),  # as a list, the way config.yaml writes it
            batch=derive.unet_batch(params),
            scheduler=derive.scheduler(params),
        ),
        "",
    )
    consistency = _safe(lambda: derive.consistency_lora_id(params), None)
    lora_lines = [
        page_t("hint_consistency", lang, lora=consistency, scale=derive.CONSISTENCY_LORA_SCALE)
        if consistency
        else t("hint_no_consistency", lang),
        _safe(lambda: page_t("hint_final_loras", lang, loras=json.dumps(derive.lora_dict(params))), ""),
    ]
    return {
        "checkpoint": checkpoint,
        "sampling": sampling,
        "resolution": _safe(
            lambda: page_t(
                "hint_resolution", lang, width=params.width, height=params.height, variant=derive.variant_name(params)
            ),
            "",
        ),
        "lora": "  \n".join(line for line in lora_lines if line),
        "controlnet": page_t("hint_controlnet", lang, count=len(params.controlnets))
        if params.use_controlnet
        else t("hint_controlnet_off", lang),
        "ipadapter": page_t("hint_ipadapter", lang, type=params.ipadapter_type, tokens=params.ipadapter_tokens)
        if params.use_ipadapter
        else t("hint_ipadapter_off", lang),
        "profile": t(f"hint_profile_{profile_of(params)}", lang),
        "output": _safe(lambda: page_t("hint_output", lang, config=derive.config_path(params)), ""),
    }


# --- the estimate, the command line and what the profile can be here (issue 13) ----------------------------------


def estimate_markdown(
    estimate: Estimate | None, free_disk: int | None, free_vram: int | None, folder: Path, lang: str
) -> str:
    """The estimate before building: each figure, then (small) where it comes from."""
    if estimate is None:
        return f"{t('est_heading', lang)}\n\n{t('est_unavailable', lang)}"
    items = [t("est_heading", lang), ""]
    for row in estimate_lines(estimate, free_disk, free_vram, folder):
        value = page_word(row.value, lang)
        shown = f"**⚠ {value}**" if row.alarm else value
        items += [
            f"**{html.escape(t(row.label, lang))}:** {shown}  ",
            f"<small>{page_word(row.source, lang)}</small>",
            "",
        ]
    items.append(f"<small>{html.escape(t('est_assumes', lang))}</small>")
    return "\n".join(items)


def command_text(params: BakedParams, problems: list[Problem], lang: str, shell: Shell = "posix") -> str:
    """The `python gradio_prepare.py build ...` line for the form, quoted for `shell`, or why there is none."""
    if any(problem.severity == "error" for problem in problems):
        return t("command_blocked", lang)
    try:
        return shell_command(params, shell)
    except NotACommand as problem:
        return t("command_unavailable", lang, reason=word(problem.message, lang))


def profile_availability(environment: Environment | None, params: BakedParams, lang: str) -> tuple[str, str]:
    """Why the profiles other than Flexible, and FP8, cannot build with the last probed StreamDiffusion and GPU
    ("" when they can, or nothing is known yet), worded from the same refusals a build meets."""
    if environment is None:
        return "", ""
    others = environment.profile_refusals(replace(params, **profile_values("quality")))  # type: ignore[arg-type]
    return (
        " ".join(word(problem.message, lang) for problem in others),
        feature_lock(environment, replace(params, **profile_values("fp8")), "fp8", lang),  # type: ignore[arg-type]
    )


def feature_lock(environment: Environment | None, params: BakedParams, field: str, lang: str) -> str:
    """Why `field`'s choice in `params` cannot build here (what is missing and the command that installs it), or ""."""
    if environment is None:
        return ""
    refused = [p for p in environment.refusals(params) if p.field == field and p.severity == "error"]
    return " ".join(word(problem.message, lang) for problem in refused)
