"""Runtime values: what a config.yaml holds that no engine bakes, and where a written config takes them from.

In this order: the config being rebuilt or loaded (`build --from-config`, Load config, Load into form from the
library); else the model folder's existing config.yaml, so a person's edits survive rebuilds and new variants; else
RUNTIME_DEFAULTS (gradio_prepare.py, already in make_config's dict). Every runtime key the fork's loader reads is
carried, the ones the app does not model too (warmup, do_add_noise, ...), after the checks anything read from a file
gets: bounded text, finite numbers, small nested lists and mappings. `t_index_list` is runtime with a baked length:
the values are kept when the length is the build's step count, else the preset is written and a note says so.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdprep.config import CARRIED_ITEM_KEYS, NOT_BAKED_KEYS, RUNTIME_CONFIG_KEYS, baked_keys
from sdprep.config_load import ConfigError, params_from_config, read_config
from sdprep.messages import Message, Quote, msg
from sdprep.params import BakedParams
from sdprep.paths import absolute_model

Origin = Literal["defaults", "kept", "loaded"]
# Bounds on what is carried: a prompt is a few hundred characters; a pipeline hook's settings a few dozen values.
MAX_TEXT = 4000
MAX_NODES = 500
MAX_DEPTH = 8
MAX_ITEMS = 16  # ControlNets / IP-Adapters in a config, or t_index_list values
MAX_TIMESTEP = 1000  # t_index_list values index a schedule of num_inference_steps (50 by default)
MAX_KEY = 100  # characters of a key named in a note
_NUMBER_KEYS = ("guidance_scale", "delta", "conditioning_scale", "scale")
_WHOLE_KEYS = ("seed", "num_inference_steps")
_TEXT_KEYS = ("prompt", "negative_prompt", "sampler")
# Keys the app writes, or reads under another spelling: not "dropped" when a config for other engines lacks them.
_APP_KEYS = frozenset({*baked_keys(), *NOT_BAKED_KEYS, "device", "dtype", "ipadapters", "controlnet_config"})


@dataclass(frozen=True)
class Runtime:
    """The runtime part of one config: top-level values, per-item values, its t_index_list, and where it is from."""

    origin: Origin = "defaults"
    source: str = ""  # the file's name as people know it ("profiling_quality_ipa.yaml", "config.yaml")
    values: dict[str, Any] = field(default_factory=dict)
    items: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)  # list key -> per item (model_id too)
    t_index_list: tuple[int, ...] | None = None
    keys: tuple[str, ...] = ()  # every top-level key of the source, to say which were not carried

    def __hash__(self) -> int:
        # A page keeps it in a gr.State, whose change Gradio tells by hashing; the values are plain (checked).
        return hash(json.dumps([self.origin, self.source, self.values, self.items, self.t_index_list], sort_keys=True))

    def names(self) -> list[str]:
        """The runtime keys it sets, as people find them in the file."""
        names = list(self.values)
        if self.t_index_list is not None:
            names.append("t_index_list")
        for list_key, items in self.items.items():
            names += [f"{list_key}[{index}].{key}" for index, item in enumerate(items) for key in item if key != "id"]
        return names


DEFAULTS = Runtime()


def runtime_of(config: dict[str, Any], origin: Origin, source: str) -> Runtime:
    """The runtime part of a config read from a file; ConfigError names the first key whose value cannot be carried."""
    values = {key: _checked(key, config[key]) for key in RUNTIME_CONFIG_KEYS if key in config}
    t_index = config.get("t_index_list")
    if t_index is not None and (
        not isinstance(t_index, list)
        or not t_index
        or len(t_index) > MAX_ITEMS
        or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_TIMESTEP for i in t_index)
    ):
        raise ConfigError(
            msg("config_bad_value", key="t_index_list", value=_shown(t_index), expected=msg("expect_int_list"))
        )
    items: dict[str, tuple[dict[str, Any], ...]] = {}
    for list_key, keys in CARRIED_ITEM_KEYS.items():
        raw = config.get(list_key)
        if list_key == "ipadapter_config" and not raw:
            raw = config.get("ipadapters")  # the fork's other spelling; the app writes ipadapter_config
        raw = [raw] if isinstance(raw, dict) else raw
        if not isinstance(raw, list):
            continue
        carried = []
        for item in raw[:MAX_ITEMS]:
            if isinstance(item, dict):
                kept = {key: _checked(f"{list_key}.{key}", item[key], key) for key in keys if key in item}
                carried.append({"id": _item_id(item), **kept})
        if any(len(item) > 1 for item in carried):
            items[list_key] = tuple(carried)
    t_index_list = tuple(t_index) if isinstance(t_index, list) else None
    keys = tuple(str(key)[:MAX_KEY] for key in list(config)[:MAX_NODES])
    return Runtime(origin, source, values, items, t_index_list, keys)


def apply(config: dict[str, Any], runtime: Runtime, steps: int) -> tuple[dict[str, Any], list[Message]]:
    """make_config's dict with `runtime` carried into it, and notes on what could not be carried as it was."""
    written = {**config, **runtime.values}
    notes: list[Message] = []
    if runtime.t_index_list is not None:
        if len(runtime.t_index_list) == steps:
            written["t_index_list"] = list(runtime.t_index_list)
        else:
            notes.append(
                msg(
                    "runtime_t_index_derived",
                    given=Quote(str(list(runtime.t_index_list))),
                    source=runtime.source,
                    count=len(runtime.t_index_list),
                    steps=steps,
                    written=Quote(str(config["t_index_list"])),
                )
            )
    # Keys the app neither writes nor carries (the fork does not read them, or they change engines the app does not
    # model): said, so that nothing a person wrote goes without a word.
    dropped = [key for key in runtime.keys if key not in written and key not in _APP_KEYS]
    if dropped:
        notes.append(msg("runtime_not_carried", source=runtime.source, keys=Quote(", ".join(dropped[:12]))))
    for list_key, carried in runtime.items.items():
        targets = written.get(list_key)
        if isinstance(targets, list):
            written[list_key] = [{**item, **_matching(item, index, carried)} for index, item in enumerate(targets)]
    return written, notes


