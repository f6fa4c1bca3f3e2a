"""The web UI through its API (gradio_client), against the real app with the stand-in StreamDiffusion.

Every endpoint the page uses has an api_name; these tests call them by component name (tests/ui_helpers.Api), as
the page would. The engines folder is the server's (--engines-dir): no request can choose another, so the module's
app builds into its own folder, which each test starts empty.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sdprep.config import make_config, render_config
from sdprep.config_load import load_params
from sdprep.messages import msg
from sdprep.params import PARAM_NAMES, ControlNetSlot, params_from_values
from sdprep.paths import atomic_write_text
from sdprep.text import TABLE, t, word
from testkit.api import Api, value_of
from testkit.app import RunningApp, held, running_app, runtime_defaults
from testkit.page_client import PageClient
from testkit.paths import ROOT, STANDIN
from testkit.processes import run as run_process
from testkit.timing import SUITE_TIMEOUT, budget, wait_until

SLOW_SECONDS = "0.8"  # per engine for "standin/slow-model": long enough to watch, short enough for CI
BUILT = t("out_built")
REFUSED = t("out_refused")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("ui-api"), {"STANDIN_SLOW_SECONDS": SLOW_SECONDS}) as running:
        yield running


@pytest.fixture
def engines(app: RunningApp) -> Path:
    """The app's engines folder, emptied: each test starts with an empty library."""
    if app.engines.exists():
        shutil.rmtree(app.engines)
    return app.engines


@pytest.fixture
def api(app: RunningApp, engines: Path) -> Iterator[Api]:
    client = Api(app.url)
    yield client
    client.close()


def write(path: Path, **values: object) -> Path:
    """A config.yaml as a build writes it, for the given form values."""
    params = params_from_values(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_config(params, runtime_defaults()))
    return path


def opening(key: str, lang: str = "en") -> str:
    """The words of a message before its first value: what every sentence of that kind starts with."""
    return TABLE[lang][key].split("{", 1)[0]


def started(out: dict[str, object], outcome: str = BUILT) -> bool:
    return str(out["build-result"]).startswith(f"#### {outcome}")


# --- the page's API --------------------------------------------------------------------------------------------
def test_every_page_event_is_a_named_endpoint(api: Api) -> None:
    expected = {
        "/preview",
        "/save_config",
        "/load_config",
        "/load_config_upload",
        "/build",
        "/rehearse",
        "/cancel",
        "/follow",
        "/probe_environment",
        "/cached_environment",
        "/library_list",
        "/library_variants",
        "/library_load",
        "/library_delete",
        "/detect_language",
    }
    assert expected <= set(api.endpoints)
    # Every component an endpoint reads or writes has a stable elem_id, the name it is called by.
    assert {name: e.unnamed for name, e in api.endpoints.items() if e.unnamed and e.visibility != "private"} == {}
    # Inputs are passed by field name: every BakedParams field (and the slots) is a named parameter, and the page's
    # language; the engines folder is the server's and no endpoint takes it.
    names = set(api.parameter_names("/preview"))
    fields = set(PARAM_NAMES) - {"controlnets", "engines_dir"}
    assert fields | {"lang", "cn_count", "cn2_conditioning_channels"} <= names
    assert not [name for name, e in api.endpoints.items() if "engines_dir" in e.parameters]


def test_state_is_neither_sent_nor_returned(api: Api) -> None:
    """gr.State (the page's build) and buttons are not API values: gradio_client leaves them out both ways."""
    config = api.client.config
    kinds = {component["id"]: component["type"] for component in config["components"]}
    build = next(d for d in config["dependencies"] if d.get("api_name") == "build")
    assert "state" in [kinds[i] for i in build["inputs"]] and "button" in [kinds[i] for i in build["outputs"]]
    assert api.output_names("/cancel") == ["build-progress", "build-log", "build-result", "check-result", "check-image"]
    assert api.parameter_names("/cancel") == ["lang"]
    assert len(api.client.predict("en", api_name="/cancel")) == 5


def test_preview_shows_derived_values_yaml_and_problems(api: Api, engines: Path) -> None:
    out = api.call("/preview", denoise_steps=3, cfg_type="initialize")
    assert "`[22, 32, 45]`" in out["derived"] and "t_index_list = `[22, 32, 45]`" in out["hint-sampling"]
    assert f"| {t('d_unet_batch')} | 4 |" in out["derived"]
    assert "t_index_list: [22, 32, 45]" in out["yaml-preview"]
    assert f"engine_dir: {engines}/stabilityai--sd-turbo" in out["yaml-preview"]
    assert f"{engines}/stabilityai--sd-turbo/config.yaml" in out["hint-output"]
    assert out["summary"] == t("sum_ok")

    bad = api.call("/preview", lora_json="{bad")
    assert bad["summary"] == t("sum_errors", errors=1, warnings=0)
    assert "sdprep-error" in bad["problems-lora"] and "not valid JSON" in bad["problems-lora"]
    assert bad["problems-checkpoint"] == ""
    assert t("yaml_blocked") in bad["yaml-preview"]

    warned = api.call("/preview", model="standin/slow-model")
    assert "warning(s); the build is allowed" in warned["summary"]
    assert "sdprep-warning" in warned["problems-checkpoint"]

    too_big = api.call("/preview", denoise_steps=4, cfg_type="full")
    assert "sdprep-error" in too_big["problems-sampling"] and "UNet batch of 8" in too_big["problems-sampling"]


def test_a_value_outside_a_slider_is_one_problem_under_its_field(api: Api, app: RunningApp) -> None:
    """Issue 12 point 3: 2000 typed into Width reaches the rules, which name it under Resolution; no traceback."""
    out = api.call("/preview", width=2000)
    assert "sdprep-error" in out["problems-resolution"] and "2000" in out["problems-resolution"]
    assert out["summary"] == t("sum_errors", errors=1, warnings=0)
    assert "width: 2000" not in out["yaml-preview"] and t("yaml_blocked") in out["yaml-preview"]
    assert "Traceback" not in app.log_text()


