"""Save config only: write config.yaml (and its configs/<variant>.yaml copy) without building, and say what it means.

A saved config replaces the model's current one: the answer names the variant it replaced, and says whether engines
for it already exist or whether StreamDiffusion will build them when the inference script first loads it
(`build_engines_if_missing: true`), which takes minutes on the GPU. The model's lock keeps a Save from writing under
a running build of the same model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from sdprep import derive
from sdprep.config import RuntimeDefaults, make_config
from sdprep.config_load import ConfigError, read_config
from sdprep.config_write import config_to_write, write_configs
from sdprep.engine_files import fingerprint, variant_id
from sdprep.locks import job_message, model_lock
from sdprep.manifest import trusted_record
from sdprep.messages import Message, Problem, has_errors, msg, os_reason
from sdprep.model_folder import CONFIG_NAME, CONFIGS_DIR, by_relative, outside, records_or_empty
from sdprep.params import BakedParams
from sdprep.runtime import Runtime
from sdprep.validate import validate


@dataclass
class SaveResult:
    outcome: str  # "written", "refused" (problems), "busy" (a build of this model runs), "failed" (cannot write)
    reason: Message
    config_path: Path | None = None
    variant_path: Path | None = None
    notes: list[Message] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "written"


def save_config(params: BakedParams, runtime: RuntimeDefaults, loaded: Runtime | None = None) -> SaveResult:
    """Write the config by the same rule as a build (config_write.py); `loaded`: a loaded config's runtime values."""
    problems = validate(params)
    if has_errors(problems):
        return SaveResult("refused", msg("save_errors"), problems=problems)
    config = make_config(params, runtime)
    folder = derive.engine_dir(params)
    variant = variant_id(derive.variant_name(params), config)
    config_path = folder / CONFIG_NAME
    root = Path(params.engines_dir)
    if outside(root, folder) or outside(root, folder / CONFIGS_DIR):  # a link out of the engines folder: not followed
        return SaveResult("refused", msg("model_folder_outside", folder=folder, root=root), problems=problems)
    lock = model_lock(folder)
    with lock.held(f"save of {config_path}", job="save") as got:
        if not got:
            holder = lock.holder()
            busy = msg("save_busy", job=job_message(holder), what=holder.get("what") or "?")
            return SaveResult("busy", busy, problems=problems)
        notes = [replaced_note(config_path, config)]
        notes.append(msg("save_engines_ready") if engines_ready(folder, variant) else msg("save_builds_at_load"))
        try:
            written = write_configs(config_to_write(params, runtime, loaded), variant)
        except OSError as problem:
            return SaveResult(
                "failed", msg("save_failed", path=problem.filename or config_path, reason=os_reason(problem))
            )
    if not written.wrote_config:
        notes = [msg("config_kept", path=config_path), notes[-1]]
    return SaveResult(
        "written",
        msg("save_ok", path=config_path),
        config_path=config_path,
        variant_path=written.variant_path,
        notes=[note for note in [*notes, *written.notes] if note is not None],
        problems=problems,
    )


def replaced_note(config_path: Path, config: dict[str, object]) -> Message | None:
    """What the write replaces: nothing, the same engines (a runtime change), or a config for other engines."""
    if not config_path.exists():
        return None
    try:
        old = read_config(config_path)
    except ConfigError:
        return msg("save_replaced_unreadable", path=config_path)
    if fingerprint(old) == fingerprint(config):
        return msg("save_replaced_same")
    return msg("save_replaced_other", variant=_variant_of(config_path.parent, old))


CONFIGS_READ = 200  # variant configs of one model read to name the one replaced; a folder holds a few dozen


def _variant_of(folder: Path, config: dict[str, object]) -> str:
    """The variant whose config `config` is: a recorded build's, else the configs/<variant>.yaml Save wrote for it."""
    wanted = fingerprint(config)
    manifest = records_or_empty(folder)
    recorded = next((name for name, record in manifest.variants.items() if record.fingerprint == wanted), None)
    if recorded is not None:
        return recorded
    with contextlib.suppress(OSError):
        for path in sorted((folder / CONFIGS_DIR).glob("*.yaml"))[:CONFIGS_READ]:
            with contextlib.suppress(ConfigError):
                if fingerprint(read_config(path)) == wanted:
                    return path.stem
    return "?"


def engines_ready(folder: Path, variant: str) -> bool:
    """Whether a recorded build of exactly this variant left all its engines, unchanged."""
    manifest = records_or_empty(folder)
    record = manifest.variants.get(variant)
    if record is None or record.stale:
        return False
    on_disk = by_relative(folder)
    return all(rel in on_disk and trusted_record(manifest, on_disk[rel]) is not None for rel in record.engines)