def _matching(item: dict[str, Any], index: int, carried: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """The carried values for one ControlNet / IP-Adapter: those of the same model, else those at the same place."""
    wanted = _item_id(item)
    found = next((values for values in carried if values["id"] == wanted), None)
    if found is None and index < len(carried):
        found = carried[index]
    return {key: value for key, value in (found or {}).items() if key != "id"}


def _item_id(item: dict[str, Any]) -> str:
    name = item.get("model_id", item.get("ipadapter_model_path", ""))
    return absolute_model(name, hub_subpaths=True) if isinstance(name, str) else ""


def header_line(runtime: Runtime) -> str:
    """Where the runtime values of a written config came from, for its header (English, like the rest of it)."""
    if runtime.origin == "loaded":
        return f"RUNTIME values from {runtime.source} ({len(runtime.names())}), the rest from RUNTIME_DEFAULTS"
    if runtime.origin == "kept":
        return "RUNTIME values kept from the earlier config.yaml of this folder (edit them there; rebuilds keep them)"
    return "RUNTIME values: RUNTIME_DEFAULTS of gradio_prepare.py (edit them in this file; rebuilds keep them)"


def summary(runtime: Runtime) -> Message:
    """One line for the preview and the answers: where the runtime values of the config to be written come from."""
    names = runtime.names()
    if runtime.origin == "defaults" or not names:
        return msg("runtime_from_defaults")
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    code = "runtime_from_loaded" if runtime.origin == "loaded" else "runtime_kept"
    return msg(code, count=len(names), source=runtime.source, names=Quote(shown))


def load_config(path: Path, shown_as: str | None = None) -> tuple[BakedParams, list[Message], Runtime]:
    """A config file as parameters, notes on what the form cannot show, and its runtime values (ConfigError)."""
    config = read_config(path)
    params, notes = params_from_config(config)
    return params, notes, runtime_of(config, "loaded", shown_as or path.name)


# --- the model folder's config.yaml: read once per change of the file -----------------------------------------
_cache: dict[Path, tuple[tuple[int, int], Runtime, Message | None]] = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 256


def kept_runtime(folder: Path) -> tuple[Runtime, Message | None]:
    """The runtime part of `folder`/config.yaml (the person's edits), or DEFAULTS with a note when it cannot be used."""
    path = folder / "config.yaml"
    try:
        stat = path.stat()
    except OSError:
        return DEFAULTS, None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _cache_lock:
        cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1], cached[2]
    try:
        found, note = runtime_of(read_config(path), "kept", path.name), None
    except ConfigError as problem:
        found, note = DEFAULTS, msg("runtime_unusable", path=path, reason=problem.message)
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[path] = (stamp, found, note)
    return found, note


def chosen(loaded: Runtime | None, folder: Path) -> tuple[Runtime, Message | None]:
    """The runtime values a config for `folder` gets: the loaded config's, else the folder's config.yaml's."""
    if loaded is not None:
        return loaded, None
    return kept_runtime(folder)


# --- checks --------------------------------------------------------------------------------------------------
def _checked(key: str, value: Any, leaf: str | None = None) -> Any:
    """`value` if it may be carried; ConfigError naming `key` otherwise."""
    name = leaf or key
    if name in _TEXT_KEYS:
        ok, expected = isinstance(value, str) and len(value) <= MAX_TEXT, msg("expect_runtime_text", limit=MAX_TEXT)
    elif name in _NUMBER_KEYS:
        ok, expected = _finite(value), msg("expect_number")
    elif name in _WHOLE_KEYS:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), msg("expect_int")
    else:
        ok, expected = _plain(value), msg("expect_runtime_value", limit=MAX_TEXT, nodes=MAX_NODES)
    if value is not None and not ok:
        raise ConfigError(msg("config_bad_value", key=key, value=_shown(value), expected=expected))
    # A plain copy: YAML aliases become separate values (written without anchors), checked small above.
    return json.loads(json.dumps(value)) if isinstance(value, (list, dict)) else value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> bool:
    """Text, numbers, booleans and nulls, in lists and mappings of text keys: at most MAX_NODES values, MAX_DEPTH deep.

    Counted while walking, so a YAML alias bomb (the same list referenced a billion times) stops at MAX_NODES."""
    budget = [MAX_NODES]

    def walk(node: Any, depth: int) -> bool:
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            return False
        if node is None or isinstance(node, bool):
            return True
        if isinstance(node, int):
            return abs(node) < 2**63
        if isinstance(node, float):
            return math.isfinite(node)
        if isinstance(node, str):
            return len(node) <= MAX_TEXT
        if isinstance(node, list):
            return all(walk(item, depth + 1) for item in node)
        if isinstance(node, dict):
            return all(isinstance(k, str) and len(k) <= 200 and walk(v, depth + 1) for k, v in node.items())
        return False

    return walk(value, 0)


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, (list, dict)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