def test_the_copied_command_follows_the_shell_switch(api: Api, engines: Path) -> None:
    """The line is quoted for bash/zsh or for cmd.exe as the page's switch says (the server's own by default), and
    options are --flag=value so an IP-Adapter path that starts with "-" is not read as a flag."""
    values = {"use_ipadapter": True, "ipadapter_model_path": "-h94/IP-Adapter", "lora_json": '{"owner/x": 0.8}'}
    posix = api.call("/preview", **values, **{"command-shell": "posix"})["command-line"]
    assert "'--ipadapter=-h94/IP-Adapter'" in posix or "--ipadapter=-h94/IP-Adapter" in posix, posix
    assert """'--lora={"owner/x": 0.8}'""" in posix, posix
    cmd = api.call("/preview", **values, **{"command-shell": "cmd"})["command-line"]
    assert '^"--lora={\\^"owner/x\\^": 0.8}^"' in cmd, cmd


def test_preview_hides_what_does_not_apply(api: Api) -> None:
    """The scheduler and the cached frames are shown and hidden through their boxes (layout, not API values: the
    browser tests see them), never by property updates of the fields, which are inputs (test_ui_sessions.py)."""
    lcm = api.call("/preview", model="KBlueLeaf/kohaku-v2.1", consistency_lora="lcm")
    assert "scheduler" not in lcm and "cache_maxframes" not in lcm
    assert "latent-consistency/lcm-lora-sdv1-5" in lcm["hint-lora"]
    assert '"latent-consistency/lcm-lora-sdv1-5": 1.0' in lcm["hint-lora"]


def test_controlnet_slots_beyond_the_count_are_not_params(api: Api) -> None:
    out = api.call(
        "/preview",
        model="KBlueLeaf/kohaku-v2.1",
        use_controlnet=True,
        cn_count=2,
        cn0_model_id="first/controlnet",
        cn1_model_id="second/controlnet",
        cn1_conditioning_channels="4",
        cn2_model_id="third/controlnet",
    )
    assert "first/controlnet" in out["yaml-preview"] and "second/controlnet" in out["yaml-preview"]
    assert "third/controlnet" not in out["yaml-preview"]
    assert "conditioning_channels: 4" in out["yaml-preview"]
    assert "conditioning_scale: 1.0" in out["yaml-preview"]  # the runtime value, not a field
    bad = api.call("/preview", use_controlnet=True, cn_count=1, cn0_conditioning_channels="0")
    assert "ControlNet 1" in bad["problems-controlnet"] and "sdprep-error" in bad["problems-controlnet"]


def test_save_config_writes_the_preview_and_refuses_errors(api: Api, engines: Path) -> None:
    refused = api.call("/save_config", lora_json="{bad")
    assert refused["action-message"] == t("save_errors")
    assert not engines.exists()

    preview = api.call("/preview", denoise_steps=2)["yaml-preview"]
    saved = api.call("/save_config", denoise_steps=2)
    path = engines / "stabilityai--sd-turbo" / "config.yaml"
    assert saved["action-message"].startswith(t("save_ok", path=path))
    assert t("save_builds_at_load") in saved["action-message"]
    params = params_from_values({"denoise_steps": 2, "engines_dir": str(engines)})
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == make_config(params, runtime_defaults())
    assert preview == path.read_text(encoding="utf-8").rstrip("\n"), "the preview is what Save writes"
    assert list((path.parent / "configs").glob("*.yaml")), "Save keeps the variant's copy"


def test_load_config_fills_every_field(api: Api, engines: Path) -> None:
    path = write(
        engines / "hand" / "config.yaml",
        model="KBlueLeaf/kohaku-v2.1",
        denoise_steps=3,
        consistency_lora="tcd",
        cfg_type="none",
        width=768,
        height=512,
        lora_json='{"someone/style-lora": 0.6}',
        use_controlnet=True,
        controlnets=[
            ControlNetSlot("lllyasviel/control_v11f1p_sd15_depth", "depth", None, True),
            ControlNetSlot("cn/two", "my_custom", 4, False),
        ],
        use_ipadapter=True,
        ipadapter_model_path="h94/IP-Adapter/models/ip-adapter-plus_sd15.bin",
        ipadapter_tokens=16,
        ipadapter_type="plus",
        engines_dir=str(engines),
    )
    out = api.call("/load_config", load_path="hand/config.yaml")  # relative to the engines folder
    assert out["action-message"].startswith(t("load_ok", path=path)), out["action-message"]
    expected = {
        "model": "KBlueLeaf/kohaku-v2.1",
        "denoise_steps": 3,
        "consistency_lora": "tcd",
        "cfg_type": "none",
        "width": 768,
        "lora_json": '{"someone/style-lora": 0.6}',
        "use_controlnet": True,
        "cn_count": 2,
        "cn0_model_id": "lllyasviel/control_v11f1p_sd15_depth",
        "cn0_conditioning_channels": "",
        "cn1_preprocessor": "my_custom",
        "cn1_conditioning_channels": "4",
        "cn1_enabled": False,
        "use_ipadapter": True,
        "ipadapter_tokens": 16,
        "ipadapter_type": "plus",
    }
    assert {name: out[name] for name in expected} == expected
    assert "engines_dir" not in out  # shown, never set by a load

    # The loaded form gives back the same config (the round trip the inference script relies on).
    # Its runtime values too: the header says they come from the loaded file.
    again = api.call("/preview", **{k: v for k, v in out.items() if k in api.parameter_names("/preview")})
    assert yaml.safe_load(again["yaml-preview"]) == yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "# RUNTIME values from config.yaml" in again["yaml-preview"]

    missing = api.call("/load_config", load_path="nope/config.yaml")
    assert missing["action-message"].startswith(opening("load_failed"))
    assert api.call("/load_config", load_path="")["action-message"] == t("load_no_path")


