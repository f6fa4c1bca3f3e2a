"""The estimate before a build (sdprep/estimate/): the reference table, what earlier builds teach it, refusing what
cannot fit before anything runs, and what a build records against what it promised."""

from __future__ import annotations

import io
import json
import os
import re
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from sdprep import estimate as est
from sdprep.cli import main as cli_main
from sdprep.estimate import GIB, MIB, PastBuild, PastEngine, Shape
from sdprep.fork_stats import profile_problems, read_stats
from sdprep.jobs.build import BuildOptions, BuildResult, run_build
from sdprep.jobs.process import ChildProcess, ChildSpec
from sdprep.jobs.progress import JobEvent
from sdprep.messages import Message, Problem
from sdprep.params import BakedParams, params_from_values
from sdprep.text import word
from sdprep.ui.views.params import estimate_markdown

from .conftest import STANDIN, runtime_defaults, said

OPTIONS = BuildOptions(child=ChildSpec(streamdiffusion_src=str(STANDIN)))
SD21 = Shape("sd2.1", False, False, 3, True, 512, 512, 1)
Usage = namedtuple("Usage", "total used free")


def shape(**changes: Any) -> Shape:
    return Shape(**{**SD21.__dict__, **changes})


def make(tmp_path: Path, **values: Any) -> BakedParams:
    return params_from_values({"engines_dir": str(tmp_path / "engines"), **values})


def build(params: BakedParams, options: BuildOptions = OPTIONS) -> tuple[BuildResult, list[JobEvent]]:
    events: list[JobEvent] = []
    return run_build(params, runtime_defaults(), options, events.append), events


def manifest(tmp_path: Path, slug: str = "stabilityai--sd-turbo") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "engines" / slug / "build.json").read_text())
    return data


def worded(message: Message) -> tuple[str, str]:
    return word(message, "en"), word(message, "ru")


# --- the reference table ---------------------------------------------------------------------------------------


def test_the_default_build_is_estimated_from_the_table_with_its_sources() -> None:
    promised = est.estimate(SD21)
    assert [part.slot for part in promised.parts] == ["unet", "vae_encoder", "vae_decoder"]
    # SD2.1 UNet ~1.76 GB, two TAESD engines of a few MB
    assert 1.7 * GIB < promised.disk_engines.low < promised.disk_engines.high < 1.9 * GIB
    assert promised.disk_needed == int(promised.disk_peak.high) + promised.margin >= promised.disk_peak.high + GIB
    assert promised.time.source.code == "est_src_time_table"
    assert said(est.time_words(promised.time)) == "5–12 min"  # Flexible: +30 % on the table's 3-6 min UNet
    for line in est.lines(promised, 50 * GIB, 20 * GIB, Path("/engines")):
        english, russian = worded(line.source)
        assert english and russian and english != russian  # every source is worded, in both languages
    assert "NVIDIA TensorRT#3749" in said(promised.disk_engines.source)


def test_family_profile_resolution_and_engines_move_the_figures() -> None:
    sd, xl = est.estimate(SD21), est.estimate(shape(family="sdxl"))
    assert xl.disk_engines.low > 2.5 * sd.disk_engines.high and xl.vram_build.low > sd.vram_build.low
    fast, quality = est.estimate(shape(static_shapes=True, opt_level=2)), est.estimate(shape(static_shapes=True))
    assert fast.time.high < quality.time.high < sd.time.high  # Fast build < Quality < Flexible
    assert est.estimate(shape(width=1024, height=1024)).vram_run.high > sd.vram_run.high
    # A Flexible VAE is sized for 1024x1024 whatever the chosen size; a static one for the size chosen.
    assert est.estimate(shape(static_shapes=True)).vram_run.high < sd.vram_run.high
    more = est.estimate(shape(controlnets=("lllyasviel/control_v11p_sd15_canny",), safety_checker=True))
    assert [part.slot for part in more.parts][3:] == ["cnet:lllyasviel/control_v11p_sd15_canny", "safety_checker"]
    assert more.disk_engines.low > sd.disk_engines.low + 700 * MIB


def test_fp8_needs_the_forks_28_gib_floor_and_builds_smaller_engines() -> None:
    fp8 = est.estimate(shape(fp8=True, static_shapes=True, opt_level=4))
    assert fp8.disk_peak.source.code == "est_src_fp8_floor" and fp8.disk_needed > 28 * GIB
    assert fp8.parts[0].size.high < est.estimate(SD21).parts[0].size.low * 0.65
    assert fp8.time.low > est.estimate(SD21).time.high  # calibration and quantisation take many minutes
    assert "28 GiB" in said(fp8.disk_peak.source)


