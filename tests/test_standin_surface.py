"""The stand-in torch/tensorrt/streamdiffusion (tests/standin) must match the real surface.

Other tests trust the stand-ins to behave like the forkni fork, so this file pins
them to the reference data in tests/data (wrapper signature,
config keys; see its README for where it comes from) and to the verified engine paths of docs/streamdiffusion-facts.md §1.4. Everything runs in
a child Python with PYTHONPATH=tests/standin, so the stand-in ``torch`` never
meets a real one in this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from testkit.processes import run as run_process
from testkit.processes import spawn
from testkit.timing import SUITE_TIMEOUT, wait_until

STANDIN = Path(__file__).resolve().parent / "standin"

# docs/streamdiffusion-facts.md §1.4 verified example: stabilityai/sd-turbo, 512x512, config defaults, TRT 10.16.1.11, cc 8.9.
CANONICAL_UNET_KEY = (
    "stabilityai/sd-turbo--tiny_vae-True--min_batch-1--max_batch-4--use_cached_attn-False--fi-True"
    "--sbatch0--mode-img2img--trt10.16.1.11--cc89--res-512x512"
)
UNET_ENGINE = "engines/stabilityai/sd-turbo--he8c16e6dbae8--res-512x512/unet.engine"
VAE_DIR = (
    "engines/stabilityai/sd-turbo--tiny_vae-True--min_batch-1--max_batch-1--optlvl3--mode-img2img"
    "--trt10.16.1.11--cc89--res-512x512"
)
CNET_ENGINE = "engines/controlnet_lllyasviel_control_v11p_sd15_canny--min_batch-1--max_batch-4--res-512x512/cnet.engine"
SAFETY_ENGINE = (
    "engines/Freepik/nsfw_image_detector--tiny_vae-True--min_batch-1--max_batch-1--mode-img2img"
    "--trt10.16.1.11--cc89/safety_checker.engine"
)


REFERENCE = Path(__file__).resolve().parent / "data"


def _load_reference(name: str) -> Any:
    return json.loads((REFERENCE / name).read_text(encoding="utf-8"))


def run_child(
    code: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = SUITE_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    # A clean machine description: no STANDIN_* leaking in from the outer environment.
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    child_env["PYTHONPATH"] = str(STANDIN)
    child_env.update(env or {})
    return run_process(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=child_env, input=stdin, timeout=timeout
    )


def child_json(code: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    proc = run_child(code, cwd, env, stdin)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def engine_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.engine")}


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith((".onnx", ".tmp"))]


# --------------------------------------------------------------------------- signature


def test_wrapper_signature_matches_forkni(tmp_path: Path) -> None:
    spec = _load_reference("wrapper_signature_forkni.json")
    result = child_json(
        """
        import inspect, json, pathlib, sys, typing
        import torch
        from streamdiffusion import StreamDiffusionWrapper

        spec = json.load(sys.stdin)
        names = {n: getattr(typing, n) for n in ("Any", "Dict", "List", "Literal", "Optional", "Union")}
        ns = {"torch": torch, "Path": pathlib.Path, **names}
        params = list(inspect.signature(StreamDiffusionWrapper.__init__).parameters.values())[1:]
        problems = []
        for param, want in zip(params, spec):
            if want["default"] is None:
                if param.default is not inspect.Parameter.empty:
                    problems.append(f"{param.name}: should have no default")
            else:
                value = eval(want["default"], ns)
                if param.default is inspect.Parameter.empty:
                    problems.append(f"{param.name}: missing default {want['default']}")
                elif type(param.default) is not type(value) or param.default != value:
                    problems.append(f"{param.name}: default {param.default!r} != {want['default']}")
            if param.annotation != eval(want["annotation"], ns):
                problems.append(f"{param.name}: annotation {param.annotation!r} != {want['annotation']}")
        kinds = {str(p.kind) for p in params}
        print(json.dumps({"names": [p.name for p in params], "problems": problems, "kinds": sorted(kinds)}))
        """,
        tmp_path,
        stdin=json.dumps(spec),
    )
    assert result["names"] == [p["name"] for p in spec]
    assert result["problems"] == []
    assert result["kinds"] == ["POSITIONAL_OR_KEYWORD"]


# --------------------------------------------------------------------------- config loader

EXTRACT = """
    import json, sys
    from streamdiffusion.config import _extract_prepare_params, _extract_wrapper_params
    from streamdiffusion.wrapper import StreamDiffusionWrapper
    import inspect

    configs = json.load(sys.stdin)
    out = {name: _extract_wrapper_params(cfg) for name, cfg in configs.items()}
    out["prepare"] = _extract_prepare_params(configs["marked"])
    out["signature"] = list(inspect.signature(StreamDiffusionWrapper.__init__).parameters)[1:]
    print(json.dumps(out, default=repr))