def test_load_config_from_an_upload(api: Api, tmp_path: Path) -> None:
    from gradio_client import handle_file

    path = write(tmp_path / "uploaded.yaml", denoise_steps=2, width=640, engines_dir=str(tmp_path))
    out = api.call("/load_config_upload", load_upload=handle_file(str(path)))
    assert out["action-message"].startswith(t("load_ok", path="uploaded.yaml"))
    assert out["denoise_steps"] == 2 and out["width"] == 640


def test_load_config_notes_what_the_form_cannot_show(api: Api, engines: Path) -> None:
    path = engines / "hand-written" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("model_id: stabilityai/sd-turbo\nwidth: 2048\nt_index_list: [10, 20]\n", encoding="utf-8")
    out = api.call("/load_config", load_path=str(path))
    message = out["action-message"]
    assert message.startswith(t("load_ok", path=path)), message
    assert opening("load_note") in message and "Runtime: 1 value(s) from config.yaml (`t_index_list`)" in message
    assert out["denoise_steps"] == 2 and out["width"] == 2048  # shown as it is: the rules then say what is wrong
    assert "2048" in api.call("/preview", width=out["width"])["problems-resolution"]

    path.write_text("model_id: stabilityai/sd-turbo\ncfg_type: sometimes\n", encoding="utf-8")
    refused = api.call("/load_config", load_path=str(path))["action-message"]
    assert refused.startswith(opening("load_failed")) and "cfg_type" in refused and "sometimes" in refused


def test_load_config_keeps_every_runtime_value_of_the_fork_authors_config(api: Api, engines: Path) -> None:
    """Load config, then the preview, Save and Build: every runtime value of the file is named and kept (the nested
    IP-Adapter scale and the loader keys the app does not model included)."""
    path = engines / "profiling" / "profiling_quality_ipa.yaml"
    path.parent.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "data" / "forkni" / "profiling_quality_ipa.yaml", path)
    out = api.call("/load_config", load_path="profiling/profiling_quality_ipa.yaml")
    assert "Runtime: 16 value(s) from profiling_quality_ipa.yaml" in out["action-message"], out["action-message"]
    form = {k: v for k, v in out.items() if k in api.parameter_names("/preview") and not isinstance(v, dict)}
    preview = api.call("/preview", **form)
    assert "16 value(s) from profiling_quality_ipa.yaml" in preview["derived"]
    assert "hf_cache" in preview["derived"], "what is not carried is named"
    shown = yaml.safe_load(preview["yaml-preview"])
    expected = {"prompt": "default fancy banana wall", "seed": 3115577, "t_index_list": [10, 25], "warmup": 10}
    assert {key: shown[key] for key in expected} == expected and shown["ipadapter_config"][0]["scale"] == 0.25
    assert "# RUNTIME values from profiling_quality_ipa.yaml" in preview["yaml-preview"]
    assert preview["ipadapter-scale"] == "0.25", "the read-only scale shows the value the config will have"
    saved = api.call("/save_config", **form)
    config = engines / "stabilityai--sdxl-turbo" / "config.yaml"
    assert t("save_ok", path=config) in saved["action-message"]
    assert yaml.safe_load(config.read_text(encoding="utf-8")) == shown
    built = api.call("/build", check=False, **form)
    assert started(built) and yaml.safe_load(config.read_text(encoding="utf-8")) == shown


def test_page_edit_then_same_build_then_new_variant_keeps_the_values(api: Api, engines: Path) -> None:
    assert started(api.call("/build", check=False))
    config = engines / "stabilityai--sd-turbo" / "config.yaml"
    edited = {**yaml.safe_load(config.read_text(encoding="utf-8")), "prompt": "a cat in the rain", "delta": 0.4}
    config.write_text(yaml.safe_dump(edited, sort_keys=False), encoding="utf-8")
    before = config.read_bytes()
    assert "kept from config.yaml" in api.call("/preview")["derived"]
    assert started(api.call("/build", check=False), t("out_up_to_date"))
    assert config.read_bytes() == before, "an up-to-date build leaves config.yaml as it is"
    assert started(api.call("/build", check=False, width=640))
    written = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert (written["width"], written["prompt"], written["delta"]) == (640, "a cat in the rain", 0.4)


def test_load_into_form_from_the_library_carries_the_variant_runtime_values(api: Api, engines: Path) -> None:
    assert started(api.call("/build", model="KBlueLeaf/kohaku-v2.1", denoise_steps=2, check=False))
    copy = next((engines / "KBlueLeaf--kohaku-v2.1" / "configs").glob("2step-*.yaml"))
    edited = {**yaml.safe_load(copy.read_text(encoding="utf-8")), "prompt": "from the variant", "warmup": 4}
    copy.write_text(yaml.safe_dump(edited, sort_keys=False), encoding="utf-8")
    api.call("/library_list")
    loaded = api.call("/library_load", **{"library-model": "KBlueLeaf--kohaku-v2.1", "library-variant": copy.stem})
    assert f"value(s) from {copy.name}" in loaded["library-message"], loaded["library-message"]
    form = {k: v for k, v in loaded.items() if k in api.parameter_names("/preview") and not isinstance(v, dict)}
    shown = yaml.safe_load(api.call("/preview", **form)["yaml-preview"])
    assert (shown["prompt"], shown["warmup"], shown["t_index_list"]) == ("from the variant", 4, [32, 45])


# --- building --------------------------------------------------------------------------------------------------
def test_build_then_up_to_date_then_forced(api: Api, engines: Path) -> None:
    built = api.call("/build", check=False)
    assert started(built), built
    config = engines / "stabilityai--sd-turbo" / "config.yaml"
    assert t("res_config", path=config) in built["build-result"]
    assert "UNet" in built["build-result"] and f"· {t('res_built')}" in built["build-result"]
    assert t("res_stages") in built["build-result"]
    assert f"==> {t('stage_probe')}" in built["build-log"]
    assert built["build-progress"].startswith(BUILT)
    assert config.exists()

    again = api.call("/build", check=False)
    assert started(again, t("out_up_to_date")), again
    assert f"· {t('res_reused')}" in again["build-result"]

    forced = api.call("/build", force=True, check=False)
    assert started(forced), forced