# --- what earlier builds teach it -------------------------------------------------------------------------------


def past(kind: str, seconds: float | None, size: int = 1000, **changes: Any) -> PastEngine:
    values = {
        "slot": kind,
        "kind": kind,
        "family": "sd2.1",
        "fp8": False,
        "static_shapes": False,
        "opt_level": 3,
        "tiny_vae": True,
        "width": 512,
        "height": 512,
        "batch": 1,
        "bytes": size,
        "seconds": seconds,
        **changes,
    }
    return PastEngine(**values)


def earlier(name: str, gpu: str, seconds: float, unet: float, vae: float | None, **changes: Any) -> PastBuild:
    engines = (past("unet", unet, **changes), past("vae_encoder", vae), past("vae_decoder", vae))
    return PastBuild(gpu, seconds, engines, name)


def test_time_from_earlier_builds_of_the_same_engines_on_this_gpu() -> None:
    history = [earlier(f"m/{i}", "RTX", 360 + i * 10, 300 + i * 10, 20) for i in range(3)]
    promised = est.estimate(SD21, history, gpu="RTX")
    assert promised.time.source.code == "est_src_time_history" and promised.time.about == pytest.approx(370)
    assert said(promised.time.source) == "from 3 earlier builds on this GPU"
    assert word(promised.time.source, "ru") == "по 3 прошлым сборкам на этом GPU"
    assert said(est.time_words(promised.time)) == "about 6 min"
    # Another GPU's builds do not time this one; their sizes still count (an engine is its weights).
    elsewhere = est.estimate(SD21, history, gpu="Other GPU")
    assert elsewhere.time.source.code == "est_src_time_table"
    assert elsewhere.disk_engines.source.code == "est_src_size_history_all" and elsewhere.disk_engines.high == 3000


def test_this_gpus_speed_on_other_settings_scales_the_table() -> None:
    # An earlier Quality build of another size took half the table's middle on this GPU.
    low, high = est.table_seconds("unet", shape(static_shapes=True, width=768, height=768))
    history = [earlier("m/a", "RTX", 100, (low + high) / 4, None, static_shapes=True, width=768, height=768)]
    promised = est.estimate(SD21, history, gpu="RTX")
    table = est.estimate(SD21)
    assert promised.time.source.code == "est_src_time_scaled"
    assert (promised.time.low, promised.time.high) == pytest.approx((table.time.low / 2, table.time.high / 2))
    assert said(promised.time.source).startswith("the reference table × 0.5: how this GPU did in 1 earlier build")


def test_an_answer_is_kept_for_the_same_history_and_a_new_history_is_asked_again() -> None:
    """The preview asks on every form change with load_history's cached tuple: the answer is kept per shape and GPU,
    and a build recorded since (a new tuple) is taken into account at once."""
    history = tuple(earlier(f"m/{i}", "RTX", 360, 300, 20) for i in range(3))
    first = est.estimate(SD21, history, gpu="RTX")
    assert est.estimate(SD21, history, gpu="RTX") is first
    assert est.estimate(SD21, history, gpu="Other GPU").time.source.code == "est_src_time_table"
    assert est.estimate(shape(width=768), history, gpu="RTX") != first
    learnt = (*history, earlier("m/3", "RTX", 960, 900, 20))
    assert est.estimate(SD21, learnt, gpu="RTX").time.about == pytest.approx(360)  # median of 360, 360, 360, 960
    assert est.estimate(SD21, learnt, gpu="RTX").parts[0].seconds.high == pytest.approx(900)


def test_recorded_actuals_read_back_and_foreign_shapes_are_ignored() -> None:
    item = est.past_engine_json("unet", "unet", None, SD21, 1234, 5.5)
    assert est.past_build("m/v", "RTX", {"seconds": 9.0, "engines": [item]}) == PastBuild(
        "RTX", 9.0, (past("unet", 5.5, size=1234),), "m/v"
    )
    assert est.past_build("m/v", "RTX", None) is None
    assert est.past_build("m/v", "RTX", {"seconds": "soon", "engines": []}) is None
    assert est.past_build("m/v", "RTX", {"seconds": 1, "engines": [{"slot": "unet"}]}) is None