"""

HOOK_KEYS = ("image_preprocessing", "image_postprocessing", "latent_preprocessing", "latent_postprocessing")
LIST_KEYS = ("controlnets", "ipadapters")


def test_extract_wrapper_params_reads_exactly_the_listed_keys(tmp_path: Path) -> None:
    keys = _load_reference("config_keys_forkni.json")
    top = keys["top_level_keys"]
    assert "min_batch_size" not in top and "max_batch_size" not in top
    assert {"min_batch_size", "max_batch_size"} <= set(keys["wrapper_params_not_settable_via_config"])

    simple = {k: v for k, v in top.items() if v["feeds_wrapper_param"] and " + " not in v["feeds_wrapper_param"]}
    marked: dict[str, Any] = {}
    for key in simple:
        if key == "dtype":
            marked[key] = "float32"
        elif key in HOOK_KEYS:
            marked[key] = {"enabled": True, "processors": [{"type": f"p-{key}"}]}
        else:
            marked[key] = f"marker:{key}"
    for key in ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "delta"):
        marked[key] = f"marker:{key}"
    configs = {
        "marked": marked,
        "empty": {},
        "batch": {"model_id": "x/y", "min_batch_size": 2, "max_batch_size": 8},
    }
    out = child_json(EXTRACT, tmp_path, stdin=json.dumps(configs))

    # Every listed key reaches its wrapper parameter unchanged (or converted as documented).
    for key, info in simple.items():
        param = info["feeds_wrapper_param"]
        got = out["marked"].get(param)
        if key == "dtype":
            assert got == "torch.float32"
        elif key in HOOK_KEYS:
            assert got == {"enabled": True, "processors": [{"type": f"p-{key}"}], "hook_type": key}
        else:
            assert got == f"marker:{key}", key
    expected_params = {v["feeds_wrapper_param"] for v in simple.values()}
    assert set(out["marked"]) == expected_params
    assert set(out["marked"]) <= set(out["signature"])
    # Prepare-only keys never reach the wrapper but do reach prepare().
    for key in ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "delta"):
        assert out["prepare"][key] == f"marker:{key}"

    # Absent keys: the documented defaults; None defaults are dropped so the wrapper default applies.
    for key, info in simple.items():
        param, default = info["feeds_wrapper_param"], info["default_value"]
        if key == "dtype":
            assert out["empty"][param] == "torch.float16"
        elif default is None:
            assert param not in out["empty"], param
        else:
            assert out["empty"][param] == default, param
    assert out["empty"]["use_feature_injection"] is True
    assert out["empty"]["vae_builder_optimization_level"] == 3

    # The forkni loader ignores min/max batch sizes in a config.
    assert "min_batch_size" not in out["batch"]
    assert "max_batch_size" not in out["batch"]


def test_list_routes_for_controlnet_and_ipadapter(tmp_path: Path) -> None:
    keys = _load_reference("config_keys_forkni.json")
    ip_item = {
        "ipadapter_model_path": "h94/IP-Adapter/models/ip-adapter-plus_sd15.safetensors",
        "image_encoder_path": "h94/IP-Adapter/models/image_encoder",
        "type": "plus",
        "num_image_tokens": 16,
        "style_image_key": "main",
    }
    configs = {
        "ipadapters": {"model_id": "x/y", "ipadapters": [ip_item]},
        "raw": {"model_id": "x/y", "use_ipadapter": True, "ipadapter_config": [ip_item]},
        "controlnets": {
            "model_id": "x/y",
            "builder_optimization_level": 4,
            "controlnets": [{"model_id": "lllyasviel/control_v11p_sd15_canny", "preprocessor": "canny"}],
        },
        "marked": {},
    }
    out = child_json(EXTRACT, tmp_path, stdin=json.dumps(configs))

    routed = out["ipadapters"]
    assert routed["use_ipadapter"] is True
    (item,) = routed["ipadapter_config"]
    assert "num_image_tokens" not in item and "style_image_key" not in item
    wanted = {k for k in keys["ipadapters_item_keys"] if not k.startswith("(")}
    assert set(item) == wanted
    assert out["raw"]["use_ipadapter"] is True
    assert out["raw"]["ipadapter_config"] == [ip_item]  # passed through untouched

    cn = out["controlnets"]
    assert cn["use_controlnet"] is True
    (cn_item,) = cn["controlnet_config"]
    wanted_cn = {k for k in keys["controlnets_item_keys"] if not k.startswith("(not copied)")}
    wanted_cn = {k.replace("(added) ", "") for k in wanted_cn}
    assert set(cn_item) == wanted_cn
    assert cn_item["preprocessor_params"] == {"builder_optimization_level": 4}


def test_validate_config_rules(tmp_path: Path) -> None:
    out = child_json(
        """
        import json
        from streamdiffusion.config import _validate_config
        cases = {
            "no_model": {},
            "cn_not_list": {"model_id": "a/b", "controlnets": {}},
            "cn_no_id": {"model_id": "a/b", "controlnets": [{"preprocessor": "canny"}]},
            "cn_channels": {"model_id": "a/b", "controlnets": [{"model_id": "c/d", "conditioning_channels": 0}]},
            "ip_no_encoder": {"model_id": "a/b", "ipadapters": [{"ipadapter_model_path": "p"}]},
            "ok": {"model_id": "a/b", "controlnets": [{"model_id": "c/d", "conditioning_channels": 3}]},
        }
        result = {}
        for name, cfg in cases.items():
            try:
                _validate_config(cfg)
                result[name] = "ok"
            except ValueError as exc:
                result[name] = str(exc)
        print(json.dumps(result))
        """,
        tmp_path,
    )
    assert "model_id" in out["no_model"]
    assert "must be a list" in out["cn_not_list"]
    assert "missing required 'model_id'" in out["cn_no_id"]
    assert "positive integer" in out["cn_channels"]
    assert "image_encoder_path" in out["ip_no_encoder"]
    assert out["ok"] == "ok"


# --------------------------------------------------------------------------- engine naming / building

BUILD = """
    import json, sys
    from streamdiffusion import create_wrapper_from_config
    create_wrapper_from_config(json.load(sys.stdin))