def test_rehearse_button_rehearses_only_and_build_rehearses_first_when_asked(api: Api, engines: Path) -> None:
    rehearsed = api.call("/rehearse", check=False)
    assert started(rehearsed, t("out_rehearsal_passed")), rehearsed
    assert "Rehearsal passed" in rehearsed["build-result"] and "Build" not in rehearsed["build-result"].split("\n")[0]
    assert f"==> {t('stage_rehearse_export')}" in rehearsed["build-log"]
    assert not list(engines.rglob("*.engine")) and not list(engines.rglob("config.yaml")), "a rehearsal builds nothing"
    built = api.call("/build", check=False, rehearse=True)
    assert started(built), built
    # The Rehearse button's pass is remembered: the build says so instead of rehearsing again.
    assert t("stage_rehearse_export") not in built["build-log"] and "not repeated" in built["build-log"]
    plain = api.call("/build", check=False, force=True, rehearse=False)
    assert started(plain) and "Rehears" not in plain["build-log"]


def test_a_failing_rehearsal_names_its_stage_and_cancel_stops_it(api: Api, engines: Path) -> None:
    failed = api.call("/rehearse", model="standin/fallback-model", check=False)
    # Headed by what ran: "Rehearsal failed", never "Build failed" (a new user read the latter).
    assert started(failed, t("out_rehearsal_failed")), failed
    assert "The rehearsal failed at the TensorRT builder stage" in failed["build-result"]
    job = api.submit("/rehearse", model="standin/hang-model", check=False)
    api.wait_for(job, "/rehearse", lambda out: t("stage_rehearse_export") in out["build-log"])
    cancelled = api.call("/cancel")
    assert started(cancelled, t("out_rehearsal_cancelled")), cancelled


def test_force_rebuilds_the_engines(api: Api) -> None:
    assert started(api.call("/build", check=False))
    forced = api.call("/build", force=True, check=False)
    assert started(forced) and f"· {t('res_reused')}" not in forced["build-result"], forced["build-result"]


def test_build_with_errors_starts_nothing(api: Api, engines: Path) -> None:
    out = api.call("/build", lora_json="[1, 2]")
    assert out["build-progress"] == REFUSED  # the outcome's label, as for any other outcome
    assert started(out, REFUSED) and word(msg("build_invalid")) in out["build-result"]
    assert "lora_json" in out["build-result"]
    assert not engines.exists()


def test_a_build_answer_replaces_what_save_said(api: Api, app: RunningApp) -> None:
    """Issue 12 point 7: "Saved …" or "Nothing was written" does not stay above a later result, and back. The
    Build button clears the message by an event of its own (the build's updates leave the box alone)."""
    page = PageClient(app.url, deadline=SUITE_TIMEOUT)
    try:
        assert page.call("save_config", lora_json="{bad")[0]["action-message"] == t("save_errors")
        config = httpx.get(f"{app.url}config", timeout=SUITE_TIMEOUT).json()
        targets = {dep["api_name"]: dep["targets"] for dep in config["dependencies"] if dep.get("api_name")}
        assert targets["build_clear_message"] == targets["build"]  # one click runs both
        assert page.call("build_clear_message")[0]["action-message"] == ""
        assert started(page.call("build", check=False)[0])
    finally:
        page.close()
    saved = api.call("/save_config")
    assert saved["action-message"].startswith(opening("save_ok"))
    assert saved["build-result"] == "" and saved["build-progress"] == t("prog_idle")


def test_build_failure_shows_reason_log_tail_and_log_file(api: Api) -> None:
    out = api.call("/build", model="standin/exception-model", check=False)
    assert started(out, t("out_failed")), out
    assert "illegal memory access" in out["build-result"]
    assert t("res_log_tail") in out["build-result"]
    assert "`" in out["build-result"] and ".log`" in out["build-result"]


def test_build_streams_the_log_while_it_runs(api: Api) -> None:
    job = api.submit("/build", model="standin/slow-model", check=False)
    running = api.wait_for(job, "/build", lambda out: "[slow]" in out["build-log"] and not out["build-result"])
    assert "⚙" in running["build-progress"]
    done = api.named("/build", job.result(timeout=SUITE_TIMEOUT))
    assert started(done)
    assert done["build-log"].count("[slow]") > running["build-log"].count("[slow]")


def test_cancel_stops_a_hanging_build(api: Api, engines: Path) -> None:
    job = api.submit("/build", model="standin/hang-model")
    api.wait_for(job, "/build", lambda out: "hanging" in out["build-log"])
    begun = time.monotonic()
    out = api.call("/cancel")
    assert time.monotonic() - begun < budget(15)
    assert started(out, t("out_cancelled")), out
    assert out["build-progress"].startswith(t("out_cancelled"))
    assert not (engines / "standin--hang-model" / "config.yaml").exists()


def test_cancel_without_a_build(app: RunningApp) -> None:
    assert Api(app.url).call("/cancel")["build-progress"] == t("cancel_none")


def test_a_reopened_page_follows_the_running_build(app: RunningApp, api: Api) -> None:
    with held(app):
        job = api.submit("/build", model="standin/slow-model", check=False)
        api.wait_for(job, "/build", lambda out: t("stage_load_model") in out["build-log"])
        reopened = Api(app.url)  # a new session, as after closing and reopening the tab
        follow = reopened.submit("/follow")
        running = reopened.wait_for(follow, "/follow", lambda out: "[slow]" in out["build-log"])
        assert not running["build-result"]
    reopened.wait_for(follow, "/follow", started)
    job.result(timeout=SUITE_TIMEOUT)
    # Once it has finished, a newly opened page starts clean: no block from an earlier build.
    assert Api(app.url).call("/follow") == {
        "build-progress": t("prog_idle"),
        "build-log": "",
        "build-result": "",
        "check-result": "",
        "check-image": {"visible": False, "value": None, "__type__": "update"},
    }


