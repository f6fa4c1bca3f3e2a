"""A config.yaml back into BakedParams: read it safely, check every value's type, and note what the form cannot show.

Accepts configs written by this app (an exact round trip) and hand-written ones: `ipadapters:` or raw
`ipadapter_config:`, any t_index_list (its length becomes the step count; runtime.py keeps its values). Anything
unusable becomes a ConfigError whose Message names the key; nothing here raises a bare TypeError at a person.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from sdprep import bounded_yaml, derive
from sdprep.family import detect_family
from sdprep.messages import Message, Quote, cut, msg, os_reason, shown
from sdprep.params import DEFAULTS, SPECS, TYPES, BakedParams, ControlNetSlot, choices_of, params_from_values
from sdprep.paths import UnreadableFile, read_limited, special_file

# A config is a few KB; anything larger is not one (and parsing megabytes of YAML costs seconds of CPU).
CONFIG_LIMIT = 1024 * 1024
READ_TIMEOUT = 5.0


class ConfigError(ValueError):
    """A config file that cannot be read back into parameters; `message` says what and where."""

    def __init__(self, message: Message) -> None:
        super().__init__(message.code)
        self.message = message


def read_config(path: Path) -> dict[str, Any]:
    """The mapping in a config file (YAML, or JSON by suffix): a regular file of at most CONFIG_LIMIT bytes."""
    if special_file(path):
        raise ConfigError(msg("config_special", path=path))
    try:
        raw = read_limited(path, CONFIG_LIMIT, READ_TIMEOUT)
    except FileNotFoundError:
        raise ConfigError(msg("config_missing", path=path)) from None
    except IsADirectoryError:
        raise ConfigError(msg("config_is_folder", path=path)) from None
    except UnreadableFile as problem:
        code = "config_too_large" if "larger" in str(problem) else "config_special"
        if "did not finish" in str(problem):
            code = "config_read_timeout"
        raise ConfigError(msg(code, path=path, limit=CONFIG_LIMIT // 1024)) from None
    except OSError as problem:
        raise ConfigError(msg("config_unreadable", path=path, reason=os_reason(problem))) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise ConfigError(msg("config_not_utf8", path=path, position=problem.start)) from None
    try:
        loaded = bounded_yaml.load(text) if path.suffix.lower() != ".json" else json.loads(text)
    except bounded_yaml.NotAConfig as problem:
        raise ConfigError(msg(f"config_past_{problem.reason}", path=path, limit=problem.limit)) from None
    except (yaml.YAMLError, ValueError, RecursionError) as problem:  # JSON's too-long int is a ValueError
        raise ConfigError(msg("config_bad_yaml", path=path, reason=Quote(cut(str(problem).splitlines()[0])))) from None
    if not bounded_yaml.depth_within(loaded):
        raise ConfigError(msg("config_past_depth", path=path, limit=bounded_yaml.MAX_DEPTH))
    if not isinstance(loaded, dict):
        raise ConfigError(msg("config_not_mapping", path=path))
    return loaded


def _expect(config: dict[str, Any], key: str, field_name: str, default: Any) -> Any:
    """config[key] if it has the type of BakedParams.<field_name> (default when absent); ConfigError otherwise."""
    if key not in config or config[key] is None:
        return default
    value = config[key]
    kind, choices = TYPES[field_name], choices_of(field_name)
    if choices is not None:
        ok = value in choices and not isinstance(value, bool)
        expected = msg("expect_one_of", choices=list(choices))
    elif kind is bool:
        ok, expected = isinstance(value, bool), msg("expect_bool")
    elif kind is int:
        ok, expected = isinstance(value, int) and not isinstance(value, bool), msg("expect_int")
    else:
        ok, expected = isinstance(value, str), msg("expect_text")
    if not ok:
        raise ConfigError(msg("config_bad_value", key=key, value=_shown(value), expected=expected))
    return value


def _shown(value: Any) -> str:
    return shown(value, 60)


def params_from_config(config: dict[str, Any], engines_dir: str | None = None) -> tuple[BakedParams, list[Message]]:
    """Read a StreamDiffusion config back into BakedParams, with notes on anything the form cannot show."""
    model = config.get("model_id")
    if model is not None and not isinstance(model, str):
        raise ConfigError(msg("config_bad_value", key="model_id", value=_shown(model), expected=msg("expect_text")))
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(msg("config_no_model"))
    notes: list[Message] = []
    values: dict[str, Any] = {}
    for name, spec in SPECS.items():
        if spec.config_key and spec.config_key != "model_id":
            values[name] = _expect(config, spec.config_key, name, getattr(DEFAULTS, name))
    values["model"] = model

    t_index = config.get("t_index_list") if config.get("t_index_list") is not None else [0, 16, 32, 45]
    if not isinstance(t_index, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in t_index):
        raise ConfigError(
            msg("config_bad_value", key="t_index_list", value=_shown(t_index), expected=msg("expect_int_list"))
        )
    # Its length is the step count; its values are runtime values, carried as they are (sdprep/runtime.py).
    values["denoise_steps"] = derive.steps_for_t_index_list(t_index)
    if "builder_optimization_level" not in config or "static_shapes" not in config:
        notes.append(msg("note_no_profile_keys"))

    values["use_cached_attn"] = _expect(config, "use_cached_attn", "use_cached_attn", False)
    family = _expect(config, "pipeline_type", "model_family", None)
    detected = detect_family(model).family
    values["model_family"] = "auto" if family in (None, detected, "auto") else family
    values.update(_loras_of(config, values, detected))
    values.update(_controlnets_of(config))
    values.update(_ipadapter_of(config, notes))
    values["engines_dir"] = engines_dir if engines_dir is not None else _engines_dir_of(config)
    return params_from_values(values), notes


def _loras_of(config: dict[str, Any], values: dict[str, Any], detected: str) -> dict[str, Any]:
    scheduler = _expect(config, "scheduler", "scheduler", "lcm")
    raw = config.get("lora_dict") or {}
    if not isinstance(raw, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw.values()
    ):
        raise ConfigError(msg("config_bad_value", key="lora_dict", value=_shown(raw), expected=msg("expect_lora_dict")))
    loras = {str(k): float(v) for k, v in raw.items()}
    consistency = "none"
    family = values["model_family"]
    for kind, by_family in derive.CONSISTENCY_LORAS.items():
        for lora_family, lora_id in by_family.items():
            if lora_id in loras and kind == scheduler:
                consistency = kind
                del loras[lora_id]
                if family == "auto" and lora_family != detected:
                    values["model_family"] = lora_family
    return {
        "consistency_lora": consistency,
        "scheduler": scheduler if consistency == "none" else DEFAULTS.scheduler,
        "lora_json": json.dumps(loras) if loras else DEFAULTS.lora_json,
    }


def _controlnets_of(config: dict[str, Any]) -> dict[str, Any]:
    items = config.get("controlnets") or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ConfigError(msg("config_bad_value", key="controlnets", value=_shown(items), expected=msg("expect_list")))
    slots = []
    for item in items:
        channels = item.get("conditioning_channels")
        if channels is not None and (not isinstance(channels, int) or isinstance(channels, bool)):
            raise ConfigError(
                msg("config_bad_value", key="conditioning_channels", value=_shown(channels), expected=msg("expect_int"))
            )
        slots.append(
            ControlNetSlot(
                model_id=str(item.get("model_id", "")),
                preprocessor=str(item.get("preprocessor", "passthrough")),
                conditioning_channels=channels,
                enabled=bool(item.get("enabled", True)),
            )
        )
    return {
        "use_controlnet": bool(slots) or _expect(config, "use_controlnet", "use_controlnet", False),
        "controlnets": slots,
    }


def _ipadapter_of(config: dict[str, Any], notes: list[Message]) -> dict[str, Any]:
    adapters = config.get("ipadapters") or config.get("ipadapter_config") or []
    if isinstance(adapters, dict):
        adapters = [adapters]
    if not isinstance(adapters, list) or not all(isinstance(item, dict) for item in adapters):
        raise ConfigError(
            msg("config_bad_value", key="ipadapter_config", value=_shown(adapters), expected=msg("expect_list"))
        )
    values: dict[str, Any] = {
        "use_ipadapter": bool(adapters) and bool(config.get("use_ipadapter", True) or config.get("ipadapters"))
    }
    if adapters:
        first = adapters[0]
        if len(adapters) > 1:
            notes.append(msg("note_extra_ipadapters"))
        kind = _expect(first, "type", "ipadapter_type", "regular")
        values["ipadapter_model_path"] = str(first.get("ipadapter_model_path", ""))
        values["ipadapter_encoder_path"] = str(first.get("image_encoder_path", ""))
        values["ipadapter_tokens"] = _expect(first, "num_image_tokens", "ipadapter_tokens", 16 if kind == "plus" else 4)
        values["ipadapter_type"] = kind
    return values


def _engines_dir_of(config: dict[str, Any]) -> str:
    engine_dir = config.get("engine_dir")
    if engine_dir is not None and not isinstance(engine_dir, str):  # 5 or a list: refused like any other key
        raise ConfigError(
            msg("config_bad_value", key="engine_dir", value=_shown(engine_dir), expected=msg("expect_text"))
        )
    return str(Path(engine_dir).parent) if engine_dir else DEFAULTS.engines_dir


def load_params(path: Path) -> tuple[BakedParams, list[Message]]:
    return params_from_config(read_config(path))
