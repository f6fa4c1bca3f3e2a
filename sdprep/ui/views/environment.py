"""The build environment on the page: the Environment tab's table, and the banner that tells Prepare what is missing."""

from __future__ import annotations

import time

from sdprep.jobs.background import BackgroundJob
from sdprep.jobs.environment import Environment, chosen_by
from sdprep.jobs.job import JobResult
from sdprep.messages import Message, cut
from sdprep.text import TABLE, human_duration, human_size, t, word
from sdprep.ui.views.html import code, page_t, page_word, text
from sdprep.ui.views.jobs import outcome_label


def environment_markdown(environment: Environment | None, error: Message | None, lang: str) -> str:
    if error is not None:
        return page_t("env_error", lang, error=error)
    if environment is None:
        return t("env_not_checked", lang)
    summary = environment.summary()
    none = t("env_none", lang)
    first = [f"**{page_t('env_no_nvidia', lang)}**", ""] if environment.no_nvidia else []
    source = chosen_by(environment) or "app"
    interpreter = environment.python.get("interpreter") or environment.python.get("executable")
    rows = [
        ("env_python", f"{_path(interpreter)} — {t(f'python_chosen_{source}', lang)}" if interpreter else none),
        ("env_gpu", text(str(summary["gpu"])) if summary.get("gpu") else t("env_none_gpu", lang)),
        ("env_vram", human_size(summary["vram_total"], lang) if summary.get("vram_total") else "—"),
        ("env_cc", _probed(summary.get("compute_capability"), "—")),
        ("env_cuda", _probed(summary.get("cuda"), t("env_none_gpu", lang))),  # "CUDA: не найдена", as the GPU
        ("env_torch", _probed(summary.get("torch"), none)),
        ("env_tensorrt", _probed(summary.get("tensorrt"), none)),
        ("env_python_version", _probed(summary.get("python"), "—")),
        ("env_sd", _probed(summary.get("streamdiffusion"), none if environment.streamdiffusion.get("error") else "—")),
        (
            "env_sd_location",
            _path(summary.get("streamdiffusion_location")) or none,
        ),
    ]
    lines = [*first, f"| {t('env_item', lang)} | {t('env_value', lang)} |", "|---|---|"]
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
            feature = t(f"feat_{name}", lang) if f"feat_{name}" in TABLE["en"] else code(name, cell=True)
            mark = {True: f"✔ {t('yes', lang)}", False: f"✘ {t('no', lang)}"}.get(supported, t("unknown", lang))
            lines.append(f"| {feature} | {mark} |")
    installed = environment.installed()
    if installed:
        lines += [
            "",
            f"**{t('env_installed', lang)}**",
            "",
            f"| {t('env_feature', lang)} | {t('env_supported', lang)} |",
            "|---|---|",
        ]
        for needed, reason in installed:
            shown = str(page_word(reason, lang)).replace("|", "&#124;") if reason else t("env_installed_ok", lang)
            lines.append(f"| {t(f'feat_{needed.name}', lang)} | {shown} |")
    missing = environment.missing()
    lines.append("")
    mismatch = environment.diffusers_mismatch()
    if mismatch is not None:
        lines += [f"⚠ {page_word(mismatch, lang)}", ""]
    if missing:
        lines += [f"**{t('env_missing', lang)}**", ""] + [f"- {page_word(line, lang)}" for line in missing]
    else:
        lines.append(t("env_ready", lang))
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(environment.probed_at))
    lines += ["", t("env_checked_at", lang, when=when)]
    return "\n".join(lines)


def _path(value: object) -> str:
    """A path the build Python reported, as code in a table cell ("" when none)."""
    return code(str(value), cell=True) if value else ""


def _probed(value: object, otherwise: str) -> str:
    """A version or name the build Python reported: its own words, escaped (otherwise when it reported none)."""
    return text(str(value)) if value else otherwise


def banner_markdown(environment: Environment | None, lang: str) -> str:
    """Above the form: what stops a build on this machine and how to get it, or nothing when it can build."""
    if environment is None:
        return ""
    missing = environment.missing()
    if not missing:
        return ""
    if environment.no_nvidia:  # the root cause, and no setup to run: it would not help
        return f"**{page_word(missing[0], lang)}**"
    items = "\n".join(f"- {page_word(line, lang)}" for line in missing)
    return f"{t('banner_cannot_build', lang)}\n\n{items}\n\n{t('banner_setup', lang)}"


def build_blocked(environment: Environment | None, lang: str) -> str:
    """Why Build is disabled by the machine (not the form): one line, or "" when it is not."""
    if environment is None or not environment.missing():
        return ""
    return t("build_blocked_env", lang)


def job_progress(job: BackgroundJob[JobResult], lang: str) -> str:
    """Where a setup or self-test is: its running stage and time, or how it ended and why."""
    elapsed = human_duration(time.time() - job.created, lang)
    if job.result is not None:
        ended = page_t(
            "prog_finished",
            lang,
            outcome=outcome_label(job.result.outcome, lang, job.kind),
            elapsed=human_duration(job.result.duration, lang),
        )
        return f"{ended}  \n{page_word(job.result.reason, lang)}"
    stages = [event for event in job.events if event.kind == "stage"]
    if not stages:
        return t("prog_starting", lang, elapsed=elapsed)
    last = stages[-1]
    return page_t("prog_running", lang, stage=last.message, since=human_duration(last.elapsed, lang), elapsed=elapsed)


def job_log(job: BackgroundJob[JobResult], lang: str) -> str:
    """The job's log on the page, each line cut (the log file keeps it whole). The self-test words every failed check
    in one line with its fix; the child's own tracebacks behind them stay in its log file (and the CLI's --debug)."""
    events = [event for event in job.events if not (job.kind == "doctor" and event.kind == "raw")]
    return "\n".join(cut(f"[{event.elapsed:7.1f}s] {word(event.message, lang)}") for event in events[-400:])