def test_a_refused_build_leaves_nothing_for_the_next_page(app: RunningApp, api: Api) -> None:
    assert api.call("/build", lora_json="{bad")["build-progress"] == REFUSED
    assert Api(app.url).call("/follow")["build-progress"] == t("prog_idle")


def test_a_second_build_waits_its_turn(app: RunningApp, api: Api) -> None:
    other = Api(app.url)
    with held(app):
        job_a = api.submit("/build", model="standin/slow-model", check=False)
        api.wait_for(job_a, "/build", lambda out: "[slow]" in out["build-log"])
        job_b = other.submit("/build", model="KBlueLeaf/kohaku-v2.1", check=False)
        queued = other.wait_for(job_b, "/build", lambda out: "position 2" in out["build-progress"])
        assert queued["build-progress"].startswith("Waiting: 1 build(s) ahead")
    assert started(api.named("/build", job_a.result(timeout=SUITE_TIMEOUT)))
    assert started(other.named("/build", job_b.result(timeout=SUITE_TIMEOUT)))


def test_build_then_check_shows_speed_and_the_output_frame(api: Api, engines: Path) -> None:
    out = api.call("/build", check=True)
    assert started(out), out
    assert t("chk_passed") in out["check-result"] and "fps on NVIDIA GeForce RTX 4090" in out["check-result"], out
    image = out["check-image"]  # an update: shown, with the frame copied into Gradio's file cache
    assert image["visible"] is True and Path(image["value"]).name == "check.png"
    assert (engines / "stabilityai--sd-turbo" / "check.png").is_file()
    listed = api.call("/library_list")
    assert "fps on NVIDIA GeForce RTX 4090" in json.dumps(listed)


def test_build_without_check_shows_no_check(api: Api, engines: Path) -> None:
    out = api.call("/build", check=False)
    assert started(out) and out["check-result"] == ""
    assert not (engines / "stabilityai--sd-turbo" / "check.png").exists()


def test_the_build_result_shows_while_its_check_still_runs(api: Api) -> None:
    job = api.submit("/build", model="standin/slowframes-model", check=True)
    # Any update of the stream that shows the build's result before the check's (they all stay in the job's
    # outputs, so how fast this test looks does not matter).
    during = api.wait_for(job, "/build", lambda out: started(out) and out["check-result"] == "")
    assert during["check-result"] == "", "the check has not finished yet"
    assert t("chk_passed") in api.named("/build", job.result(timeout=SUITE_TIMEOUT))["check-result"]


def test_make_config_matches_the_written_yaml(api: Api, engines: Path) -> None:
    """The YAML shown is what a build writes: same dict, same text."""
    preview = api.call("/preview", model="KBlueLeaf/kohaku-v2.1", consistency_lora="lcm")
    built = api.call("/build", model="KBlueLeaf/kohaku-v2.1", consistency_lora="lcm", check=False)
    path = engines / "KBlueLeaf--kohaku-v2.1" / "config.yaml"
    assert started(built)
    assert path.read_text(encoding="utf-8").rstrip("\n") == preview["yaml-preview"]
    params, _ = load_params(path)
    assert make_config(params, runtime_defaults())["lora_dict"] == {"latent-consistency/lcm-lora-sdv1-5": 1.0}


# --- the environment -------------------------------------------------------------------------------------------
def test_environment_probe(api: Api) -> None:
    out = api.call("/probe_environment")["environment"]
    assert "NVIDIA GeForce RTX 4090" in out
    assert "| TensorRT | 10.16.1.11 |" in out
    assert "| PyTorch | 2.5.1+cu124 |" in out and "| CUDA (torch) | 12.4 |" in out
    assert "| VRAM |" in out and "GiB |" in out
    assert t("env_sd_location") in out and "standin" in out
    assert f"{t('feat_compile_engines_only')} | ✔ {t('yes')}" in out
    assert t("env_ready") in out
    assert "NVIDIA GeForce RTX 4090" in api.call("/cached_environment")["environment"]
    assert opening("env_checked_at") in api.call("/probe_environment")["environment"]


def test_environment_shows_what_is_missing(tmp_path: Path) -> None:
    with running_app(tmp_path / "app", {"STANDIN_NO_TRT": "1", "STANDIN_CUDA": "0"}) as app:
        api = Api(app.url)
        out = api.call("/cached_environment")["environment"]  # a machine never probed is probed on load
        assert t("env_missing") in out
        assert "TensorRT cannot be imported" in out
        assert "No CUDA GPU is visible" in out
        # Build follows what the machine can do: refused with the reason, and the banner says what is missing.
        refused = api.call("/build")
        assert started(refused, REFUSED) and "this machine cannot build yet" in refused["build-result"]
        preview = api.call("/preview")
        assert preview["setup-banner"]["visible"] is True and "TensorRT" in preview["setup-banner"]["value"]


def test_environment_probe_error_is_shown_as_a_sentence(tmp_path: Path) -> None:
    with running_app(tmp_path / "app", {"SDPREP_PYTHON": str(tmp_path / "no-such-python")}) as app:
        out = Api(app.url).call("/probe_environment")["environment"]
        assert out.startswith(t("env_error", error="Cannot start the build Python"))
        assert "Traceback" not in out


def test_the_page_shows_the_engines_folder_of_the_flag(tmp_path: Path) -> None:
    """The page is built when the app is imported, before serve() reads --engines-dir: the folder it shows is the
    server's own (it showed ./engines, while builds went to the folder of the flag)."""
    elsewhere = (tmp_path / "elsewhere").resolve()
    with running_app(tmp_path / "app", engines=elsewhere) as app:
        api = Api(app.url)
        try:
            assert api.call("/engines_folder")["engines_dir"] == str(elsewhere)
            assert str(elsewhere) in api.call("/preview")["yaml-preview"]
        finally:
            api.close()


