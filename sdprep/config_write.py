"""The one writer of a model's configs, for Build and for Save config only: config.yaml and configs/<variant>.yaml.

The baked part comes from the parameters (make_config); the runtime part from sdprep/runtime.py's order (the loaded
config, else the folder's config.yaml, else RUNTIME_DEFAULTS). config.yaml is written only when it does not already
hold these engines' config or when a loaded config's values are asked for, so an up-to-date build or a rebuild of
the same engines never rewrites what a person edited there. configs/<variant>.yaml keeps the values it was written
with: it is written when missing, or with a loaded config's values. Callers hold the model's lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdprep import derive
from sdprep.config import RuntimeDefaults, config_header, dump_yaml, make_config
from sdprep.config_load import ConfigError, read_config
from sdprep.engine_files import baked_part
from sdprep.messages import Message
from sdprep.model_folder import CONFIGS_DIR
from sdprep.params import BakedParams
from sdprep.paths import atomic_write_text
from sdprep.runtime import Runtime, apply, chosen, header_line, summary

# Keys the app owns that no fingerprint holds: a config.yaml that differs in one of them is rewritten.
_APP_OWNED = ("engine_dir", "build_engines_if_missing", "compile_engines_only")


@dataclass
class ConfigToWrite:
    """The whole config for one set of parameters, where its runtime values come from, and what to say about it."""

    params: BakedParams
    config: dict[str, Any]
    runtime: Runtime
    notes: list[Message] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return derive.engine_dir(self.params)

    def text(self) -> str:
        return dump_yaml(self.config, config_header(self.params, header_line(self.runtime)))


@dataclass
class WrittenConfigs:
    config_path: Path
    variant_path: Path
    wrote_config: bool  # False: config.yaml already held this config (its runtime values untouched)
    notes: list[Message]


def config_to_write(params: BakedParams, defaults: RuntimeDefaults, loaded: Runtime | None = None) -> ConfigToWrite:
    """make_config(params) with the runtime values it gets by the order above (reads the folder's config.yaml)."""
    runtime, note = chosen(loaded, derive.engine_dir(params))
    config, notes = apply(make_config(params, defaults), runtime, params.denoise_steps)
    return ConfigToWrite(params, config, runtime, [*([note] if note else []), *notes])


def write_configs(target: ConfigToWrite, variant: str) -> WrittenConfigs:
    """Write what `target` says should change (OSError when the folder cannot be written)."""
    text = target.text()
    variant_path = target.folder / CONFIGS_DIR / f"{variant}.yaml"
    loaded = target.runtime.origin == "loaded"
    if loaded or not variant_path.exists():
        atomic_write_text(variant_path, text)
    config_path = target.folder / "config.yaml"
    rewrite = loaded or not _holds(config_path, target.config)
    if rewrite:
        atomic_write_text(config_path, text)
    return WrittenConfigs(
        config_path, variant_path, rewrite, [summary(target.runtime), *target.notes] if rewrite else []
    )


def _holds(path: Path, config: dict[str, Any]) -> bool:
    """Whether `path` is a config for exactly these engines, in this engines folder (runtime values aside)."""
    try:
        old = read_config(path)
    except ConfigError:
        return False
    same_app_keys = all(old.get(key) == config.get(key) for key in _APP_OWNED)
    return same_app_keys and baked_part(old) == baked_part(config)
