"""Live preview: on every change of the form, the derived values, the config.yaml that will be written, and the
problems beside their sections. Build is enabled only without errors and when the machine can build (the banner above
the form says what is missing); Save config only needs only a form without errors. Fast: no probe, no scan of the
engines; the estimate (disk, VRAM, time before building) reads the build.json files of the engines folder only when
they change, and the command line for the form ("Copy as command") is derived from the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep import timing_cache
from sdprep.command_line import SHELLS, Shell, default_shell
from sdprep.config_write import ConfigToWrite
from sdprep.estimate import Estimate, estimate, free_space, load_history, shape_of
from sdprep.hub import hub_problems
from sdprep.messages import Problem, has_errors
from sdprep.params import DEFAULTS, BakedParams
from sdprep.ui import state
from sdprep.ui.components import controlnet, ipadapter, profile, resolution, sampling
from sdprep.ui.components.common import property_relay, relay_of, relayed
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.ui.views import params as view_params
from sdprep.ui.views.environment import banner_markdown, build_blocked
from sdprep.validate import CONFIG_ROUTE_MAX_BATCH, validate

# A form change waits this long at most for the Hub's answer about a new id (offline: not at all); Build and Save wait
# for the whole of the Hub's timeout.
PREVIEW_HUB_WAIT = 0.8


def check(params: BakedParams, hub_wait: float = PREVIEW_HUB_WAIT) -> list[Problem]:
    """validate(), what the Hub says of the model id, and what the last probed StreamDiffusion cannot build (no probe
    here: only what is known)."""
    environment = state.last_environment()
    hub = hub_problems(params, hub_wait)
    if environment is None:
        return validate(params, max_unet_batch=CONFIG_ROUTE_MAX_BATCH) + hub
    return validate(params, max_unet_batch=environment.max_unet_batch()) + hub + environment.refusals(params)


def estimate_text(params: BakedParams, problems: list[Problem], lang: str) -> str:
    """The estimate section: what this build would take here (none while the form has errors)."""
    environment = state.last_environment()
    folder = Path(params.engines_dir)
    promised: Estimate | None = None
    if not has_errors(problems):
        try:
            safety = environment is None or environment.features.get("safety_checker_engine", True) is not False
            gpu = environment.gpu_name if environment else None
            warm = timing_cache.expect_warm(environment, folder)
            promised = estimate(shape_of(params, safety), load_history(folder), gpu, warm)
        except (ValueError, KeyError, TypeError):
            promised = None
    free_vram = environment.torch.get("vram_free") if environment else None
    free_vram = free_vram if isinstance(free_vram, int) else None
    return view_params.estimate_markdown(promised, free_space(folder), free_vram, folder, lang)


@dataclass(frozen=True)
class Preview:
    """What the form will give, drawn on every change."""

    derived: gr.Markdown
    yaml: gr.Code  # the config.yaml that will be written
    estimate: gr.Markdown
    command: gr.Code  # the same build as a command line
    command_shell: gr.Radio  # which shell the command line is written for


def render(form: Form) -> None:
    problems = check(DEFAULTS)
    shown = replace(DEFAULTS, engines_dir=str(state.engines_root()))
    target = view_params.config_target(shown, form.runtime, None, problems)
    runtime = view_params.runtime_text(target, "en")
    derived = gr.Markdown(view_params.derived_markdown(DEFAULTS, "en", runtime), elem_id="derived")
    yaml = gr.Code(
        view_params.config_preview(target, problems, "en"),
        language="yaml",
        interactive=False,
        label=label("o_yaml"),
        elem_id="yaml-preview",
        max_lines=40,
        wrap_lines=True,
    )
    estimate_box = gr.Markdown(estimate_text(shown, problems, "en"), elem_id="estimate")
    gr.Markdown(label("cmd_heading"), elem_classes=["sdprep-heading"])
    command = gr.Code(
        view_params.command_text(shown, problems, "en", default_shell()),
        language="shell",
        interactive=False,
        label=label("o_command"),
        elem_id="command-line",
        lines=2,
        wrap_lines=True,
        buttons=["copy"],
    )
    command_shell = gr.Radio(
        [(label(f"command_shell_{name}"), name) for name in SHELLS],
        value=default_shell(),
        label=label("o_command_shell"),
        elem_id="command-shell",
    )
    gr.Markdown(label("cmd_hint"), elem_classes=["sdprep-hint"])
    form.preview = Preview(derived, yaml, estimate_box, command, command_shell)


def shell_of(form: Form, values: dict[Block, Any]) -> Shell:
    """The shell the page asked the command line for (the server's own until the switch is moved)."""
    chosen = values.get(form.preview.command_shell)
    return next((shell for shell in SHELLS if shell == chosen), default_shell())


def live(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    raw = form.raw_values(values)
    params = form.params(values)
    problems = check(params)
    environment = state.last_environment()
    blocked = build_blocked(environment, lang)
    target = view_params.config_target(params, form.runtime, form.loaded(values), problems)
    updates: dict[Block, Any] = {
        form.page.banner: gr.update(value=banner_markdown(environment, lang), visible=bool(blocked)),
        form.bar.summary: view_params.summary_markdown(problems, lang, blocked),
        form.preview.derived: view_params.derived_markdown(params, lang, view_params.runtime_text(target, lang)),
        form.preview.yaml: view_params.config_preview(target, problems, lang),
        form.preview.estimate: estimate_text(params, problems, lang),
        form.preview.command: view_params.command_text(params, problems, lang, shell_of(form, values)),
        form.bar.build: gr.update(interactive=not has_errors(problems) and not blocked),
        form.bar.save: gr.update(interactive=not has_errors(problems)),
        # A machine that cannot build may still rehearse: the rehearsal says how far the build path gets there.
        form.bar.rehearse: gr.update(interactive=not has_errors(problems)),
    }
    routed = view_params.route_problems(problems, {name: fields for name, (fields, _, _) in form.sections.items()})
    hints = view_params.section_hints(params, lang)
    for name, (_, problems_box, hint_box) in form.sections.items():
        updates[problems_box] = view_params.problems_html(routed[name], lang)
        updates[hint_box] = hints.get(name, "")
    updates.update(_runtime_scales(form, target))
    updates.update(sampling.visibility(form, raw))
    updates.update(resolution.visibility(form, raw))
    updates.update(controlnet.visibility(form, values))
    updates.update(ipadapter.visibility(form, raw))
    updates.update(relayed(form, profile.availability(form, params, lang)))
    updates.update(relayed(form, ipadapter.availability(form, params, lang)))
    updates.update(relayed(form, resolution.follow_profile(form, params, lang)))
    return updates


def _runtime_scales(form: Form, target: ConfigToWrite | None) -> dict[Block, Any]:
    """The read-only scale fields show the scales the config will have (loaded or kept ones too). Always a plain
    value (the default when there is none to show): a field that gets plain values and skipped updates in turn
    costs the page's session a copy of it each time (docs/gradio-session-growth.md)."""
    config = target.config if target is not None else {}
    scales = (
        (form.controlnet.scale, "controlnets", form.runtime["controlnet_conditioning_scale"]),
        (form.ipadapter.scale, "ipadapter_config", form.runtime["ipadapter_scale"]),
    )
    updates: dict[Block, Any] = {}
    for box, list_key, default in scales:
        items = [item for item in config.get(list_key) or [] if isinstance(item, dict)]
        values = [str(item.get("conditioning_scale", item.get("scale"))) for item in items]
        updates[box] = ", ".join(values) if values else str(default)
    return updates


def locked_fields(form: Form) -> list[Block]:
    """Fields whose properties follow the machine or the profile (a feature's lock, the size sliders' range): they
    change through relay states (common.property_relay), never as outputs of the preview."""
    return [form.fields[name] for name in ("use_ipadapter", "ipadapter_type", "width", "height")]


def outputs(form: Form) -> list[Block]:
    """Every component `live` may update (Gradio wants them declared)."""
    shown, bar = form.preview, form.bar
    blocks: list[Block] = [form.page.banner, bar.summary, shown.derived, shown.yaml, shown.estimate, shown.command]
    blocks += [bar.build, bar.save, bar.rehearse]
    for _, problems_box, hint_box in form.sections.values():
        blocks += [problems_box, hint_box]
    blocks += [form.sampling.scheduler_box, form.resolution.cache_maxframes_box, form.controlnet.details]
    blocks += [*form.slot_groups, form.ipadapter.details]
    blocks += [form.controlnet.scale, form.ipadapter.scale]
    blocks += [relay_of(form, block) for block in (*profile.outputs(form), *locked_fields(form))]
    return blocks


def listen(form: Form) -> None:
    inputs = {*form.inputs(), form.preview.command_shell}  # the switch redraws the line as any field does
    for component in locked_fields(form):
        property_relay(form, component, f"lock_{component.elem_id}")

    def update_preview(values: dict[Block, Any]) -> dict[Block, Any]:
        return live(form, values)

    gr.on(
        triggers=[component.change for component in inputs],  # type: ignore[attr-defined]  # every input has .change
        fn=update_preview,
        inputs=inputs,
        outputs=outputs(form),
        api_name="preview",
        trigger_mode="always_last",
        show_progress="hidden",
        concurrency_limit=None,
        concurrency_id="form",
    )
    # After the page knows its language, and after any probe: the banner and Build follow what the machine can do.
    events = form.events
    chained = {
        "page_load": events.page_load,
        "probe_environment": events.probe_environment,
        "setup_environment": events.setup_environment,
        "doctor_environment": events.doctor_environment,
    }
    for name, event in chained.items():
        if event is not None:
            event.then(
                update_preview,
                inputs=inputs,
                outputs=outputs(form),
                api_name=f"preview_after_{name}",
                api_visibility="undocumented",
                show_progress="hidden",
                concurrency_limit=None,
                concurrency_id="form",
            )