# --- the engines library ---------------------------------------------------------------------------------------
def test_library_list_load_and_delete(api: Api, engines: Path) -> None:
    empty = api.call("/library_list")
    assert t("lib_empty_plain", folder=engines) in empty["library"]
    assert empty["library-model"]["interactive"] is False and empty["library-sure"]["interactive"] is False
    assert started(api.call("/build", model="KBlueLeaf/kohaku-v2.1", denoise_steps=2, check=False))

    listed = api.call("/library_list")
    assert "KBlueLeaf--kohaku-v2.1" in listed["library"]
    assert "NVIDIA GeForce RTX 4090 / 10.16.1.11" in listed["library"]
    assert t("status_ready") in listed["library"] and "2step-self-512x512" in listed["library"]
    assert listed["library-model"]["value"] == "KBlueLeaf--kohaku-v2.1"
    assert listed["library-variant"]["value"] == "config.yaml"
    choices = [value for _, value in listed["library-variant"]["choices"]]
    assert any(choice.startswith("2step-self-512x512-") for choice in choices)
    # The same choices as listed: only the value is sent (the lists are inputs too; test_ui_sessions.py).
    variants = api.call("/library_variants", **{"library-model": "KBlueLeaf--kohaku-v2.1"})["library-variant"]
    assert value_of(variants) == "config.yaml"

    loaded = api.call("/library_load", **{"library-model": "KBlueLeaf--kohaku-v2.1", "library-variant": choices[-1]})
    assert loaded["model"] == "KBlueLeaf/kohaku-v2.1" and loaded["denoise_steps"] == 2
    assert loaded["library-message"].startswith(opening("load_ok"))
    assert loaded["action-message"].startswith(opening("load_ok"))  # said on the Prepare tab, where it goes

    unsure = api.call("/library_delete", **{"library-model": "KBlueLeaf--kohaku-v2.1", "library-sure": False})
    assert unsure["library-message"] == t("lib_sure_first")
    assert (engines / "KBlueLeaf--kohaku-v2.1").is_dir()

    deleted = api.call("/library_delete", **{"library-model": "KBlueLeaf--kohaku-v2.1", "library-sure": True})
    assert deleted["library-message"] == t("lib_deleted", path=engines / "KBlueLeaf--kohaku-v2.1")
    assert value_of(deleted["library-sure"]) is False
    assert not (engines / "KBlueLeaf--kohaku-v2.1").exists()
    assert t("lib_empty_plain", folder=engines) in api.call("/library_list")["library"]


def test_library_delete_refusal_is_shown(api: Api, engines: Path) -> None:
    assert api.call("/save_config")["action-message"].startswith(opening("save_ok"))
    assert api.call("/library_list")["library-model"]["value"] == "stabilityai--sd-turbo"
    shutil.rmtree(engines / "stabilityai--sd-turbo")  # gone since the list was shown
    out = api.call("/library_delete", **{"library-model": "stabilityai--sd-turbo", "library-sure": True})
    assert out["library-message"].startswith(opening("lib_refused")) and "does not exist" in out["library-message"]


def test_library_shows_links_out_of_the_engines_folder_and_never_loads_them(
    api: Api, engines: Path, victim: Path
) -> None:
    """Issue 16 item 9: a model's config.yaml, or a build's configs/<variant>.yaml, that is a link out of the
    engines folder is not listed as loadable and Load refuses it, as Load config refuses the same path."""
    linked = engines / "linked-config"
    linked.mkdir(parents=True)
    (linked / "config.yaml").symlink_to(victim / "config.yaml")
    built = engines / "linked-variant"
    (built / "configs").mkdir(parents=True)
    (built / "configs" / "v.yaml").symlink_to(victim / "config.yaml")
    record = {"fingerprint": "f", "engine_key": "k", "config": "configs/v.yaml", "built_at": "2026", "engines": []}
    (built / "build.json").write_text(json.dumps({"model": "a/b", "latest_variant": "v", "variants": {"v": record}}))
    listed = api.call("/library_list")
    assert "victim/model" not in listed["library"], listed["library"]
    assert t("lib_config_outside") in listed["library"]
    assert api.call("/library_variants", **{"library-model": "linked-variant"})["library-variant"]["choices"]
    loaded = api.call("/library_load", **{"library-model": "linked-variant", "library-variant": "v"})
    assert loaded["library-message"] == t("load_outside", root=engines.resolve()), loaded["library-message"]
    assert loaded.get("model") != "victim/model"


# --- hardening: the page touches nothing outside the server's engines folder (issue 10) ---------------------------
@pytest.fixture
def victim(app: RunningApp) -> Iterator[Path]:
    """A prepared model beside the app's engines folder (OUTSIDE it), which no request may read, overwrite or delete."""
    folder = app.engines.parent / "victim"
    write(folder / "config.yaml", model="victim/model", engines_dir=str(folder.parent))
    (folder / "build.json").write_text("{}", encoding="utf-8")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def attack_on(api: Api, endpoint: str, folder: Path) -> dict[str, str]:
    """What an attacker adds to a call: the engines folder to use, wherever an endpoint would take one."""
    return {"engines_dir": str(folder)} if "engines_dir" in api.parameter_names(endpoint) else {}


def test_no_request_lists_or_deletes_outside_the_engines_folder(api: Api, engines: Path, victim: Path) -> None:
    from gradio_client.exceptions import AppError

    parent = victim.parent
    listed = api.call("/library_list", **attack_on(api, "/library_list", parent))
    assert "victim" not in json.dumps(listed), "the library lists only the server's engines folder"
    for slug in ("victim", "../victim", str(victim)):
        try:
            out = api.call(
                "/library_delete",
                **{"library-model": slug, "library-sure": True},
                **attack_on(api, "/library_delete", parent),
            )
        except AppError:  # a value that is not among the listed models is refused by the dropdown itself
            continue
        assert not str(out["library-message"]).startswith(opening("lib_deleted")), out
    assert (victim / "config.yaml").is_file() and (victim / "build.json").is_file()


