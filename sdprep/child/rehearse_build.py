"""Child script: rehearse a build in seconds, with the user's exact baked parameters and a tiny model made on the spot.

Run by path with the build Python: `python rehearse_build.py JOB.json`, where the job is
{"config": <the config the build would write>, "work_dir": <an empty temporary folder>}. Standard library at import
time; torch, diffusers, transformers, StreamDiffusion and TensorRT are imported inside the stages, so a broken one
is a finding, never a crash of this script.

The stages, in order, each announced by a "stage" event (the parent words them):
  rehearse_imports     torch, diffusers, transformers, StreamDiffusion, its config loader and its TensorRT build path
                       (streamdiffusion.acceleration.tensorrt: the forkni fork's reaches diffusers_ipadapter)
  rehearse_tiny_model  a randomly initialised model of the config's family (UNet, VAE, text encoder(s), a minimal
                       CLIP tokenizer; the tiny VAE and ControlNets too when chosen), saved as a diffusers folder; no
                       download
  rehearse_export      the fork's own create_wrapper_from_config(config, compile_engines_only=True): it loads the tiny
                       model and exports each engine's part to ONNX and optimises it
  rehearse_builder     TensorRT's builder, from the fork's "[BUILD] ONNX optimize" log line to its "[BUILD] TRT engine
                       build" line (the next engine's export follows); then every engine must be on disk (a fork that
                       falls back to PyTorch builds none and raises nothing)
  rehearse_load        create_wrapper_from_config(config) as the inference script calls it: the engines load, and
                       loading rewrites none of them
  rehearse_frame       one frame through the loaded wrapper
The config is the user's with only these changed: model_id, vae_id and the ControlNets' model_id point at the tiny
parts, engine_dir at work_dir; the safety checker, IP-Adapter, LoRAs and ControlNet preprocessors are left out (their
weights are downloads, and none changes an engine's shape but IP-Adapter's; "left_out" in the result says so).
Without TensorRT installed a stand-in module takes its place so the path runs up to the builder, and the rehearsal
stops there saying so (tensorrt_missing).

Events (protocol.emit): stage (stage=<code>); result, always, also when a stage failed (the exit code is 0 whenever
this script worked): passed, failed_stage (None when passed), reached (the stages that finished), seconds
{stage: s}, error ("Type: first line"), failed_module (an import failure's top-level module), traceback_tail,
warnings (the last warnings and errors the fork logged), engines (file names written), left_out, tensorrt_missing.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any

from fork_inspect import failed_module
from protocol import emit, end_with_parent  # run by path: sys.path[0] is this folder

STAGES: tuple[str, ...] = ("imports", "tiny_model", "export", "builder", "load", "frame")
IMPORTS: tuple[str, ...] = (
    "torch",
    "diffusers",
    "transformers",
    "streamdiffusion",
    "streamdiffusion.config",
    "streamdiffusion.acceleration.tensorrt",
)
# The engine files every TensorRT build writes (docs/streamdiffusion-facts.md §1.3); a ControlNet adds one
# cnet.engine each.
REQUIRED_ENGINES: tuple[str, ...] = ("unet.engine", "vae_encoder.engine", "vae_decoder.engine")
TRACEBACK_LINES = 12
WARNING_LINES = 5
# The family's text width (the UNet's cross_attention_dim): the fork tells families apart by it, so it stays real
# while everything else is as small as the layers allow.
TEXT_WIDTH: dict[str, int] = {"sd1.5": 768, "sd2.1": 1024}
SDXL_TEXT_WIDTHS = (768, 1280)


class StageFailed(RuntimeError):
    """A stage found something wrong without any library raising (an engine missing, an engine rewritten)."""


class TensorRTMissing(RuntimeError):
    """Raised by the stand-in `tensorrt` module when the build reaches TensorRT's builder on a machine without it."""


# ------------------------------------------------------------------------------------------- following the stages


