"""The library's Pack and Import (sdprep.pack, sdprep.unpack): pack the chosen build into the engines folder and
offer the file for download; import a pack that is already in the engines folder (copied there with scp, a share or
a USB disk: multi-GB files do not go through the browser).

Both write files on the server, so they follow Delete's rule (sdprep.ui.access): only the machine's own user, or a
logged-in one; others see them disabled with the reason, and the server refuses the same requests sent without the
page. A request names a pack by its file name among those listed, never by a path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio.blocks import Block

from sdprep.engines import find_model
from sdprep.messages import Message, Size, msg
from sdprep.pack import pack
from sdprep.pack_archive import PackProblem
from sdprep.text import word
from sdprep.ui import state
from sdprep.ui.access import is_owner, owner_only
from sdprep.ui.components.common import say
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.unpack import packs_in, unpack

CURRENT = "config.yaml"  # the library's variant choice that means the model's config.yaml (library.CURRENT)
CONCURRENCY = "library-packs"  # one pack or import at a time: each reads or writes gigabytes
BAR = gr.Progress()  # a handler's default of this type asks Gradio for a progress bar (it passes each call its own)


def render(form: Form) -> None:
    gr.Markdown(label("lib_pack_heading"))
    with gr.Row(equal_height=True):
        form.part("lib_pack", gr.Button(label("btn_lib_pack"), interactive=False, elem_id="library-pack"))
        form.part(
            "lib_pack_file",
            gr.File(
                None, label=label("f_lib_pack_file"), interactive=False, visible=False, elem_id="library-pack-file"
            ),
        )
    with gr.Row(equal_height=True):
        form.part(
            "lib_import_pack",
            gr.Dropdown(
                [], value=None, label=label("f_lib_import"), scale=3, interactive=False, elem_id="library-import-pack"
            ),
        )
        form.part("lib_packs_refresh", gr.Button(label("btn_lib_packs_refresh"), size="sm", elem_id="library-packs"))
        form.part("lib_import", gr.Button(label("btn_lib_import"), interactive=False, elem_id="library-import"))
    form.part("lib_pack_access", gr.Markdown("", visible=False, elem_id="library-pack-access"))


def packs(form: Form, values: dict[Block, Any], owner: bool) -> dict[Block, Any]:
    """The packs in the engines folder to import, and whether Pack and Import may be used (the reason if not)."""
    lang = form.language(values)
    names = [path.name for path in packs_in(state.engines_root())]
    chosen = values.get(form.parts["lib_import_pack"])
    chosen = chosen if chosen in names else (names[0] if names else None)
    reason = None if owner else owner_only("pack", None)
    return {
        form.parts["lib_import_pack"]: gr.Dropdown(choices=names, value=chosen, interactive=bool(names) and owner),
        form.parts["lib_import"]: gr.Button(interactive=bool(names) and owner),
        form.parts["lib_pack"]: gr.Button(interactive=owner),
        form.parts["lib_pack_access"]: gr.Markdown(word(reason, lang) if reason else "", visible=reason is not None),
    }


def _shown(progress: gr.Progress | None, every: float = 0.5) -> Callable[[int, int], None]:
    """Gradio's progress bar for a pack or an import of gigabytes, moved a few times a second (not every chunk)."""
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if progress is not None and total and now - last[0] >= every:
            last[0] = now
            progress(done / total)

    return show