def test_library_load_reads_only_inside_the_engines_folder(api: Api, victim: Path) -> None:
    from gradio_client.exceptions import AppError

    for slug in ("victim", "../victim", str(victim)):
        try:
            out = api.call(
                "/library_load",
                **{"library-model": slug, "library-variant": "config.yaml"},
                **attack_on(api, "/library_load", victim.parent),
            )
        except AppError:
            continue
        assert out["model"] != "victim/model", out


def test_save_writes_only_inside_the_engines_folder(api: Api, engines: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    out = api.call("/save_config", model="victim/model", **attack_on(api, "/save_config", outside))
    assert out["action-message"].startswith(t("save_ok", path=engines / "victim--model" / "config.yaml"))
    assert not outside.exists()


def test_load_config_by_path_only_inside_the_engines_folder(api: Api, engines: Path, victim: Path) -> None:
    for typed in (str(victim / "config.yaml"), "../victim/config.yaml", "/etc/passwd"):
        out = api.call("/load_config", load_path=typed)
        assert out["action-message"] == t("load_outside", root=engines), (typed, out["action-message"])
        assert value_of(out.get("model")) != "victim/model"


def test_load_config_refuses_a_fifo_without_hanging(api: Api, app: RunningApp, engines: Path) -> None:
    fifo = engines / "fifo-model" / "config.yaml"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    try:
        job = api.submit("/load_config", load_path=str(fifo))
        out = api.named("/load_config", job.result(timeout=SUITE_TIMEOUT))
        assert out["action-message"].startswith(opening("load_failed"))
        assert "pipe" in out["action-message"]
        assert api.call("/preview")["summary"] == t("sum_ok")  # the server still answers
    finally:
        try:  # release a reader that would still wait on it
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


def test_uploads_over_a_megabyte_are_refused(api: Api, tmp_path: Path) -> None:
    from gradio_client import handle_file

    big = tmp_path / "big.yaml"
    big.write_text("model_id: stabilityai/sd-turbo\n" + "# padding padding padding padding\n" * 40_000)
    assert big.stat().st_size > 1024 * 1024
    try:
        out = api.call("/load_config_upload", load_upload=handle_file(str(big)))
    except Exception as refused:  # the upload itself is refused (413) before any handler reads it
        assert "413" in str(refused) or "large" in str(refused).lower() or "size" in str(refused).lower(), refused
    else:
        assert not out["action-message"].startswith(opening("load_ok")), out["action-message"]
    assert api.call("/preview")["summary"] == t("sum_ok")


def test_special_files_are_not_models(api: Api) -> None:
    out = api.call("/preview", model="/dev/zero")
    assert "sdprep-error" in out["problems-checkpoint"] and "/dev/zero" in out["problems-checkpoint"]


def test_a_model_cannot_be_deleted_while_it_builds(app: RunningApp, api: Api, engines: Path) -> None:
    assert started(api.call("/build", model="standin/slow-model", check=False))
    with held(app):
        # From a page of its own: this page's log still shows the first build's "[slow]" lines until the second
        # build's first line replaces them, and a wait for "[slow]" would end before the second build holds anything.
        builder = Api(app.url)
        job = builder.submit("/build", model="standin/slow-model", denoise_steps=2, check=False)  # a new UNet: slow
        builder.wait_for(job, "/build", lambda out: "[slow]" in out["build-log"])
        library = Api(app.url)
        assert library.call("/library_list")["library-model"]["value"] == "standin--slow-model"
        out = library.call("/library_delete", **{"library-model": "standin--slow-model", "library-sure": True})
        assert out["library-message"].startswith(opening("lib_refused")), out
        assert "in use" in out["library-message"]
        assert (engines / "standin--slow-model").is_dir()
    assert started(builder.named("/build", job.result(timeout=SUITE_TIMEOUT)))


def test_builds_over_the_page_bound_are_refused_while_the_page_still_answers(app: RunningApp, api: Api) -> None:
    """One page may have a build running and one waiting; a third is refused at once with the reason, and form
    changes and Cancel answer in milliseconds meanwhile."""
    first = api.submit("/build", model="standin/hang-model", check=False)
    api.wait_for(first, "/build", lambda out: "hanging" in out["build-log"])
    second = api.submit("/build", model="standin/slow-model", check=False)
    api.wait_for(second, "/build", lambda out: "position 2" in out["build-progress"])
    try:
        begun = time.monotonic()
        third = api.call("/build", model="KBlueLeaf/kohaku-v2.1", check=False)
        assert time.monotonic() - begun < budget(5)
        assert third["build-progress"] == REFUSED
        assert "already has 2 builds" in third["build-result"], third
        begun = time.monotonic()
        assert api.call("/preview", denoise_steps=2)["summary"] == t("sum_ok")
        assert time.monotonic() - begun < budget(2)
        # Cancel still answers, and stops the page's build (the last one it started).
        begun = time.monotonic()
        cancelled = api.call("/cancel")
        assert time.monotonic() - begun < budget(15)
        assert cancelled["build-progress"].startswith(t("out_cancelled")), cancelled
    finally:
        # The hanging build belongs to this page too: a page that follows it can cancel it.
        follower = Api(app.url)
        follow = follower.submit("/follow")
        follower.wait_for(follow, "/follow", lambda out: "hanging" in out["build-log"])
        assert follower.call("/cancel")["build-progress"].startswith(t("out_cancelled"))
        first.result(timeout=SUITE_TIMEOUT)


# --- language ---------------------------------------------------------------------------------------------------
def test_language_detection_and_russian_text(app: RunningApp) -> None:
    api = Api(app.url, lang="ru")
    assert api.call("/detect_language", lang="ru-RU") == {"lang": "ru", "language": "ru"}
    assert api.call("/detect_language", lang="de-DE") == {"lang": "en", "language": "en"}
    russian = api.call("/preview")
    assert russian["summary"] == t("sum_ok", "ru")
    assert t("d_lora_dict", "ru") in russian["derived"]
    bad = api.call("/preview", lora_json="{bad")
    assert t("sev_error", "ru") in bad["problems-lora"] and "JSON" in bad["problems-lora"]
    refused = api.call("/build", lora_json="{bad")
    assert refused["build-progress"] == t("out_refused", "ru")
    assert word(msg("build_invalid"), "ru") in refused["build-result"]
    assert api.call("/save_config", lora_json="{bad")["action-message"] == t("save_errors", "ru")
    assert api.call("/cancel")["build-progress"] == t("cancel_none", "ru")


# --- the process ------------------------------------------------------------------------------------------------
def test_the_ui_process_imports_no_torch_tensorrt_or_streamdiffusion(tmp_path: Path) -> None:
    # The stand-ins are importable here, so an import anywhere in the UI would succeed and be caught.
    code = (
        "import sys, gradio_prepare\n"
        "assert gradio_prepare.demo is not None\n"
        "heavy = {'torch', 'tensorrt', 'streamdiffusion'} & {name.split('.')[0] for name in sys.modules}\n"
        "assert not heavy, heavy\n"
        "import streamdiffusion  # proves the stand-in was importable\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STANDIN), str(ROOT)])}
    done = run_process([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr


class _FakeDemo:
    def __init__(self) -> None:
        self.launched: dict[str, Any] = {}

    def launch(self, **kwargs: object) -> None:
        self.launched = kwargs

    def block_thread(self) -> None:
        """launch() serves without blocking, prints the address, then waits here (until Ctrl-C)."""


def test_launch_warns_when_serving_all_interfaces_without_auth(capsys: pytest.CaptureFixture[str]) -> None:
    from sdprep.ui.app import launch

    demo = _FakeDemo()
    assert launch(demo, "0.0.0.0", 7861, None, open_browser=False) == 0  # type: ignore[arg-type]
    assert "warning: serving on all interfaces (0.0.0.0:7861) without a password" in capsys.readouterr().err
    assert demo.launched["server_name"] == "0.0.0.0" and demo.launched.get("auth") is None
    assert demo.launched["theme"] is not None and demo.launched["css"] and demo.launched["i18n"] is not None
    assert demo.launched["max_file_size"] == "1mb"  # uploads: a config is a few KB

    assert launch(demo, "0.0.0.0", 7861, "me:se:cret", open_browser=False) == 0  # type: ignore[arg-type]
    assert "warning" not in capsys.readouterr().err
    assert demo.launched["auth"] == ("me", "se:cret")

    assert launch(demo, "127.0.0.1", 7861, None, open_browser=False) == 0  # type: ignore[arg-type]
    assert "warning" not in capsys.readouterr().err

    assert launch(_FakeDemo(), "127.0.0.1", 7861, "no-colon", open_browser=False) == 2  # type: ignore[arg-type]
    assert "user:password" in capsys.readouterr().err


def test_auth_from_the_environment_protects_the_app(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    with running_app(tmp_path / "app", {"SDPREP_AUTH": "me:secret"}) as app:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(app.url + "gradio_api/info", timeout=SUITE_TIMEOUT)
        assert refused.value.code == 401
        api = Api(app.url, auth=("me", "secret"))
        assert "/preview" in api.endpoints
        assert "warning" not in app.log_text()


def test_progress_shows_the_queue_position_the_stage_and_elapsed_time() -> None:
    from sdprep.jobs.board import BuildJob
    from sdprep.jobs.progress import JobEvent, stage_message
    from sdprep.ui.views.jobs import progress_markdown

    job = BuildJob(params_from_values({}))
    assert progress_markdown(job, 2, "en", now=job.created + 4).startswith(
        "Waiting: 2 build(s) ahead in this server's queue (position 3). Elapsed 4.0 s."
    )
    assert "позиция 3" in progress_markdown(job, 2, "ru")
    job.add(JobEvent("stage", 0.5, stage_message("load_model"), "load_model"))
    job.add(JobEvent("stage", 2.0, stage_message("engine:unet"), "engine:unet"))
    text = progress_markdown(job, 0, "en", now=job.created + 3)
    assert "**Building the UNet engine** (since 2.0 s) · elapsed **3.0 s**" in text
    assert f"Stages: {word(stage_message('load_model'))} 1.5 s" in text
    job.add(JobEvent("waiting", 2.5, msg("gpu_waiting", gpu=0, what="another build", pid=1, since="now")))
    assert progress_markdown(job, 0, "en").startswith("Waiting: GPU 0 is busy")


def test_hot_reload_keeps_the_running_build(tmp_path: Path) -> None:
    """`python -m gradio gradio_prepare.py`: a change reloads the page's code; the JobBoard and its build live on."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "sdprep", project / "sdprep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "gradio_prepare.py", project / "gradio_prepare.py")
    command = [sys.executable, "-m", "gradio", "gradio_prepare.py", "--"]
    hold = tmp_path / "hold"
    env = {"STANDIN_SLOW_SECONDS": "1.5", "PYTHONPATH": str(project), "STANDIN_HOLD": str(hold)}
    with running_app(project, env, command=command) as app:
        api = Api(app.url)
        hold.touch()  # the build stays running until the reloaded page has seen it
        job = api.submit("/build", model="standin/slow-model", check=False)
        api.wait_for(job, "/build", lambda out: "[slow]" in out["build-log"])
        changed = project / "sdprep" / "ui" / "style.py"
        changed.write_text(changed.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
        # The reloaded code has run once the app's start-up line follows the reloader's note (a page opened before
        # that may meet Gradio halfway through swapping the page).
        wait_until(
            lambda: "Open http" in app.log_text().partition("Changes detected in")[2], "the reloaded code to have run"
        )
        assert "failed" not in app.log_text()
        reopened = Api(app.url)
        follow = reopened.submit("/follow")
        running = reopened.wait_for(follow, "/follow", lambda out: "[slow]" in out["build-log"])
        assert not running["build-result"]  # the same build, still running after the reload
        hold.unlink()
        reopened.wait_for(follow, "/follow", started)