class Stages:
    """Which stage runs now, when each began, and which finished; also moved by the fork's own log lines."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.reached: list[str] = []
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def begin(self, stage: str) -> None:
        if self.current == stage:
            return
        self.finish()
        self.current, self._since = stage, time.perf_counter()
        if stage not in self.reached:  # export and builder alternate, engine by engine: say each once
            emit("stage", stage=f"rehearse_{stage}")

    def finish(self) -> None:
        if self.current is None:
            return
        self.seconds[self.current] = round(self.seconds.get(self.current, 0.0) + time.perf_counter() - self._since, 3)
        if self.current not in self.reached:
            self.reached.append(self.current)
        self.current = None


class BuildLogWatcher(logging.Handler):
    """The fork logs "[BUILD] ONNX optimize (<engine>)" when an engine's ONNX is ready for TensorRT, and "[BUILD] TRT
    engine build (<engine>)" when TensorRT built it: the builder stage lies between the two. Its warnings and errors
    are kept, to say why an engine is missing."""

    def __init__(self, stages: Stages) -> None:
        super().__init__(logging.INFO)
        self.stages = stages
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            return
        if record.levelno >= logging.WARNING:
            self.warnings = [*self.warnings[-(WARNING_LINES - 1) :], text.strip().splitlines()[0] if text else ""]
        if self.stages.current not in ("export", "builder"):
            return
        if "[BUILD] ONNX optimize (" in text:
            self.stages.begin("builder")
        elif "[BUILD] TRT engine build (" in text:
            self.stages.begin("export")


# --------------------------------------------------------------------------------------------------- TensorRT


def _standin_tensorrt() -> types.ModuleType:
    """A `tensorrt` module for a machine without TensorRT: every name exists, so the fork's imports and its ONNX
    export work; creating a builder or runtime raises TensorRTMissing, where a real build would start TensorRT."""

    class _Meta(type):
        def __getattr__(cls, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Anything

    class _Anything(metaclass=_Meta):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Anything()

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return _Anything()

        def __int__(self) -> int:
            return 0

        __index__ = __int__

        def __bool__(self) -> bool:
            return False

        def __iter__(self) -> Any:
            return iter(())

    class _Missing:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise TensorRTMissing("TensorRT is not installed in this Python: the build stops before its builder")

    module = types.ModuleType("tensorrt")
    module.__version__ = "0.0.0"  # type: ignore[attr-defined]
    module.__file__ = None
    # A spec without an origin: libraries that look TensorRT up with importlib.util.find_spec (torch._dynamo's trace
    # rules do, at import) get an answer instead of "tensorrt.__spec__ is None" (seen on an H100 with torch 2.11).
    module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    missing = {"Builder": _Missing, "Runtime": _Missing}

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return missing.get(name, _Anything)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def tensorrt_missing() -> bool:
    """Whether TensorRT is not installed at all (then the stand-in takes its place); a broken install is a finding."""
    try:
        importlib.import_module("tensorrt")
    except ImportError as error:
        if getattr(error, "name", None) == "tensorrt" or importlib.util.find_spec("tensorrt") is None:
            sys.modules["tensorrt"] = _standin_tensorrt()
            return True
        raise
    return False


# ------------------------------------------------------------------------------------------------ tiny model


def byte_characters() -> list[str]:
    """GPT-2's byte-to-unicode table (the characters a CLIP BPE vocabulary is built on), in its order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def tiny_tokenizer(folder: Path) -> tuple[Any, int]:
    """A CLIP tokenizer with a minimal vocabulary: every byte character alone and word-final, and the two specials."""
    from transformers import CLIPTokenizer

    characters = byte_characters()
    words = [*characters, *(f"{character}</w>" for character in characters), "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({word: index for index, word in enumerate(words)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    return tokenizer, len(words)


def tiny_text_encoder(width: int, vocab: int, projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=width,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=vocab - 1,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def tiny_unet(family: str) -> Any:
    from diffusers import UNet2DConditionModel

    common: dict[str, Any] = {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "layers_per_block": 1,
        "block_out_channels": (32, 64),
        "norm_num_groups": 32,
    }
    if family == "sdxl":
        return UNet2DConditionModel(
            **common,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=sum(SDXL_TEXT_WIDTHS),
            attention_head_dim=(2, 4),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=8 * 6 + SDXL_TEXT_WIDTHS[1],
            transformer_layers_per_block=(1, 1),
        )
    return UNet2DConditionModel(
        **common,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH.get(family, TEXT_WIDTH["sd1.5"]),
        attention_head_dim=8,
        use_linear_projection=family == "sd2.1",
    )


def tiny_vae() -> Any:
    """Four blocks: the 8x downsampling every StreamDiffusion engine profile assumes."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )


def make_tiny_model(config: dict[str, Any], work: Path) -> tuple[dict[str, Any], list[str]]:
    """The tiny model of the config's family in `work`, and the config pointed at it; what was left out."""
    import torch
    from diffusers import AutoencoderTiny, ControlNetModel, LCMScheduler, StableDiffusionPipeline

    torch.manual_seed(0)
    family = str(config.get("pipeline_type") or "sd1.5")
    # The folder keeps the model's own last name, so whatever the fork reads from a model's name still applies.
    name = Path(str(config.get("model_id") or "model").replace("\\", "/")).name
    # Paths relative to work_dir (the working directory): a ControlNet's id becomes part of its engine folder's name.
    folder = Path("models") / (Path(name).stem if name.endswith((".safetensors", ".ckpt")) else name or "model")
    tokenizer, vocab = tiny_tokenizer(Path("tokenizer-files"))
    unet = tiny_unet(family)
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    if family == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        pipeline: Any = StableDiffusionXLPipeline(
            vae=tiny_vae(),
            text_encoder=tiny_text_encoder(SDXL_TEXT_WIDTHS[0], vocab),
            text_encoder_2=tiny_text_encoder(SDXL_TEXT_WIDTHS[1], vocab, projection=True),
            tokenizer=tokenizer,
            tokenizer_2=tokenizer,
            unet=unet,
            scheduler=scheduler,
        )
    else:
        pipeline = StableDiffusionPipeline(
            vae=tiny_vae(),
            text_encoder=tiny_text_encoder(TEXT_WIDTH.get(family, TEXT_WIDTH["sd1.5"]), vocab),
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipeline.save_pretrained(folder)
    rehearsed: dict[str, Any] = {**config, "model_id": folder.as_posix(), "engine_dir": str(work / "engines")}
    if config.get("use_tiny_vae", True):
        tiny = AutoencoderTiny(
            encoder_block_out_channels=(16, 16, 16, 16),
            decoder_block_out_channels=(16, 16, 16, 16),
            num_encoder_blocks=(1, 1, 1, 1),
            num_decoder_blocks=(1, 1, 1, 1),
            latent_channels=4,
        )
        tiny.save_pretrained(Path("models") / "tiny-vae")
        rehearsed["vae_id"] = "models/tiny-vae"
    items = config.get("controlnets") or []
    if items:
        rehearsed["controlnets"] = []
        for index, item in enumerate(items):
            controlnet = ControlNetModel.from_unet(
                unet,
                conditioning_channels=int(item.get("conditioning_channels") or 3),
                conditioning_embedding_out_channels=(16, 16, 16, 16),
            )
            place = Path("models") / f"controlnet-{index}"
            controlnet.save_pretrained(place)
            # A preprocessor changes no engine, and some download their own model: the rehearsal passes images through.
            rehearsed["controlnets"].append({**item, "model_id": place.as_posix(), "preprocessor": "passthrough"})
    left_out = []
    if any(str(item.get("preprocessor") or "passthrough") != "passthrough" for item in items):
        left_out.append("preprocessors")
    if rehearsed.pop("lora_dict", None):
        left_out.append("loras")
    if rehearsed.get("use_safety_checker"):
        rehearsed["use_safety_checker"] = False
        left_out.append("safety_checker")
    if rehearsed.get("use_ipadapter") or rehearsed.get("ipadapter_config"):
        rehearsed["use_ipadapter"] = False
        rehearsed.pop("ipadapter_config", None)
        rehearsed.pop("ipadapters", None)
        left_out.append("ipadapter")
    return rehearsed, left_out


# ----------------------------------------------------------------------------------------------------- stages


def engine_files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every engine under `folder`: relative path -> (size, mtime_ns)."""
    found: dict[str, tuple[int, int]] = {}
    for path in folder.rglob("*.engine"):
        stat = path.stat()
        found[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return found


def check_engines(config: dict[str, Any], engines: dict[str, tuple[int, int]], watcher: BuildLogWatcher) -> None:
    names = [Path(relative).name for relative in engines]
    missing = [name for name in REQUIRED_ENGINES if name not in names]
    controlnets = len(config.get("controlnets") or [])
    if names.count("cnet.engine") < controlnets:
        missing.append(f"cnet.engine x{controlnets - names.count('cnet.engine')}")
    if missing:
        said = f" (StreamDiffusion logged: {watcher.warnings[-1]})" if watcher.warnings else ""
        raise StageFailed(f"no {', '.join(missing)} was written and nothing failed: a fallback to PyTorch{said}")


def synthetic_image(width: int, height: int) -> Any:
    from PIL import Image

    return Image.new("RGB", (width, height), (128, 96, 64))


def rehearse(job: dict[str, Any], stages: Stages, watcher: BuildLogWatcher, result: dict[str, Any]) -> None:
    work = Path(job["work_dir"]).resolve()
    os.chdir(work)
    stages.begin("imports")
    result["tensorrt_missing"] = tensorrt_missing()
    for name in IMPORTS:
        importlib.import_module(name)
    from streamdiffusion.config import create_wrapper_from_config

    stages.begin("tiny_model")
    config, result["left_out"] = make_tiny_model(dict(job["config"]), work)
    engines_dir = Path(config["engine_dir"])

    stages.begin("export")
    # An empty prompt keeps the loader from preparing a prompt: building needs none (as build_engines.py does).
    create_wrapper_from_config({**config, "prompt": ""}, compile_engines_only=True)
    built = engine_files(engines_dir)
    result["engines"] = sorted(Path(relative).name for relative in built)
    stages.begin("builder")  # an engine missing is the builder's: it wrote none (the fork may carry on without)
    check_engines(config, built, watcher)
    stages.begin("load")
    wrapper = create_wrapper_from_config(
        {**config, "prompt": "a rehearsal", "build_engines_if_missing": False, "compile_engines_only": False}
    )
    if engine_files(engines_dir) != built:
        raise StageFailed("loading the engines rewrote them: the config and the engines it was built for disagree")

    stages.begin("frame")
    import torch

    width, height = int(config.get("width", 512)), int(config.get("height", 512))
    output = wrapper() if config.get("mode") == "txt2img" else wrapper(image=synthetic_image(width, height))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if output is None:
        raise StageFailed("the wrapper returned no frame")
    stages.finish()


def describe(error: BaseException) -> str:
    """ "Type: first line"; a finding of this script's own is its sentence alone."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if isinstance(error, StageFailed) and lines:
        return lines[0]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def main(argv: list[str]) -> int:
    end_with_parent()
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    stages = Stages()
    watcher = BuildLogWatcher(stages)
    logging.getLogger().addHandler(watcher)
    started = time.perf_counter()
    result: dict[str, Any] = {"left_out": [], "engines": [], "tensorrt_missing": False}
    failed: BaseException | None = None
    try:
        rehearse(job, stages, watcher, result)
    except (Exception, SystemExit) as error:  # Ctrl-C still stops us
        failed = error
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stdout)
        sys.stdout.flush()
    failed_stage = stages.current
    stages.finish()
    if failed is not None and failed_stage in STAGES:
        # Got through: the stages before the one that failed (an earlier engine may have passed that one).
        stages.reached = [stage for stage in STAGES[: STAGES.index(failed_stage)] if stage in stages.reached]
    tail: list[str] = []
    if failed is not None:
        text = "".join(traceback.format_exception(type(failed), failed, failed.__traceback__))
        tail = [line.rstrip() for line in text.splitlines() if line.strip()][-TRACEBACK_LINES:]
    missing_trt = failed is not None and any(isinstance(e, TensorRTMissing) for e in _chain(failed))
    emit(
        "result",
        passed=failed is None,
        failed_stage=failed_stage if failed is not None else None,
        reached=stages.reached,
        seconds={**stages.seconds, "total": round(time.perf_counter() - started, 3)},
        error=describe(failed) if failed is not None else None,
        failed_module=failed_module(failed) if isinstance(failed, ImportError) else None,
        traceback_tail=tail,
        warnings=watcher.warnings,
        stopped_at_builder_without_tensorrt=missing_trt,
        **result,
    )
    return 0


def _chain(error: BaseException) -> list[BaseException]:
    """The error and those it was raised from or during (the fork wraps a builder failure in its own)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


if __name__ == "__main__":
    sys.exit(main(sys.argv))
