"""Live preview: on every change of the form, the derived values, the config.yaml that will be written, and the
problems beside their sections; Build is enabled only without errors. Pure and fast: no probe, no scan.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep import derive
from sdprep.config import RuntimeDefaults
from sdprep.params import DEFAULTS, BakedParams
from sdprep.ui import present, state
from sdprep.ui.components import controlnet, ipadapter, resolution, sampling
from sdprep.ui.form import Form
from sdprep.ui.text import label
from sdprep.validate import CONFIG_ROUTE_MAX_BATCH, Problem, has_errors, validate


def check(params: BakedParams) -> list[Problem]:
    """validate(), plus what the last probed StreamDiffusion cannot build (no probe here: only what is known)."""
    environment = state.last_environment()
    if environment is None:
        return validate(params, max_unet_batch=CONFIG_ROUTE_MAX_BATCH)
    problems = validate(params, max_unet_batch=environment.max_unet_batch())
    view = {**params.__dict__, "scheduler": derive.scheduler(params)}
    return problems + environment.refusals(view)


def render(form: Form, runtime: RuntimeDefaults) -> None:
    problems = check(DEFAULTS)
    form.part("summary", gr.Markdown(present.summary_markdown(problems, "en"), label=label("o_summary")))
    form.part(
        "derived",
        gr.Markdown(present.derived_markdown(DEFAULTS, "en"), label=label("o_derived"), elem_id="derived"),
    )
    form.part(
        "yaml",
        gr.Code(
            present.config_preview(DEFAULTS, runtime, problems),
            language="yaml",
            interactive=False,
            label=label("o_yaml"),
            elem_id="yaml-preview",
            max_lines=40,
            wrap_lines=True,
        ),
        label="o_yaml",
    )


def live(form: Form, values: dict[Block, Any]) -> dict[Block, Any]:
    lang = form.language(values)
    raw = form.raw_values(values)
    params = form.params(values)
    problems = check(params)
    updates: dict[Block, Any] = {
        form.parts["summary"]: present.summary_markdown(problems, lang),
        form.parts["derived"]: present.derived_markdown(params, lang),
        form.parts["yaml"]: present.config_preview(params, form.runtime, problems),
        form.parts["build"]: gr.update(interactive=not has_errors(problems)),
    }
    sections = {name: fields for name, (fields, _, _) in form.sections.items()}
    routed = present.route_problems(problems, sections)
    hints = present.section_hints(params, lang)
    for name, (_, problems_box, hint_box) in form.sections.items():
        updates[problems_box] = present.problems_html(routed[name], lang)
        updates[hint_box] = hints.get(name, "")
    updates.update(sampling.visibility(form, raw))
    updates.update(resolution.visibility(form, raw))
    updates.update(controlnet.visibility(form, values))
    updates.update(ipadapter.visibility(form, raw))
    return updates


def outputs(form: Form) -> list[Block]:
    """Every component `live` may update (Gradio wants them declared)."""
    blocks: list[Block] = [form.parts[name] for name in ("summary", "derived", "yaml", "build")]
    for _, problems_box, hint_box in form.sections.values():
        blocks += [problems_box, hint_box]
    blocks += [form.fields["scheduler"], form.fields["cache_maxframes"], form.parts["controlnet_details"]]
    blocks += [*form.slot_groups, form.parts["ipadapter_details"]]
    return blocks


def listen(form: Form) -> None:
    inputs = form.inputs()

    def update_preview(values: dict[Block, Any]) -> dict[Block, Any]:
        return live(form, values)

    gr.on(
        triggers=[component.change for component in inputs],  # type: ignore[attr-defined]
        fn=update_preview,
        inputs=inputs,
        outputs=outputs(form),
        api_name="preview",
        trigger_mode="always_last",
        show_progress="hidden",
        concurrency_limit=None,
    )
    form.events["page_load"].then(
        update_preview,
        inputs=inputs,
        outputs=outputs(form),
        api_name="preview_on_load",
        show_progress="hidden",
        concurrency_limit=None,
    )
    # A probe may reveal what this StreamDiffusion cannot build: check the form against it at once.
    for name in ("probe_environment", "reprobe_environment"):
        if name in form.events:
            form.events[name].then(
                update_preview,
                inputs=inputs,
                outputs=outputs(form),
                api_name=f"preview_after_{name}",
                api_visibility="undocumented",
                show_progress="hidden",
                concurrency_limit=None,
            )