"""


def test_verified_hash_is_sha1_of_canonical_key() -> None:
    assert hashlib.sha1(CANONICAL_UNET_KEY.encode()).hexdigest()[:12] == "e8c16e6dbae8"


def test_compile_only_default_config_writes_verified_paths(tmp_path: Path) -> None:
    config = {"model_id": "stabilityai/sd-turbo", "compile_engines_only": True}
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    assert engine_files(tmp_path) == {UNET_ENGINE, f"{VAE_DIR}/vae_encoder.engine", f"{VAE_DIR}/vae_decoder.engine"}
    assert leftovers(tmp_path) == []
    unet = json.loads((tmp_path / UNET_ENGINE).read_text())
    assert unet["key"] == CANONICAL_UNET_KEY
    assert unet["batch"] == {"min": 1, "opt": 4, "max": 4}
    assert "Missing TensorRT engines, building them..." in proc.stderr

    # A second build finds every engine and rewrites none of them.
    before = {p: (tmp_path / p).read_bytes() for p in engine_files(tmp_path)}
    again = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert again.returncode == 0, again.stderr
    assert {p: (tmp_path / p).read_bytes() for p in engine_files(tmp_path)} == before
    assert "engine_path already exists, skipping compile" in again.stderr


def test_controlnet_and_safety_checker_paths(tmp_path: Path) -> None:
    config = {
        "model_id": "stabilityai/sd-turbo",
        "compile_engines_only": True,
        "use_safety_checker": True,
        "controlnets": [{"model_id": "lllyasviel/control_v11p_sd15_canny"}],
    }
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    files = engine_files(tmp_path)
    assert CNET_ENGINE in files and SAFETY_ENGINE in files
    # ControlNet-capable UNet: a different hash, same VAE folder.
    (unet,) = [f for f in files if f.endswith("unet.engine")]
    assert unet != UNET_ENGINE
    key = json.loads((tmp_path / unet).read_text())["key"]
    assert "--fi-True--controlnet--sbatch0" in key
    assert json.loads((tmp_path / CNET_ENGINE).read_text())["batch"] == {"min": 4, "opt": 4, "max": 4}


def test_ipadapter_tokens_reach_the_key_only_through_raw_config(tmp_path: Path) -> None:
    item = {"ipadapter_model_path": "a/b/c.bin", "image_encoder_path": "a/b/enc", "type": "faceid"}
    routed = {
        "model_id": "stabilityai/sd-turbo",
        "compile_engines_only": True,
        "ipadapters": [{**item, "num_image_tokens": 16}],
    }
    raw = {
        "model_id": "stabilityai/sd-turbo",
        "compile_engines_only": True,
        "use_ipadapter": True,
        "ipadapter_config": [{**item, "num_image_tokens": 16}],
    }
    keys = {}
    for name, config in (("routed", routed), ("raw", raw)):
        where = tmp_path / name
        where.mkdir()
        proc = run_child(BUILD, where, stdin=json.dumps(config))
        assert proc.returncode == 0, proc.stderr
        (unet,) = [f for f in engine_files(where) if f.endswith("unet.engine")]
        keys[name] = json.loads((where / unet).read_text())["key"]
        assert any("--fid--tokens" in f for f in engine_files(where) if f.endswith("vae_encoder.engine"))
    assert "--fid--tokens4--" in keys["routed"]
    assert "--fid--tokens16--" in keys["raw"]


def test_batch_outside_profile_fails_without_unet_engine(tmp_path: Path) -> None:
    config = {
        "model_id": "stabilityai/sd-turbo",
        "compile_engines_only": True,
        "cfg_type": "full",
        "t_index_list": [10, 20, 30],
    }
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode != 0
    assert "Acceleration has failed: UNet batch 6 outside engine profile [1, 4]" in proc.stderr
    assert not any(f.endswith("unet.engine") for f in engine_files(tmp_path))
    assert leftovers(tmp_path) == []


def test_missing_engines_without_build_permission(tmp_path: Path) -> None:
    config = {"model_id": "stabilityai/sd-turbo", "build_engines_if_missing": False}
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode != 0
    assert "build_engines_if_missing=False" in proc.stderr
    assert f"UNet engine: {UNET_ENGINE}" in proc.stderr
    assert engine_files(tmp_path) == set()


def test_load_after_build_gives_a_working_wrapper(tmp_path: Path) -> None:
    out = child_json(
        """
        import json
        from PIL import Image
        from streamdiffusion import create_wrapper_from_config
        cfg = {"model_id": "stabilityai/sd-turbo", "t_index_list": [20, 30], "width": 512, "height": 384}
        create_wrapper_from_config(cfg, compile_engines_only=True)
        w = create_wrapper_from_config({**cfg, "prompt": "a cat"})
        frame = w(Image.new("RGB", (640, 480)))
        w.update_stream_params(t_index_list=[1, 2, 3, 4, 5])  # batch 5 > engine max 4: ignored
        try:
            w.update_stream_params(no_such_param=1)
            unknown = "accepted"
        except TypeError:
            unknown = "TypeError"
        print(json.dumps({"size": list(frame.size), "t_list": w.stream.t_list, "unknown": unknown,
                          "prompt": w.stream.prompt}))
        """,
        tmp_path,
    )
    assert out == {"size": [512, 384], "t_list": [20, 30], "unknown": "TypeError", "prompt": "a cat"}


# --------------------------------------------------------------------------- machine simulation


def test_machine_simulation_env(tmp_path: Path) -> None:
    probe = """
        import json, torch
        try:
            import tensorrt
            trt = tensorrt.__version__
        except ImportError as exc:
            trt = f"ImportError: {exc}"
        info = {"available": torch.cuda.is_available(), "count": torch.cuda.device_count(),
                "torch": torch.__version__, "cuda": torch.version.cuda, "trt": trt}
        if info["available"]:
            info.update(name=torch.cuda.get_device_name(0), cc=list(torch.cuda.get_device_capability(0)),
                        mem=list(torch.cuda.mem_get_info(0)))
        print(json.dumps(info))
    """
    default = child_json(probe, tmp_path)
    assert default == {
        "available": True,
        "count": 1,
        "torch": "2.5.1+cu124",
        "cuda": "12.4",
        "trt": "10.16.1.11",
        "name": "NVIDIA GeForce RTX 4090",
        "cc": [8, 9],
        "mem": [int(24 * 1024**3 * 0.9), 24 * 1024**3],
    }
    small = child_json(
        probe,
        tmp_path,
        {
            "STANDIN_GPU_NAME": "NVIDIA GeForce GTX 1660",
            "STANDIN_CC": "7.5",
            "STANDIN_VRAM_GB": "6",
            "STANDIN_TRT_VERSION": "10.0.1",
        },
    )
    assert (small["name"], small["cc"], small["mem"][1], small["trt"]) == (
        "NVIDIA GeForce GTX 1660",
        [7, 5],
        6 * 1024**3,
        "10.0.1",
    )
    none = child_json(probe, tmp_path, {"STANDIN_CUDA": "0", "STANDIN_NO_TRT": "1"})
    assert (none["available"], none["count"]) == (False, 0)
    assert none["trt"] == "ImportError: No module named 'tensorrt'"


def test_no_tensorrt_fails_the_build_like_the_fork(tmp_path: Path) -> None:
    config = {"model_id": "stabilityai/sd-turbo", "compile_engines_only": True}
    proc = run_child(BUILD, tmp_path, {"STANDIN_NO_TRT": "1"}, stdin=json.dumps(config))
    assert proc.returncode != 0
    assert "Acceleration has failed: No module named 'tensorrt'" in proc.stderr


def test_compute_capability_changes_the_unet_folder(tmp_path: Path) -> None:
    config = {"model_id": "stabilityai/sd-turbo", "compile_engines_only": True}
    proc = run_child(BUILD, tmp_path, {"STANDIN_CC": "8.6"}, stdin=json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    files = engine_files(tmp_path)
    assert UNET_ENGINE not in files
    assert any("--cc86--res-512x512/vae_encoder.engine" in f for f in files)


# --------------------------------------------------------------------------- behaviour modes


def test_preprocessor_names(tmp_path: Path) -> None:
    names = child_json("import json, streamdiffusion as s; print(json.dumps(s.list_preprocessors()))", tmp_path)
    assert names[:3] == ["canny", "depth", "openpose"] and "realesrgan_trt" in names and len(names) == 16


def test_exception_mode(tmp_path: Path) -> None:
    config = {"model_id": "standin/exception-model", "compile_engines_only": True}
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode == 1
    assert "Model loading succeeded" in proc.stderr
    assert "RuntimeError: CUDA error: an illegal memory access was encountered" in proc.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize(("mode", "sig"), [("crash", signal.SIGSEGV), ("oomkill", getattr(signal, "SIGKILL", 9))])
def test_fatal_modes(tmp_path: Path, mode: str, sig: int) -> None:
    config = {"model_id": f"standin/{mode}-model", "compile_engines_only": True}
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode == -sig
    assert engine_files(tmp_path) == set()


def test_slow_mode_prints_progress(tmp_path: Path) -> None:
    config = {"model_id": "stabilityai/sd-turbo", "compile_engines_only": True}
    env = {"STANDIN_SD_MODE": "slow", "STANDIN_SLOW_SECONDS": "0.04", "STANDIN_SLOW_STEPS": "2"}
    proc = run_child(BUILD, tmp_path, env, stdin=json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["[slow] exporting unet 1/2", "[slow] exporting unet 2/2"]
    assert len(engine_files(tmp_path)) == 3


def test_fallback_mode_builds_no_unet(tmp_path: Path) -> None:
    config = {"model_id": "standin/fallback-model", "compile_engines_only": True}
    proc = run_child(BUILD, tmp_path, stdin=json.dumps(config))
    assert proc.returncode == 0, proc.stderr
    assert "Falling back to PyTorch UNet (no TensorRT acceleration)" in proc.stderr
    files = engine_files(tmp_path)
    assert {Path(f).name for f in files} == {"vae_encoder.engine", "vae_decoder.engine"}


def test_load_modes(tmp_path: Path) -> None:
    for mode in ("rebuild_on_load", "loadfail"):
        where = tmp_path / mode
        where.mkdir()
        base = {"model_id": f"standin/{mode}-model"}
        built = run_child(BUILD, where, stdin=json.dumps({**base, "compile_engines_only": True}))
        assert built.returncode == 0, built.stderr  # the mode only bites when loading
        (unet,) = [where / f for f in engine_files(where) if f.endswith("unet.engine")]
        before = unet.read_text()
        loaded = run_child(BUILD, where, stdin=json.dumps(base))
        if mode == "rebuild_on_load":
            assert loaded.returncode == 0, loaded.stderr
            assert unet.read_text() != before
        else:
            assert loaded.returncode != 0
            assert "UNet engine batch mismatch" in loaded.stderr
            assert unet.read_text() == before


@pytest.mark.skipif(os.name == "nt", reason="POSIX process handling")
def test_hang_mode_leaves_a_grandchild(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STANDIN_")}
    env.update(PYTHONPATH=str(STANDIN), STANDIN_GRANDCHILD_PIDFILE=str(pidfile))
    config = {"model_id": "standin/hang-model", "compile_engines_only": True}
    code = f"from streamdiffusion import create_wrapper_from_config as c; c({config!r})"
    proc = spawn([sys.executable, "-c", code], cwd=tmp_path, env=env)
    try:
        assert proc.stdout is not None
        proc.stdout.wait_for("hanging")
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), "the grandchild's pid file")
        os.kill(int(pidfile.read_text()), 0)  # alive
        assert proc.process.poll() is None
    finally:
        proc.stop()  # its group, the sleeping grandchild with it
