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
from dataclasses import dataclass
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
from sdprep.ui.form import Form
from sdprep.ui.i18n import label
from sdprep.unpack import packs_in, unpack

CURRENT = "config.yaml"  # the library's variant choice that means the model's config.yaml (library.CURRENT)
CONCURRENCY = "library-packs"  # one pack or import at a time: each reads or writes gigabytes
BAR = gr.Progress()  # a handler's default of this type asks Gradio for a progress bar (it passes each call its own)


@dataclass(frozen=True)
class LibraryPacks:
    """Pack the library's chosen build; import a pack found in the engines folder."""

    pack: gr.Button
    file: gr.File  # the pack just made, to download
    chosen: gr.Dropdown  # the packs in the engines folder
    refresh: gr.Button
    import_: gr.Button
    access: gr.Markdown  # why this client may not pack or import

    def listed(self) -> list[Block]:
        """What a refresh of the packs redraws."""
        return [self.chosen, self.import_, self.pack, self.access]


def render(form: Form) -> None:
    gr.Markdown(label("lib_pack_heading"))
    with gr.Row(equal_height=True):
        pack_button = gr.Button(label("btn_lib_pack"), interactive=False, elem_id="library-pack")
        file = gr.File(
            None, label=label("f_lib_pack_file"), interactive=False, visible=False, elem_id="library-pack-file"
        )
    with gr.Row(equal_height=True):
        chosen = gr.Dropdown(
            [], value=None, label=label("f_lib_import"), scale=3, interactive=False, elem_id="library-import-pack"
        )
        refresh = gr.Button(label("btn_lib_packs_refresh"), size="sm", elem_id="library-packs")
        import_button = gr.Button(label("btn_lib_import"), interactive=False, elem_id="library-import")
    access = gr.Markdown("", visible=False, elem_id="library-pack-access")
    form.packs = LibraryPacks(pack_button, file, chosen, refresh, import_button, access)


def packs(form: Form, values: dict[Block, Any], owner: bool) -> dict[Block, Any]:
    """The packs in the engines folder to import, and whether Pack and Import may be used (the reason if not)."""
    lang = form.language(values)
    names = [path.name for path in packs_in(state.engines_root())]
    handles = form.packs
    chosen = values.get(handles.chosen)
    chosen = chosen if chosen in names else (names[0] if names else None)
    reason = None if owner else owner_only("pack", None)
    return {
        handles.chosen: gr.Dropdown(choices=names, value=chosen, interactive=bool(names) and owner),
        handles.import_: gr.Button(interactive=bool(names) and owner),
        handles.pack: gr.Button(interactive=owner),
        handles.access: gr.Markdown(word(reason, lang) if reason else "", visible=reason is not None),
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
    file = form.packs.file
    message = form.library.message
    not_owner = owner_only("pack", request)
    if not_owner is not None:  # the page disables the button; this is for requests sent without it
        return {**message.say([not_owner], lang), file: gr.File(value=None, visible=False)}
    root = state.engines_root()
    slug = values.get(form.library.model)
    model = find_model(root, str(slug)) if slug else None
    name = values.get(form.library.variant)
    variant = next((v for v in model.variants if v.name == name), None) if model else None
    config = variant.config if variant is not None else (model.config if model and name == CURRENT else None)
    if config is None:
        return {**message.say([msg("lib_pack_choose")], lang), file: gr.File(value=None, visible=False)}
    try:
        packed = pack(config, spec=state.child_spec(), on_progress=_shown(progress))
    except PackProblem as problem:
        said: list[Message] = [msg("lib_pack_refused", error=problem.message)]
        return {**message.say(said, lang), file: gr.File(value=None, visible=False)}
    # Served from where it lies (a static path: never copied into Gradio's cache, which would double GBs on disk);
    # only this one file, not the engines folder.
    gr.set_static_paths([packed.path])
    said = [msg("lib_packed", path=packed.path, size=Size(packed.manifest.size)), *packed.notes]
    updates = {**message.say(said, lang), file: gr.File(value=str(packed.path), visible=True)}
    return {**updates, **packs(form, values, owner=True)}


def import_selected(
    form: Form, values: dict[Block, Any], request: gr.Request | None, progress: gr.Progress | None = None
) -> dict[Block, Any]:
    lang = form.language(values)
    message = form.library.message
    not_owner = owner_only("pack", request)
    if not_owner is not None:
        return message.say([not_owner], lang)
    root = state.engines_root()
    name = values.get(form.packs.chosen)
    found = next((path for path in packs_in(root) if path.name == name), None)
    if found is None:
        return message.say([msg("lib_import_choose", root=root)], lang)
    try:
        done = unpack(found, root, state.child_spec(), _shown(progress))
    except PackProblem as problem:
        return message.say([msg("lib_import_refused", error=problem.message)], lang)
    imported = msg("lib_imported", variant=done.manifest.variant, path=done.config_path)
    return message.say([imported, *done.notes, *done.needs], lang)


def listen(form: Form) -> None:
    """Pack, Import and the list of packs; form.events.lib_import for the library to refresh after."""
    lang_input = {form.lang} if form.lang is not None else set()
    handles = form.packs
    listed = handles.listed()
    message = form.library.message.outputs()

    def list_packs(values: dict[Block, Any], request: gr.Request) -> dict[Block, Any]:
        return packs(form, values, is_owner(request))

    def pack_it(values: dict[Block, Any], request: gr.Request, progress: gr.Progress = BAR) -> dict[Block, Any]:
        return pack_selected(form, values, request, progress)

    def import_it(values: dict[Block, Any], request: gr.Request, progress: gr.Progress = BAR) -> dict[Block, Any]:
        return import_selected(form, values, request, progress)

    packs_inputs: set[Block] = {handles.chosen, *lang_input}
    handles.refresh.click(
        list_packs, inputs=packs_inputs, outputs=listed, api_name="library_packs", concurrency_limit=None
    )
    form.events.loaded().then(
        list_packs,
        inputs=packs_inputs,
        outputs=listed,
        api_name="library_packs_on_load",
        api_visibility="undocumented",
        show_progress="hidden",
        concurrency_limit=None,
    )
    pack_inputs: set[Block] = {form.library.model, form.library.variant, handles.chosen, *lang_input}
    handles.pack.click(
        pack_it,
        inputs=pack_inputs,
        outputs=[*message, handles.file, *listed],
        api_name="library_pack",
        concurrency_limit=1,
        concurrency_id=CONCURRENCY,
    )
    form.events.lib_import = handles.import_.click(
        import_it,
        inputs={handles.chosen, *lang_input},
        outputs=message,
        api_name="library_import",
        concurrency_limit=1,
        concurrency_id=CONCURRENCY,
    )
