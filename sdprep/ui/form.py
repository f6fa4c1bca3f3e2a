"""The form's registry: components keyed by BakedParams field name, each section's handle (a dataclass of its own
components, docs/ARCHITECTURE.md "The page"), and the two conversions params <-> form.

Handlers take `{component: value}` (Gradio's set-of-inputs form) and look values up by field name here, so adding a
field never shifts a positional argument list. The engines folder is shown, not taken from the page: params made
here always use the server's own (ui.state.engines_root).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio.blocks import Block
from gradio.components import Component
from gradio.events import Dependency

from sdprep.config import RuntimeDefaults
from sdprep.messages import Field as MessageField
from sdprep.messages import Message, msg
from sdprep.params import MAX_CONTROLNETS, PARAM_NAMES, SPECS, TYPES, BakedParams, ControlNetSlot, params_from_values
from sdprep.runtime import Runtime
from sdprep.ui import state
from sdprep.ui.widgets import widget_for

if TYPE_CHECKING:  # the sections' handles: each section's module makes its own and imports this one
    from sdprep.ui.app import Page
    from sdprep.ui.components.actions import ActionBar, Actions
    from sdprep.ui.components.build import BuildPanel
    from sdprep.ui.components.checkpoint import Checkpoint
    from sdprep.ui.components.controlnet import ControlNet
    from sdprep.ui.components.environment import EnvironmentTab
    from sdprep.ui.components.ipadapter import IPAdapter
    from sdprep.ui.components.library import Library
    from sdprep.ui.components.library_clean import LibraryClean
    from sdprep.ui.components.library_pack import LibraryPacks
    from sdprep.ui.components.preview import Preview
    from sdprep.ui.components.profile import Profile
    from sdprep.ui.components.resolution import Resolution
    from sdprep.ui.components.sampling import Sampling

CN_COUNT = "cn_count"  # the form's own field: how many ControlNet slots are part of the params
NOT_FROM_PAGE = ("engines_dir",)  # shown on the page, set by the server


@dataclass
class Events:
    """The events other sections chain onto (the library refreshes after a build, the preview after a probe)."""

    page_load: Dependency | None = None  # the last of the page-load chain (language first, then the environment)
    probe_environment: Dependency | None = None
    setup_environment: Dependency | None = None
    doctor_environment: Dependency | None = None
    build: Dependency | None = None
    rehearse: Dependency | None = None
    follow: Dependency | None = None
    cancel: Dependency | None = None
    save: Dependency | None = None
    lib_import: Dependency | None = None

    def loaded(self) -> Dependency:
        """The page-load chain to add a step to (language.listen starts it)."""
        if self.page_load is None:
            raise RuntimeError("language.listen() starts the page-load chain: call it first")
        return self.page_load


@dataclass
class Form:
    """Every component the handlers need. Sections fill it in `render()`, wire it in `listen()`: the form's fields by
    declaration name (params.py), every other component in its section's handle (`form.build.log`)."""

    runtime: RuntimeDefaults
    fields: dict[str, Component] = field(default_factory=dict)  # BakedParams names (no `controlnets`) + cn_count
    slots: list[dict[str, Component]] = field(default_factory=list)  # ControlNetSlot names, per slot
    slot_groups: list[Block] = field(default_factory=list)
    # section name -> (fields it shows problems for, its problems box, its derived-values hint)
    sections: dict[str, tuple[tuple[str, ...], gr.HTML, gr.Markdown]] = field(default_factory=dict)
    # the page's language, reported by the browser on load (ui.i18n)
    lang: gr.Textbox | None = None
    events: Events = field(default_factory=Events)
    # the runtime values of the config this page loaded last (Load config, the library): its session's own, used by
    # the preview, Build and Save (sdprep/runtime.py: a loaded config's values come first)
    loaded_runtime: gr.State | None = None
    # a field whose properties change -> the state that carries them (common.property_relay)
    relays: dict[Block, gr.State] = field(default_factory=dict)
    # each section's own components, by name (the form's fields are in `fields`); set by the section's render(), so
    # reading one before raises AttributeError
    page: Page = field(init=False, repr=False)
    checkpoint: Checkpoint = field(init=False, repr=False)
    sampling: Sampling = field(init=False, repr=False)
    resolution: Resolution = field(init=False, repr=False)
    controlnet: ControlNet = field(init=False, repr=False)
    ipadapter: IPAdapter = field(init=False, repr=False)
    profile: Profile = field(init=False, repr=False)
    actions: Actions = field(init=False, repr=False)
    bar: ActionBar = field(init=False, repr=False)
    build: BuildPanel = field(init=False, repr=False)
    preview: Preview = field(init=False, repr=False)
    library: Library = field(init=False, repr=False)
    packs: LibraryPacks = field(init=False, repr=False)
    clean: LibraryClean = field(init=False, repr=False)
    environment: EnvironmentTab = field(init=False, repr=False)

    # --- building ------------------------------------------------------------------------------------------
    def add(self, name: str, component: Component | None = None, **options: Any) -> Component:
        """A form field: the given component, or the declaration's default widget (widgets.widget_for)."""
        component = component if component is not None else widget_for(name, **options)
        self.fields[name] = component
        if component.elem_id is None:
            component.elem_id = f"field-{name}"  # stable hooks for CSS and browser tests
        return component

    def add_rest(self, section: str) -> None:
        """Every declared field of `section` not placed yet, with its default widget: new parameters need no UI code."""
        for name, spec in SPECS.items():
            if spec.section == section and name not in self.fields and spec.cli != "custom":
                self.add(name)

    # --- reading -------------------------------------------------------------------------------------------
    def inputs(self) -> set[Block]:
        """Every component whose value makes the params, and the language."""
        components: set[Block] = {c for name, c in self.fields.items() if name not in NOT_FROM_PAGE}
        for slot in self.slots:
            components.update(slot.values())
        if self.lang is not None:
            components.add(self.lang)
        if self.loaded_runtime is not None:
            components.add(self.loaded_runtime)
        return components

    def loaded(self, values: dict[Block, Any]) -> Runtime | None:
        """The runtime values of the config this page loaded, if it loaded one."""
        value = values.get(self.loaded_runtime) if self.loaded_runtime is not None else None
        return value if isinstance(value, Runtime) else None

    def language_input(self) -> set[Block]:
        """The inputs that carry the page's language (none before language.render ran)."""
        return {self.lang} if self.lang is not None else set()

    def language(self, values: dict[Block, Any]) -> str:
        return str(values.get(self.lang) or "en") if self.lang is not None else "en"

    def raw_values(self, values: dict[Block, Any]) -> dict[str, Any]:
        """The form's values by field name, as typed (controlnets: the first cn_count slots when ControlNet is on)."""
        raw: dict[str, Any] = {name: values.get(c) for name, c in self.fields.items() if name not in NOT_FROM_PAGE}
        for name in PARAM_NAMES:
            if TYPES.get(name) is str and name not in NOT_FROM_PAGE:
                raw[name] = "" if raw.get(name) is None else str(raw[name])
        raw["engines_dir"] = str(state.engines_root())
        count = _whole(raw.pop(CN_COUNT, 0))
        count = max(0, min(MAX_CONTROLNETS, count)) if isinstance(count, int) else 0
        slots = []
        for slot in self.slots[:count] if raw.get("use_controlnet") else []:
            item = {name: values.get(component) for name, component in slot.items()}
            item["model_id"] = str(item.get("model_id") or "").strip()
            item["preprocessor"] = str(item.get("preprocessor") or "").strip()
            item["conditioning_channels"] = _channels(item.get("conditioning_channels"))
            item["enabled"] = bool(item.get("enabled"))
            slots.append(item)
        raw["controlnets"] = slots
        return raw

    def params(self, values: dict[Block, Any]) -> BakedParams:
        return params_from_values({k: v for k, v in self.raw_values(values).items() if k in PARAM_NAMES})

    # --- writing -------------------------------------------------------------------------------------------
    def fill(self, params: BakedParams) -> tuple[dict[Block, Any], list[Message]]:
        """Updates that put `params` into the form, and notes on what the form could not show exactly."""
        notes: list[Message] = []
        updates: dict[Block, Any] = {}
        for name, component in self.fields.items():
            if name == CN_COUNT or name not in PARAM_NAMES or name in NOT_FROM_PAGE:
                continue
            value = getattr(params, name)
            if not _offers(component, value):
                notes.append(msg("load_not_a_choice", field=MessageField(name), value=value))
                continue
            updates[component] = value
        slots: tuple[ControlNetSlot, ...] = params.controlnets
        if len(slots) > MAX_CONTROLNETS:
            notes.append(msg("load_extra_controlnets", count=len(slots), max=MAX_CONTROLNETS))
            slots = slots[:MAX_CONTROLNETS]
        if params.use_controlnet:
            updates[self.fields[CN_COUNT]] = len(slots)
        for slot, components in zip(slots, self.slots, strict=False):
            for name, component in components.items():
                value = getattr(slot, name)
                updates[component] = ("" if value is None else str(value)) if name == "conditioning_channels" else value
        return updates, notes


def on(block: Block, event: str) -> Callable[..., Dependency]:
    """`block`'s listener for `event` ("change", "input"): Gradio declares events per component class, so a field
    held as a Component shows none to the type checker."""
    listener: Callable[..., Dependency] | None = getattr(block, event, None)
    if listener is None or not callable(listener):
        raise TypeError(f"{type(block).__name__} has no {event} event")
    return listener


def _offers(component: Component, value: Any) -> bool:
    """Whether a Radio / Dropdown with fixed choices can show `value` (anything else can show anything)."""
    choices = getattr(component, "choices", None)
    if not choices or getattr(component, "allow_custom_value", False):
        return True
    return value in [choice[1] if isinstance(choice, tuple) else choice for choice in choices]


def _whole(value: Any) -> Any:
    """Sliders and numbers may send 3.0 for 3; BakedParams wants ints. Anything else is left for validate()."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _channels(value: Any) -> Any:
    """Conditioning channels as typed: empty -> None (the ControlNet's default), digits -> int, else as typed
    (validate() then explains what is wrong with it)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _whole(value)
    typed = str(value).strip()
    if not typed:
        return None
    try:
        return int(typed)
    except ValueError:
        return typed
