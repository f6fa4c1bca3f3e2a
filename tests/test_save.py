"""Save config only: it says what it replaced, keeps the variant's own copy, says what loading it will do, and never
writes under a running build of the same model."""

from __future__ import annotations

from pathlib import Path

from sdprep.jobs.build import BuildOptions, run_build
from sdprep.jobs.process import ChildSpec
from sdprep.locks import model_lock
from sdprep.params import params_from_values
from sdprep.save import save_config

from .conftest import STANDIN, runtime_defaults, said


def test_save_keeps_the_variant_copy_and_says_the_engines_are_not_built(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path)})
    saved = save_config(params, runtime_defaults())
    assert saved.outcome == "written" and saved.config_path and saved.variant_path
    assert (
        saved.variant_path.parent.name == "configs" and saved.variant_path.read_text() == saved.config_path.read_text()
    )
    assert [note.code for note in saved.notes] == ["save_builds_at_load", "runtime_from_defaults"]
    assert "build_engines_if_missing: true" in said(saved.notes[0])


def test_save_over_another_config_says_which_variant_it_replaced(tmp_path: Path) -> None:
    one = params_from_values({"engines_dir": str(tmp_path)})
    built = run_build(one, runtime_defaults(), BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN))))
    assert built.outcome == "built"
    same = save_config(one, runtime_defaults())
    assert {note.code for note in same.notes} == {"config_kept", "save_engines_ready"}, "nothing to rewrite"
    two = params_from_values({"engines_dir": str(tmp_path), "denoise_steps": 2})
    other = save_config(two, runtime_defaults())
    replaced = next(note for note in other.notes if note.code == "save_replaced_other")
    assert built.variant and built.variant in said(replaced)
    assert built.config_path and (built.config_path.parent / "configs" / f"{built.variant}.yaml").is_file(), (
        "the old variant's copy stays"
    )


def test_save_never_writes_under_a_running_build(tmp_path: Path) -> None:
    params = params_from_values({"engines_dir": str(tmp_path)})
    folder = tmp_path / "stabilityai--sd-turbo"
    lock = model_lock(folder)
    assert lock.acquire("build of stabilityai/sd-turbo")
    try:
        saved = save_config(params, runtime_defaults())
    finally:
        lock.release()
    assert saved.outcome == "busy" and "build of stabilityai/sd-turbo" in said(saved.reason)
    assert not (folder / "config.yaml").exists()


def test_save_refuses_invalid_parameters_and_writes_nothing(tmp_path: Path) -> None:
    saved = save_config(params_from_values({"engines_dir": str(tmp_path), "width": 500}), runtime_defaults())
    assert saved.outcome == "refused" and saved.problems and not any(tmp_path.iterdir())
