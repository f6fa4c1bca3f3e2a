"""A build on the page: where it is (queued, the running stage, done), its log, its result, its check."""

from __future__ import annotations

import itertools
import time

from sdprep import derive
from sdprep.jobs.board import BuildJob
from sdprep.jobs.build import BuildResult
from sdprep.jobs.check import CheckResult
from sdprep.jobs.job import JobResult
from sdprep.jobs.progress import JobEvent, TensorrtPhase, stage_message
from sdprep.messages import Message, Size, cut
from sdprep.text import TABLE, field_label, human_duration, t, word
from sdprep.ui.views.html import Markup, after_label, code, code_block, join, page_t, page_word, render, text

LOG_MAX_LINES = 400
_MARKERS = {"stage": "==>", "log": "   ", "waiting": "...", "raw": "  |"}


def log_line(event: JobEvent, lang: str) -> str:
    """One line of the log box (plain text): a line longer than the page should carry is cut (the file has it)."""
    return cut(f"[{event.elapsed:7.1f}s] {_MARKERS.get(event.kind, '   ')} {word(event.message, lang)}")


def log_text(events: list[JobEvent], lang: str) -> str:
    lines = [log_line(event, lang) for event in events]
    if len(lines) > LOG_MAX_LINES:
        lines = [t("log_earlier", lang, count=len(lines) - LOG_MAX_LINES), *lines[-LOG_MAX_LINES:]]
    return "\n".join(lines)


def stage_durations(events: list[JobEvent], until: float | None) -> list[tuple[str, float]]:
    """(stage id, seconds) from the stage events; the last one runs until `until` (or is left out when None)."""
    stages = [event for event in events if event.kind == "stage" and event.stage]
    durations = [(a.stage or "", b.elapsed - a.elapsed) for a, b in itertools.pairwise(stages)]
    if stages and until is not None:
        durations.append((stages[-1].stage or "", max(0.0, until - stages[-1].elapsed)))
    return durations


# Reasons that carry the build Python's own error text (an exception from torch, TensorRT or StreamDiffusion): it is
# shown as it was written, as code, after a sentence in the page's language.
CHILD_ERRORS = ("child_error", "check_child_error")


def reason_markdown(reason: Message | str, lang: str) -> str:
    """Why a job ended, for Markdown: worded and escaped; an error in the child's own words as a code block."""
    if not isinstance(reason, Message) or reason.code not in CHILD_ERRORS:
        return page_word(reason, lang)
    params = reason.params
    lines = f"{params.get('type') or 'Error'}: {params.get('detail') or ''}".splitlines() or [""]
    lines += [f"- {item}" for item in params.get("items") or []]
    parts = [t("res_child_error", lang), "", code_block(lines)]
    hint = params.get("hint")
    if hint:
        parts += ["", page_word(hint, lang)]
    return "\n".join(parts)


def outcome_label(outcome: str, lang: str, kind: str = "build") -> str:
    """How a job ended, named by what ran: "✘ Build failed", "✘ Self-test failed", "✘ Setup failed"."""
    own = f"out_{kind}_{outcome}"
    return t(own if own in TABLE["en"] else f"out_{outcome}", lang)


def _stages_line(stages: list[tuple[str, float]], lang: str) -> str:
    parts = [f"{page_word(stage_message(stage), lang)} {human_duration(seconds, lang)}" for stage, seconds in stages]
    return t("prog_stages", lang, stages=" · ".join(parts))


TENSORRT_BARS = 2  # phases drawn as bars (the top-level one and the one inside it); deeper ones as a line of text


def _phase_bar(label: str, phase: TensorrtPhase) -> Markup:
    """One phase as a labelled <progress> bar; a phase of unknown length (0 steps) as a bar that only moves."""
    if phase.steps:
        bar = render(
            '<progress max="$steps" value="$step" aria-label="$label">$percent%</progress>',
            steps=phase.steps,
            step=phase.step,
            label=label,
            percent=phase.percent,
        )
    else:
        bar = render('<progress aria-label="$label"></progress>', label=label)
    return render('<div class="sdprep-trt-row"><span>$label</span>$bar</div>', label=label, bar=bar)


def tensorrt_bars(phases: tuple[TensorrtPhase, ...], lang: str) -> Markup:
    """TensorRT's open phases as HTML (inside gr.Markdown, after a blank line): bars for the outer ones, the rest as
    text. Every name and number is escaped: they come from the build child."""
    if not phases:
        return Markup("")
    top = phases[0]
    rows = [
        _phase_bar(
            t("trt_progress", lang, phase=top.name, step=top.step, steps=top.steps, percent=top.percent, inner=""), top
        )
    ]
    rows += [_phase_bar(f"{phase.name} {phase.step}/{phase.steps}", phase) for phase in phases[1:TENSORRT_BARS]]
    deeper = " · ".join(f"{phase.name} {phase.step}/{phase.steps}" for phase in phases[TENSORRT_BARS:])
    if deeper:
        rows.append(render('<div class="sdprep-trt-deeper">$deeper</div>', deeper=deeper))
    return render('<div class="sdprep-trt" id="build-tensorrt">$rows</div>', rows=join(rows))