def pack_selected(
    form: Form, values: dict[Block, Any], request: gr.Request | None, progress: gr.Progress | None = None
) -> dict[Block, Any]:
    lang = form.language(values)
    file = form.parts["lib_pack_file"]
    not_owner = owner_only("pack", request)
    if not_owner is not None:  # the page disables the button; this is for requests sent without it
        return {**say(form, "lib_message", [not_owner], lang), file: gr.File(value=None, visible=False)}
    root = state.engines_root()
    slug = values.get(form.parts["lib_model"])
    model = find_model(root, str(slug)) if slug else None
    name = values.get(form.parts["lib_variant"])
    variant = next((v for v in model.variants if v.name == name), None) if model else None
    config = variant.config if variant is not None else (model.config if model and name == CURRENT else None)
    if config is None:
        return {**say(form, "lib_message", [msg("lib_pack_choose")], lang), file: gr.File(value=None, visible=False)}
    try:
        packed = pack(config, spec=state.child_spec(), on_progress=_shown(progress))
    except PackProblem as problem:
        said: list[Message] = [msg("lib_pack_refused", error=problem.message)]
        return {**say(form, "lib_message", said, lang), file: gr.File(value=None, visible=False)}
    # Served from where it lies (a static path: never copied into Gradio's cache, which would double GBs on disk);
    # only this one file, not the engines folder.
    gr.set_static_paths([packed.path])
    said = [msg("lib_packed", path=packed.path, size=Size(packed.manifest.size)), *packed.notes]
    updates = {**say(form, "lib_message", said, lang), file: gr.File(value=str(packed.path), visible=True)}
    return {**updates, **packs(form, values, owner=True)}


def import_selected(
    form: Form, values: dict[Block, Any], request: gr.Request | None, progress: gr.Progress | None = None
) -> dict[Block, Any]:
    lang = form.language(values)
    not_owner = owner_only("pack", request)
    if not_owner is not None:
        return say(form, "lib_message", [not_owner], lang)
    root = state.engines_root()
    name = values.get(form.parts["lib_import_pack"])
    found = next((path for path in packs_in(root) if path.name == name), None)
    if found is None:
        return say(form, "lib_message", [msg("lib_import_choose", root=root)], lang)
    try:
        done = unpack(found, root, state.child_spec(), _shown(progress))
    except PackProblem as problem:
        return say(form, "lib_message", [msg("lib_import_refused", error=problem.message)], lang)
    imported = msg("lib_imported", variant=done.manifest.variant, path=done.config_path)
    return say(form, "lib_message", [imported, *done.notes, *done.needs], lang)


def listen(form: Form) -> None:
    """Pack, Import and the list of packs; form.events["lib_import"] for the library to refresh after."""
    lang_input = {form.lang} if form.lang is not None else set()
    listed = [form.parts[name] for name in ("lib_import_pack", "lib_import", "lib_pack", "lib_pack_access")]
    message = [form.parts["lib_message"], form.parts["lib_message_said"]]

    def list_packs(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        return packs(form, values, is_owner(request))

    def pack_it(values: dict[Block, Any], request: gr.Request, progress: gr.Progress = BAR) -> dict[Block, Any]:
        return pack_selected(form, values, request, progress)

    def import_it(values: dict[Block, Any], request: gr.Request, progress: gr.Progress = BAR) -> dict[Block, Any]:
        return import_selected(form, values, request, progress)

    packs_inputs = {form.parts["lib_import_pack"], *lang_input}
    form.get("lib_packs_refresh", gr.Button).click(
        list_packs, inputs=packs_inputs, outputs=listed, api_name="library_packs", concurrency_limit=None
    )
    form.events["page_load"].then(
        list_packs,
        inputs=packs_inputs,
        outputs=listed,
        api_name="library_packs_on_load",
        api_visibility="undocumented",
        show_progress="hidden",
        concurrency_limit=None,
    )
    form.get("lib_pack", gr.Button).click(
        pack_it,
        inputs={form.parts["lib_model"], form.parts["lib_variant"], form.parts["lib_import_pack"], *lang_input},
        outputs=[*message, form.parts["lib_pack_file"], *listed],
        api_name="library_pack",
        concurrency_limit=1,
        concurrency_id=CONCURRENCY,
    )
    form.events["lib_import"] = form.get("lib_import", gr.Button).click(
        import_it,
        inputs={form.parts["lib_import_pack"], *lang_input},
        outputs=message,
        api_name="library_import",
        concurrency_limit=1,
        concurrency_id=CONCURRENCY,
    )
