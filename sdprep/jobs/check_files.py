"""Where a check reads and writes: the config it loads, the model folder it belongs to, the folder StreamDiffusion
will load engines from, the image it saves, and the build.json record it updates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sdprep.config_load import ConfigError, read_config
from sdprep.engine_files import fingerprint
from sdprep.manifest import Manifest
from sdprep.messages import msg, shown
from sdprep.model_folder import CONFIG_NAME, CONFIGS_DIR, holds_model


def read_check_config(config_path: Path) -> dict[str, Any]:
    """The config as written; ConfigError when it is not a StreamDiffusion config a check could load."""
    config = read_config(config_path)
    if not isinstance(config.get("model_id"), str) or not config["model_id"]:
        raise ConfigError(msg("config_no_model"))
    for key in ("width", "height"):
        if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool)):
            raise ConfigError(msg("config_bad_value", key=key, value=shown(config[key]), expected=msg("expect_int")))
    if "t_index_list" in config and not isinstance(config["t_index_list"], list):
        raise ConfigError(
            msg(
                "config_bad_value",
                key="t_index_list",
                value=shown(config["t_index_list"]),
                expected=msg("expect_int_list"),
            )
        )
    return config


def model_folder(config_path: Path) -> Path:
    """The model's folder (build.json, logs): beside config.yaml, or above configs/<variant>.yaml."""
    folder = config_path.parent
    if folder.name == CONFIGS_DIR and holds_model(folder.parent):
        return folder.parent
    return folder


def load_location(config: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """(working folder for the child, absolute engine folder StreamDiffusion will use).

    A relative engine_dir is relative to where the inference script runs: run from the ancestor of the model folder
    that makes engine_dir point at it (configs this app writes have absolute ones).
    """
    raw = Path(str(config.get("engine_dir") or "engines"))
    if raw.is_absolute():
        return Path.cwd(), raw.resolve()
    for base in (folder, *folder.parents):
        if (base / raw).resolve() == folder:
            return base, folder
    return Path.cwd(), (Path.cwd() / raw).resolve()


def image_path_for(config_path: Path) -> Path:
    """check.png beside config.yaml; configs/<variant>.check.png for a variant's own config."""
    if config_path.name == CONFIG_NAME:
        return config_path.with_name("check.png")
    return config_path.with_name(f"{config_path.stem}.check.png")


def find_variant(manifest: Manifest, config_path: Path, config: dict[str, Any]) -> str | None:
    """The build.json variant this config is: the one its file names, if it needs the same engines."""
    wanted = fingerprint(config)
    named = config_path.stem if config_path.parent.name == CONFIGS_DIR else manifest.latest_variant
    if named in manifest.variants and manifest.variants[named].fingerprint == wanted:
        return named
    same = [name for name, record in manifest.variants.items() if record.fingerprint == wanted]
    return same[0] if len(same) == 1 else None


def relative_to(folder: Path, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(folder).as_posix()
    except ValueError:
        return str(path)