def progress_markdown(job: BuildJob, position: int, lang: str, now: float | None = None) -> str:
    """Where the build is: queued (with its position), the running stage with times, or done; and what it builds."""
    elapsed = human_duration((now or time.time()) - job.created, lang)
    events, result = list(job.events), job.result
    what = page_t("prog_what", lang, model=job.params.model, folder=derive.engine_dir(job.params))
    if result is not None:
        line = page_t(
            "prog_finished",
            lang,
            outcome=outcome_label(result.outcome, lang, job.kind),
            elapsed=human_duration(result.duration, lang),
        )
        # A good result lists its stage durations itself; others keep them here.
        done = [] if result.ok else [_stages_line(list(result.stages.items()), lang)] if result.stages else []
        return "  \n".join([line, what, *done])
    if position > 0:
        return "  \n".join([t("prog_queued", lang, ahead=position, position=position + 1, elapsed=elapsed), what])
    stages = [event for event in events if event.kind in ("stage", "waiting")]
    if not stages:
        return "  \n".join([t("prog_starting", lang, elapsed=elapsed), what])
    last = stages[-1]
    if last.kind == "waiting":
        return "  \n".join([page_t("prog_waiting_gpu", lang, message=last.message), what])
    line = page_t("prog_running", lang, stage=last.message, since=human_duration(last.elapsed, lang), elapsed=elapsed)
    finished = stage_durations(events, None)
    shown = "  \n".join([line, what, *([_stages_line(finished, lang)] if finished else [])])
    tensorrt = job.tensorrt
    return f"{shown}\n\n{tensorrt_bars(tensorrt.phases, lang)}" if tensorrt is not None else shown


def _problems_list(result: JobResult, lang: str) -> list[str]:
    if not result.problems:
        return []
    lines = [f"**{t('res_problems', lang)}**", ""]
    for p in result.problems:
        where, what = text(field_label(p.field, lang)), after_label(page_word(p.message, lang), lang)
        lines.append(f"- {t('sev_' + p.severity, lang)}: **{where}**: {what}")
    return [*lines, ""]


def result_markdown(result: BuildResult | None, lang: str, kind: str = "build") -> str:
    if result is None:
        return ""
    lines = [f"#### {outcome_label(result.outcome, lang, kind)}", "", reason_markdown(result.reason, lang), ""]
    if not result.ok:
        lines += _problems_list(result, lang)
        if result.outcome == "failed" and result.log_tail:
            lines += [f"**{t('res_log_tail', lang)}**", "", code_block(result.log_tail), ""]
        if result.log_path:
            lines.append(page_t("res_log_path", lang, path=result.log_path))
        return "\n".join(lines)
    if result.config_path:
        lines += [page_t("res_config", lang, path=result.config_path), ""]
    if result.variant:
        lines += [page_t("res_variant", lang, variant=result.variant, duration=human_duration(result.duration, lang))]
        lines.append("")
    if result.engines:
        lines += [f"**{t('res_engines', lang)}**", ""]
        for engine in result.engines:
            state = t("res_reused" if engine.get("reused") else "res_built", lang)
            kind = t(f"engine_{engine.get('kind')}", lang, name="")
            size = t("size_only", lang, size=Size(engine.get("size") or 0))
            lines.append(f"- **{kind}** · {size} · {state}  \n  {code(str(engine.get('path')))}")
        lines.append("")
    if result.stages:
        lines += [
            f"**{t('res_stages', lang)}**",
            "",
            f"| {t('res_stage', lang)} | {t('res_seconds', lang)} |",
            "|---|---:|",
        ]
        lines += [
            f"| {page_word(stage_message(stage), lang)} | {human_duration(seconds, lang)} |"
            for stage, seconds in result.stages.items()
        ]
    return "\n".join(lines)


def check_markdown(check: CheckResult | None, lang: str) -> str:
    """The load-and-run check after a build: its speed and numbers, or why it failed."""
    if check is None:
        return ""
    lines = [f"#### {t('chk_heading', lang)}: {t('chk_' + check.outcome, lang)}", ""]
    headline = page_word(check.speed, lang) if check.speed else reason_markdown(check.reason, lang)
    lines += [headline, "", "; ".join(page_word(part, lang) for part in check.numbers()), ""]
    if not check.ok:
        if check.speed:
            lines += [reason_markdown(check.reason, lang), ""]
        lines += [f"- {code(name)}" for name in check.rebuilt + check.missing]
        if check.log_tail and check.outcome == "failed":
            lines += ["", f"**{t('res_log_tail', lang)}**", "", code_block(check.log_tail[-8:])]
    if check.log_path:
        lines += ["", page_t("res_log_path", lang, path=check.log_path)]
    return "\n".join(lines)