# --- refusing what cannot fit -----------------------------------------------------------------------------------


@pytest.fixture
def little_disk(monkeypatch: pytest.MonkeyPatch) -> int:
    """A filesystem with 2 GiB free (the default build needs about 6 GiB), and no child may start."""
    free = 2 * GIB
    monkeypatch.delenv("SDPREP_ALLOW_LOW_DISK", raising=False)  # conftest sets it for every other test
    monkeypatch.setattr(est.report, "disk_usage", lambda path: Usage(100 * GIB, 98 * GIB, free))
    return free


def forbid_children(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    started: list[str] = []

    def refuse(spec: ChildSpec, script: str, *args: Any, **kwargs: Any) -> Any:
        started.append(script)
        raise AssertionError(f"a child started: {script}")

    monkeypatch.setattr(ChildProcess, "start", staticmethod(refuse))
    return started


def test_too_little_disk_refuses_before_any_child_and_writes_nothing(
    tmp_path: Path, little_disk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = forbid_children(monkeypatch)
    result, events = build(make(tmp_path))
    assert result.outcome == "refused" and result.reason.code == "build_refused_disk" and result.exit_code == 2
    (problem,) = [p for p in result.problems if p.severity == "error"]
    assert problem.field == "engines_dir" and problem.message.code == "disk_low"
    text = said(problem.message)
    assert "2.0 GiB free" in text and "--allow-low-disk" in text
    assert started == [] and not (tmp_path / "engines").exists()
    assert not any(event.kind == "stage" for event in events)


def test_allow_low_disk_builds_anyway_and_says_the_risk(tmp_path: Path, little_disk: int) -> None:
    result, events = build(make(tmp_path), BuildOptions(child=OPTIONS.child, allow_low_disk=True))
    assert result.outcome == "built", result.reason
    assert any(event.message.code == "disk_low_allowed" for event in events)


def test_an_up_to_date_build_needs_no_space_but_a_forced_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = build(make(tmp_path))
    assert first.outcome == "built"
    monkeypatch.delenv("SDPREP_ALLOW_LOW_DISK", raising=False)
    monkeypatch.setattr(est.report, "disk_usage", lambda path: Usage(100 * GIB, 99 * GIB, GIB))
    again, _ = build(make(tmp_path))
    assert again.outcome == "up_to_date"
    forced, _ = build(make(tmp_path), BuildOptions(child=OPTIONS.child, force=True))
    assert forced.outcome == "refused" and forced.reason.code == "build_refused_disk"


def test_the_cli_refuses_with_the_flag_named_and_allow_low_disk_overrides(
    tmp_path: Path, little_disk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SDPREP_STREAMDIFFUSION_SRC", str(STANDIN))
    args = ["build", "--engines-dir", str(tmp_path / "engines"), "--lang", "en"]
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(args, runtime_defaults(), serve=lambda a: 0, out=out, err=err)
    assert code == 2, err.getvalue()
    assert "error: --engines-dir: " in err.getvalue() and "2.0 GiB free" in err.getvalue()
    assert out.getvalue().startswith("Estimate before building:\n")
    assert "Free in the engines folder: 2.0 GiB: not enough, the build will be refused" in out.getvalue()
    assert not (tmp_path / "engines").exists()
    out, err = io.StringIO(), io.StringIO()
    code = cli_main([*args, "--allow-low-disk"], runtime_defaults(), serve=lambda a: 0, out=out, err=err)
    assert code == 0, err.getvalue()
    assert out.getvalue().strip().splitlines()[-1].endswith("config.yaml")


def test_free_vram_below_the_estimate_warns_of_the_silent_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VRAM_FREE_GB", "3")
    result, events = build(make(tmp_path))
    assert result.outcome == "built"
    (warning,) = [p for p in result.problems if p.message.code == "vram_low"]
    assert warning.severity == "warning" and warning.field == "width"
    text = said(warning.message)
    assert "3.0 GiB free" in text and "silently uses PyTorch" in text and "lower the resolution" in text
    assert any(event.message == warning.message for event in events)  # said in the log while building


# --- measuring what was promised -------------------------------------------------------------------------------


def test_a_build_records_its_estimate_and_what_it_took_and_the_next_estimate_learns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_SD_MODE", "slow")
    monkeypatch.setenv("STANDIN_SLOW_SECONDS", "0.2")
    monkeypatch.setenv("STANDIN_SLOW_STEPS", "1")
    first, _ = build(make(tmp_path))
    assert first.outcome == "built"
    assert said(first.reason).startswith("Built 3 engine(s) in ") and said(first.reason).endswith(
        "; estimated 5–12 min."
    )
    record = next(iter(manifest(tmp_path)["variants"].values()))
    assert record["estimate"]["time"]["source"]["code"] == "est_src_time_table"
    assert record["estimate"]["disk_needed"] > 4 * GIB
    actual = record["actual"]
    assert {item["slot"] for item in actual["engines"]} == {"unet", "vae_encoder", "vae_decoder"}
    # Each engine's seconds are the fork's own (build_stats.json), the decoder's from build_log.jsonl.
    assert all(item["seconds"] >= 0.09 for item in actual["engines"]), actual
    assert actual["seconds"] >= sum(item["seconds"] for item in actual["engines"])
    assert actual["bytes"] == sum(e["size"] for e in first.engines)
    again, _ = build(make(tmp_path), BuildOptions(child=OPTIONS.child, force=True))
    assert again.outcome == "built"
    latest = manifest(tmp_path)["variants"][again.variant]
    # The rebuild starts with the timing cache the first build left (warm); the first was cold: timed from it, said.
    history = {"code": "est_src_time_history", "params": {"count": 1}}
    assert latest["estimate"]["time"]["source"] == {
        "code": "est_src_time_warm_from_cold",
        "params": {"source": history},
    }
    # About the earlier build's time (a second or so), no longer the table's minutes.
    assert latest["estimate"]["time"]["about"] == pytest.approx(actual["seconds"], rel=0.01)
    assert re.search(r"; estimated about \d+ s\.$", said(again.reason)), said(again.reason)


def test_the_preview_section_states_each_figure_and_its_source(tmp_path: Path) -> None:
    promised = est.estimate(SD21)
    text = estimate_markdown(promised, GIB, 20 * GIB, tmp_path, "en")
    assert text.startswith("#### Estimate before building")
    assert "**Build time:** 5–12 min" in text and "a rough range for an RTX 4090" in text
    assert "**⚠ 1.0 GiB: not enough, the build will be refused**" in text
    russian = estimate_markdown(promised, 50 * GIB, 20 * GIB, tmp_path, "ru")
    assert "**Время сборки:** 5–12 мин" in russian and "⚠" not in russian
    assert "No estimate" in estimate_markdown(None, None, None, tmp_path, "en")


# --- what the fork reports -------------------------------------------------------------------------------------


def test_the_standin_writes_build_stats_like_the_real_builder(tmp_path: Path) -> None:
    result, _ = build(make(tmp_path))
    folder = tmp_path / "engines" / "stabilityai--sd-turbo"
    for engine in result.engines:
        stats = read_stats(folder / engine["path"])
        assert stats is not None, engine
        assert stats["engine_file"] == Path(engine["path"]).name and stats["opt_resolution"] == "512x512"
        assert set(stats["stages"]) == {"onnx_export", "onnx_optimize", "trt_build"}
        assert all(stage["status"] == "built" and "elapsed_s" in stage for stage in stats["stages"].values())
        assert {"build_start", "build_end", "total_elapsed_s", "engine_size_mb", "batch_size"} <= set(stats)
        # Flexible: the UNet's resolution is static, the VAE's a range (profile_facts §2).
        assert stats["dynamic_range"] == ("static" if engine["kind"] == "unet" else "384-1024")
    unet = folder / next(e["path"] for e in result.engines if e["kind"] == "unet")
    assert read_stats(unet, since=os.path.getmtime(unet) + 3600) is None  # an earlier build's stats do not count


def test_a_vae_built_against_the_profile_is_a_warning() -> None:
    quality = params_from_values({"static_shapes": True, "opt_level": 3})
    stats = {"dynamic_range": "384-1024", "stages": {}}
    (problem,) = profile_problems(quality, {"a/vae_encoder.engine": ("vae_encoder", stats)})
    assert isinstance(problem, Problem) and problem.field == "static_shapes"
    assert "did not honour the profile" in said(problem.message) and '"384-1024"' in said(problem.message)
    assert profile_problems(quality, {"a/vae_encoder.engine": ("vae_encoder", {"dynamic_range": "static"})}) == []
    assert profile_problems(quality, {"a/unet.engine": ("unet", None)}) == []  # no stats: nothing to say
