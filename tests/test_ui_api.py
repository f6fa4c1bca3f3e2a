"""The web UI through its API (gradio_client), against the real app with the stand-in StreamDiffusion.

Every endpoint the page uses has an api_name; these tests call them by field name, as the page would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdprep.config import load_params, make_config, render_config, write_config
from sdprep.params import ControlNetSlot, params_from_values
from tests.conftest import runtime_defaults
from tests.ui_helpers import ROOT, STANDIN, Api, RunningApp, running_app

SLOW_SECONDS = "0.8"  # per engine for "standin/slow-model": long enough to watch, short enough for CI


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("ui-api"), {"STANDIN_SLOW_SECONDS": SLOW_SECONDS}) as running:
        yield running


@pytest.fixture
def api(app: RunningApp) -> Api:
    return Api(app.url)


@pytest.fixture
def engines(tmp_path: Path) -> str:
    return str(tmp_path / "engines")


def test_every_page_event_is_a_named_endpoint(api: Api) -> None:
    expected = {
        "/preview",
        "/preview_on_load",
        "/save_config",
        "/load_config",
        "/load_config_upload",
        "/build",
        "/cancel",
        "/follow",
        "/probe_environment",
        "/reprobe_environment",
        "/cached_environment",
        "/library_list",
        "/library_variants",
        "/library_load",
        "/library_delete",
        "/set_language",
        "/detect_language",
    }
    assert expected <= set(api.endpoints)
    # Inputs are passed by field name: every BakedParams field (and the slots) is a named parameter.
    names = set(api.parameter_names("/preview"))
    assert {"model", "denoise_steps", "lora_json", "cn_count", "cn2_conditioning_channels", "engines_dir"} <= names


def test_preview_shows_derived_values_yaml_and_problems(api: Api, engines: str) -> None:
    out = api.call("/preview", denoise_steps=3, cfg_type="initialize", engines_dir=engines)
    assert "[22, 32, 45]" in out["o_derived"]
    assert "| UNet batch (trt_unet_batch_size) | 4 |" in out["o_derived"]
    assert "t_index_list: [22, 32, 45]" in out["o_yaml"]
    assert f"engine_dir: {engines}/stabilityai--sd-turbo" in out["o_yaml"]
    assert "stabilityai--sd-turbo/config.yaml" in out["output derived"]
    assert out["o_summary"].startswith("✔")

    bad = api.call("/preview", lora_json="{bad", engines_dir=engines)
    assert "1 error(s)" in bad["o_summary"]
    assert "sdprep-error" in bad["lora problems"] and "not valid JSON" in bad["lora problems"]
    assert bad["checkpoint problems"] == ""
    assert "cannot be written" in bad["o_yaml"]

    warned = api.call("/preview", model="standin/slow-model", engines_dir=engines)
    assert "warning(s); the build is allowed" in warned["o_summary"]
    assert "sdprep-warning" in warned["checkpoint problems"]

    too_big = api.call("/preview", denoise_steps=4, cfg_type="full", engines_dir=engines)
    assert "sdprep-error" in too_big["sampling problems"] and "UNet batch of 8" in too_big["sampling problems"]


def test_preview_hides_what_does_not_apply(api: Api, engines: str) -> None:
    lcm = api.call("/preview", model="KBlueLeaf/kohaku-v2.1", consistency_lora="lcm", engines_dir=engines)
    assert lcm["scheduler"]["visible"] is False
    assert "latent-consistency/lcm-lora-sdv1-5" in lcm["lora derived"]
    assert '"latent-consistency/lcm-lora-sdv1-5": 1.0' in lcm["lora derived"]
    none = api.call("/preview", consistency_lora="none", use_cached_attn=True, engines_dir=engines)
    assert none["scheduler"]["visible"] is True
    assert none["cache_maxframes"]["visible"] is True


def test_controlnet_slots_beyond_the_count_are_not_params(api: Api, engines: str) -> None:
    out = api.call(
        "/preview",
        use_controlnet=True,
        cn_count=2,
        cn0_model_id="first/controlnet",
        cn1_model_id="second/controlnet",
        cn1_conditioning_channels="4",
        cn2_model_id="third/controlnet",
        engines_dir=engines,
    )
    assert "first/controlnet" in out["o_yaml"] and "second/controlnet" in out["o_yaml"]
    assert "third/controlnet" not in out["o_yaml"]
    assert "conditioning_channels: 4" in out["o_yaml"]
    assert "conditioning_scale: 1.0" in out["o_yaml"]  # the runtime value, not a field
    bad = api.call("/preview", use_controlnet=True, cn_count=1, cn0_conditioning_channels="0", engines_dir=engines)
    assert "controlnets[0].conditioning_channels" in bad["controlnet problems"]


def test_save_config_writes_the_preview_and_refuses_errors(api: Api, engines: str) -> None:
    refused = api.call("/save_config", lora_json="{bad", engines_dir=engines)
    assert refused["o_actions"].startswith("Nothing was written")
    assert not Path(engines).exists()

    saved = api.call("/save_config", denoise_steps=2, engines_dir=engines)
    path = Path(engines) / "stabilityai--sd-turbo" / "config.yaml"
    assert str(path) in saved["o_actions"]
    params = params_from_values({"denoise_steps": 2, "engines_dir": engines})
    assert path.read_text(encoding="utf-8") == render_config(params, runtime_defaults())  # type: ignore[arg-type]


def test_load_config_fills_every_field(api: Api, tmp_path: Path) -> None:
    params = params_from_values(
        {
            "model": "KBlueLeaf/kohaku-v2.1",
            "denoise_steps": 3,
            "consistency_lora": "tcd",
            "cfg_type": "none",
            "width": 768,
            "height": 512,
            "lora_json": '{"someone/style-lora": 0.6}',
            "use_controlnet": True,
            "controlnets": [
                ControlNetSlot("cn/one", "depth", None, True),
                ControlNetSlot("cn/two", "my_custom", 4, False),
            ],
            "use_ipadapter": True,
            "ipadapter_model_path": "h94/IP-Adapter/models/ip-adapter-plus_sd15.bin",
            "ipadapter_tokens": 16,
            "ipadapter_type": "plus",
            "engines_dir": str(tmp_path / "engines"),
        }
    )
    path = tmp_path / "config.yaml"
    write_config(path, render_config(params, runtime_defaults()))  # type: ignore[arg-type]
    out = api.call("/load_config", load_path=str(path))
    assert out["o_actions"].startswith("Loaded")
    expected = {
        "model": "KBlueLeaf/kohaku-v2.1",
        "denoise_steps": 3,
        "consistency_lora": "tcd",
        "cfg_type": "none",
        "width": 768,
        "lora_json": '{"someone/style-lora": 0.6}',
        "use_controlnet": True,
        "cn_count": 2,
        "cn0_model_id": "cn/one",
        "cn0_conditioning_channels": "",
        "cn1_preprocessor": "my_custom",
        "cn1_conditioning_channels": "4",
        "cn1_enabled": False,
        "use_ipadapter": True,
        "ipadapter_tokens": 16,
        "ipadapter_type": "plus",
        "engines_dir": str(tmp_path / "engines"),
    }
    assert {name: out[name] for name in expected} == expected

    # The loaded form gives back the same config (the round trip the inference script relies on).
    again = api.call("/preview", **{k: v for k, v in out.items() if k in api.parameter_names("/preview")})
    assert again["o_yaml"] == path.read_text(encoding="utf-8").rstrip("\n")  # gr.Code drops the last newline

    missing = api.call("/load_config", load_path=str(tmp_path / "nope.yaml"))
    assert missing["o_actions"].startswith("Could not load the config")
    assert api.call("/load_config", load_path="")["o_actions"].startswith("Give the path")


def test_load_config_from_an_upload(api: Api, tmp_path: Path) -> None:
    from gradio_client import handle_file

    params = params_from_values({"denoise_steps": 2, "width": 640, "engines_dir": str(tmp_path)})
    path = tmp_path / "uploaded.yaml"
    write_config(path, render_config(params, runtime_defaults()))  # type: ignore[arg-type]
    out = api.call("/load_config_upload", load_upload=handle_file(str(path)))
    assert out["o_actions"].startswith("Loaded")
    assert out["denoise_steps"] == 2 and out["width"] == 640


def test_build_then_up_to_date_then_forced(api: Api, engines: str) -> None:
    built = api.call("/build", engines_dir=engines)
    assert built["o_result"].startswith("#### ✔ Built"), built
    config = Path(engines) / "stabilityai--sd-turbo" / "config.yaml"
    assert f"Config: `{config}`" in built["o_result"]
    assert "UNet" in built["o_result"] and "· built" in built["o_result"]
    assert "Stage durations" in built["o_result"]
    assert "==> Checking the build environment" in built["o_log"]
    assert config.exists()

    again = api.call("/build", engines_dir=engines)
    assert again["o_result"].startswith("#### ✔ Up to date"), again
    assert "· reused" in again["o_result"]

    forced = api.call("/build", engines_dir=engines, force=True)
    assert forced["o_result"].startswith("#### ✔ Built"), forced


def test_build_with_errors_starts_nothing(api: Api, engines: str) -> None:
    out = api.call("/build", lora_json="[1, 2]", engines_dir=engines)
    assert "Not started" in out["o_result"] and "lora_json" in out["o_result"]
    assert not Path(engines).exists()


def test_build_failure_shows_reason_log_tail_and_log_file(api: Api, engines: str) -> None:
    out = api.call("/build", model="standin/exception-model", engines_dir=engines)
    assert out["o_result"].startswith("#### ✘ Build failed"), out
    assert "illegal memory access" in out["o_result"]
    assert "Last lines of the log" in out["o_result"]
    assert "Full log: `" in out["o_result"] and ".log`" in out["o_result"]


def test_build_streams_the_log_while_it_runs(api: Api, engines: str) -> None:
    job = api.submit("/build", model="standin/slow-model", engines_dir=engines)
    running = api.wait_for(job, "/build", lambda out: "[slow]" in out["o_log"] and not out["o_result"])
    assert "⚙" in running["o_progress"] and "elapsed" in running["o_progress"]
    done = api.named("/build", job.result(timeout=60))
    assert done["o_result"].startswith("#### ✔ Built")
    assert done["o_log"].count("[slow]") > running["o_log"].count("[slow]")


def test_cancel_stops_a_hanging_build(api: Api, engines: str) -> None:
    job = api.submit("/build", model="standin/hang-model", engines_dir=engines)
    api.wait_for(job, "/build", lambda out: "hanging" in out["o_log"], timeout=30)
    started = time.monotonic()
    out = api.call("/cancel")
    assert time.monotonic() - started < 15
    assert out["o_result"].startswith("#### ■ Cancelled"), out
    assert "Cancelled" in out["o_progress"]
    assert api.named("/build", job.result(timeout=30))["o_result"].startswith("#### ■ Cancelled")
    # Nothing of this page runs any more: a second Cancel says so.
    assert "Cancelled" in api.call("/cancel")["o_progress"]


def test_cancel_without_a_build(app: RunningApp) -> None:
    assert Api(app.url).call("/cancel")["o_progress"] == "No build of this page is running."


def test_a_reopened_page_follows_the_running_build(app: RunningApp, engines: str) -> None:
    first = Api(app.url)
    job = first.submit("/build", model="standin/slow-model", engines_dir=engines)
    first.wait_for(job, "/build", lambda out: "==> Loading the model" in out["o_log"])
    reopened = Api(app.url)  # a new session, as after closing and reopening the tab
    follow = reopened.submit("/follow")
    running = reopened.wait_for(follow, "/follow", lambda out: "Loading the model" in out["o_log"])
    assert not running["o_result"]
    final = reopened.named("/follow", follow.result(timeout=60))
    assert final["o_result"].startswith("#### ✔ Built")
    job.result(timeout=60)


def test_a_second_build_waits_its_turn(app: RunningApp, tmp_path: Path) -> None:
    from gradio_client.utils import Status

    first, second = Api(app.url), Api(app.url)
    job_a = first.submit("/build", model="standin/slow-model", engines_dir=str(tmp_path / "a"))
    first.wait_for(job_a, "/build", lambda out: "[slow]" in out["o_log"])
    job_b = second.submit("/build", model="standin/slow-model", engines_dir=str(tmp_path / "b"))
    deadline = time.monotonic() + 10
    while job_b.status().code != Status.IN_QUEUE and time.monotonic() < deadline:
        time.sleep(0.05)
    status = job_b.status()
    assert status.code == Status.IN_QUEUE and status.rank is not None  # Gradio shows "queue: n/m"
    assert first.named("/build", job_a.result(timeout=60))["o_result"].startswith("#### ✔ Built")
    assert second.named("/build", job_b.result(timeout=60))["o_result"].startswith("#### ✔ Built")


def test_environment_probe(api: Api) -> None:
    out = api.call("/probe_environment")["o_environment"]
    assert "NVIDIA GeForce RTX 4090" in out
    assert "| TensorRT | 10.16.1.11 |" in out
    assert "| PyTorch | 2.5.1+cu124 |" in out and "| CUDA (torch) | 12.4 |" in out
    assert "| VRAM | 24.0 GB |" in out
    assert "StreamDiffusion location" in out and "standin" in out
    assert "Build engines without loading for inference (compile_engines_only) | ✔ yes" in out
    assert "Batch bounds from the config (UNet batch above 4) | ✘ no" in out
    assert "Everything needed to build is there." in out
    assert "NVIDIA GeForce RTX 4090" in api.call("/cached_environment")["o_environment"]
    assert "Checked " in api.call("/reprobe_environment")["o_environment"]


def test_environment_shows_what_is_missing(tmp_path: Path) -> None:
    with running_app(tmp_path / "app", {"STANDIN_NO_TRT": "1", "STANDIN_CUDA": "0"}) as app:
        api = Api(app.url)
        assert "Not checked yet" in api.call("/cached_environment")["o_environment"]
        out = api.call("/probe_environment")["o_environment"]
        assert "Missing to build" in out
        assert "TensorRT cannot be imported" in out and "pip install tensorrt" in out
        assert "No CUDA GPU is visible" in out


def test_environment_probe_error_is_shown_as_a_sentence(tmp_path: Path) -> None:
    with running_app(tmp_path / "app", {"SDPREP_PYTHON": str(tmp_path / "no-such-python")}) as app:
        out = Api(app.url).call("/probe_environment")["o_environment"]
        assert out.startswith("⊘ The environment check failed: Cannot start the build Python")
        assert "Traceback" not in out


def test_library_list_load_and_delete(api: Api, engines: str) -> None:
    empty = api.call("/library_list", engines_dir=engines)
    assert "No prepared models" in empty["o_library"]
    assert api.call("/build", model="KBlueLeaf/kohaku-v2.1", denoise_steps=2, engines_dir=engines)[
        "o_result"
    ].startswith("#### ✔ Built")

    listed = api.call("/library_list", engines_dir=engines)
    assert "KBlueLeaf--kohaku-v2.1" in listed["o_library"]
    assert "NVIDIA GeForce RTX 4090 / 10.16.1.11" in listed["o_library"]
    assert "ready" in listed["o_library"] and "2step-self-512x512" in listed["o_library"]
    assert listed["lib_model"]["value"] == "KBlueLeaf--kohaku-v2.1"
    variant = listed["lib_variant"]["value"]
    assert variant == "config.yaml"
    choices = [value for _, value in listed["lib_variant"]["choices"]]
    assert any(choice.startswith("2step-self-512x512-") for choice in choices)
    assert api.call("/library_variants", engines_dir=engines, lib_model="KBlueLeaf--kohaku-v2.1")["lib_variant"][
        "choices"
    ]

    loaded = api.call("/library_load", engines_dir=engines, lib_model="KBlueLeaf--kohaku-v2.1", lib_variant=choices[-1])
    assert loaded["model"] == "KBlueLeaf/kohaku-v2.1" and loaded["denoise_steps"] == 2
    assert loaded["o_lib_message"].startswith("Loaded")

    unsure = api.call("/library_delete", engines_dir=engines, lib_model="KBlueLeaf--kohaku-v2.1", lib_sure=False)
    assert unsure["o_lib_message"].startswith("Tick")
    assert (Path(engines) / "KBlueLeaf--kohaku-v2.1").is_dir()

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError):  # only a listed model can be chosen: "../elsewhere" never reaches delete_model
        api.call("/library_delete", engines_dir=engines, lib_model="../elsewhere", lib_sure=True)

    deleted = api.call("/library_delete", engines_dir=engines, lib_model="KBlueLeaf--kohaku-v2.1", lib_sure=True)
    assert deleted["o_lib_message"].startswith("Deleted")
    assert not (Path(engines) / "KBlueLeaf--kohaku-v2.1").exists()
    assert "No prepared models" in api.call("/library_list", engines_dir=engines)["o_library"]


def test_library_delete_refusal_is_shown(api: Api, engines: str, tmp_path: Path) -> None:
    saved = api.call("/save_config", engines_dir=engines)
    assert saved["o_actions"].startswith("Saved")
    assert api.call("/library_list", engines_dir=engines)["lib_model"]["value"] == "stabilityai--sd-turbo"
    shutil.rmtree(Path(engines) / "stabilityai--sd-turbo")  # gone since the list was shown
    out = api.call("/library_delete", engines_dir=engines, lib_model="stabilityai--sd-turbo", lib_sure=True)
    assert out["o_lib_message"].startswith("Not deleted:") and "does not exist" in out["o_lib_message"]


def test_language_switch_and_detection(api: Api, engines: str) -> None:
    assert api.call("/detect_language", locale="ru-RU")["language"] == "ru"
    assert api.call("/detect_language", locale="de-DE")["language"] == "en"
    labels = api.call("/set_language", language="ru")
    assert labels["denoise_steps"]["label"] == "Шаги шумоподавления (denoise_steps)"
    assert labels["cn1_enabled"]["label"] == "Включён (controlnets[1].enabled)"
    assert labels["force"]["label"] == "Пересобрать заново (force)" and labels["o_log"]["label"] == "Журнал сборки"
    english = api.call("/set_language", language="en")
    assert english["denoise_steps"]["label"] == "Denoise steps (denoise_steps)"
    russian = api.call("/preview", language="ru", engines_dir=engines)
    assert russian["o_summary"].startswith("✔ Проблем нет")
    assert "Итоговый lora_dict" in russian["o_derived"]


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
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_make_config_matches_the_written_yaml(api: Api, engines: str) -> None:
    """The YAML shown is what a build writes: same dict, same text."""
    preview = api.call("/preview", model="KBlueLeaf/kohaku-v2.1", consistency_lora="lcm", engines_dir=engines)
    built = api.call("/build", model="KBlueLeaf/kohaku-v2.1", consistency_lora="lcm", engines_dir=engines)
    path = Path(engines) / "KBlueLeaf--kohaku-v2.1" / "config.yaml"
    assert built["o_result"].startswith("#### ✔ Built")
    assert path.read_text(encoding="utf-8").rstrip("\n") == preview["o_yaml"]
    params, _ = load_params(path)
    assert make_config(params, runtime_defaults())["lora_dict"] == {"latent-consistency/lcm-lora-sdv1-5": 1.0}  # type: ignore[arg-type]


# --- launching -----------------------------------------------------------------------------------------------
class _FakeDemo:
    def __init__(self) -> None:
        self.launched: dict[str, object] = {}

    def launch(self, **kwargs: object) -> None:
        self.launched = kwargs


def test_launch_warns_when_serving_all_interfaces_without_auth(capsys: pytest.CaptureFixture[str]) -> None:
    from sdprep.ui.app import launch

    demo = _FakeDemo()
    assert launch(demo, "0.0.0.0", 7861, None, open_browser=False) == 0  # type: ignore[arg-type]
    assert "warning: serving on all interfaces (0.0.0.0:7861) without a password" in capsys.readouterr().err
    assert demo.launched["server_name"] == "0.0.0.0" and demo.launched["auth"] is None
    assert demo.launched["theme"] is not None and demo.launched["css"] and demo.launched["i18n"] is not None

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

    from gradio_client import Client

    with running_app(tmp_path / "app", {"SDPREP_AUTH": "me:secret"}) as app:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(app.url + "gradio_api/info", timeout=10)
        assert refused.value.code == 401
        client = Client(app.url, auth=("me", "secret"), verbose=False)
        assert "/preview" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert "warning" not in app.log_text()


# --- what the page says (pure functions) -----------------------------------------------------------------------
def test_progress_shows_the_queue_position_the_stage_and_elapsed_time() -> None:
    from sdprep.jobs.board import BuildJob
    from sdprep.jobs.build import BuildEvent
    from sdprep.ui.present import progress_markdown

    job = BuildJob(params_from_values({}))
    assert progress_markdown(job, 2, "en", now=job.created + 4).startswith(
        "Waiting: 2 build(s) ahead in this server's queue (position 3). Elapsed 4.0 s."
    )
    assert "позиция 3" in progress_markdown(job, 2, "ru")
    job.add(BuildEvent("stage", 0.5, "Loading the model", "load"))
    job.add(BuildEvent("stage", 2.0, "Building the UNet engine", "unet"))
    text = progress_markdown(job, 0, "en", now=job.created + 3)
    assert "**Building the UNet engine** (since 2.0 s) · elapsed **3.0 s**" in text
    assert "Stages: Loading the model 1.5 s" in text
    job.add(BuildEvent("waiting", 2.5, "GPU 0 is busy: another build. Waiting for it to finish."))
    assert progress_markdown(job, 0, "en").startswith("Waiting: GPU 0 is busy")


def test_every_text_has_both_languages_and_the_same_placeholders() -> None:
    import re

    from sdprep.ui.text import TEXT

    for key, (english, russian) in TEXT.items():
        assert english.strip() and russian.strip(), key
        assert set(re.findall(r"\{(\w+)\}", english)) == set(re.findall(r"\{(\w+)\}", russian)), key


def test_load_config_notes_what_the_form_cannot_show(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "hand-written.yaml"
    path.write_text(
        "model_id: stabilityai/sd-turbo\nwidth: 2048\ncfg_type: sometimes\nt_index_list: [10, 20]\n", encoding="utf-8"
    )
    out = api.call("/load_config", load_path=str(path))
    message = out["o_actions"]
    assert message.startswith("Loaded")
    assert "width 2048 is outside the form's range; the form shows 1024." in message
    assert "cfg_type sometimes is not one of the form's choices" in message
    assert "t_index_list [10, 20] has 2 step(s)" in message
    assert out["width"] == 1024 and out["denoise_steps"] == 2


def test_hot_reload_keeps_the_running_build(tmp_path: Path) -> None:
    """`python -m gradio gradio_prepare.py`: a change reloads the page's code; the JobBoard and its build live on."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "sdprep", project / "sdprep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "gradio_prepare.py", project / "gradio_prepare.py")
    command = [sys.executable, "-m", "gradio", "gradio_prepare.py", "--"]
    env = {"STANDIN_SLOW_SECONDS": "1.5", "PYTHONPATH": str(project)}
    with running_app(project, env, command=command) as app:
        api = Api(app.url)
        job = api.submit("/build", model="standin/slow-model", engines_dir=str(tmp_path / "engines"))
        api.wait_for(job, "/build", lambda out: "[slow]" in out["o_log"])
        changed = project / "sdprep" / "ui" / "text.py"
        changed.write_text(changed.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
        deadline = time.monotonic() + 20
        while "Changes detected in" not in app.log_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Changes detected in" in app.log_text() and "failed" not in app.log_text()
        reopened = Api(app.url)
        follow = reopened.submit("/follow")
        running = reopened.wait_for(follow, "/follow", lambda out: "[slow]" in out["o_log"], timeout=20)
        assert not running["o_result"]  # the same build, still running after the reload
        assert reopened.named("/follow", follow.result(timeout=60))["o_result"].startswith("#### ✔ Built")


def test_build_then_check_shows_speed_and_the_output_frame(api: Api, engines: str) -> None:
    out = api.call("/build", engines_dir=engines, check=True)
    assert out["o_result"].startswith("#### ✔ Built"), out
    assert "Check passed" in out["chk_heading"] and "fps on NVIDIA GeForce RTX 4090" in out["chk_heading"], out
    image = out["o_check_image"]  # an update: shown, with the frame copied into Gradio's file cache
    assert image["visible"] is True and Path(image["value"]).name == "check.png"
    assert (Path(engines) / "stabilityai--sd-turbo" / "check.png").is_file()
    listed = api.call("/library_list", engines_dir=engines)
    assert "fps on NVIDIA GeForce RTX 4090" in json.dumps(listed)


def test_build_without_check_shows_no_check(api: Api, engines: str) -> None:
    out = api.call("/build", engines_dir=engines, check=False)
    assert out["o_result"].startswith("#### ✔ Built") and out["chk_heading"] == ""
    assert not (Path(engines) / "stabilityai--sd-turbo" / "check.png").exists()


def test_the_build_result_shows_while_its_check_still_runs(api: Api, engines: str) -> None:
    job = api.submit("/build", model="standin/slowframes-model", engines_dir=engines, check=True)
    during = api.wait_for(job, "/build", lambda out: out["o_result"].startswith("#### ✔ Built"), timeout=30)
    assert during["chk_heading"] == "", "the check has not finished yet"
    done = api.named("/build", job.result(timeout=60))
    assert "Check passed" in done["chk_heading"]
