"""Child script: load a config's engines the way an inference script does, time frames, save one. Stdlib + PIL.

Run by path with the Python that has StreamDiffusion: `python check.py JOB.json`, where the job holds the config
exactly as config.yaml has it, the warm-up and timed frame counts, and where to save the output image. It calls
`create_wrapper_from_config(config)` (no compile-only: the engines are loaded), prepares a prompt if the loader did
not, feeds a synthetic picture through img2img, and reports load time, mean and p95 frame time, fps and peak GPU
memory. The parent decides pass or fail; it also compares the engine files before and after, because loading must
not rebuild anything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from protocol import emit, end_with_parent  # run by path: sys.path[0] is this folder

NEUTRAL_PROMPT = "a photo of a cat, high quality"
PROGRESS_EVERY = 2.0  # seconds between "frame k/N" messages


class NoGpu(RuntimeError):
    """No CUDA device: nothing here can load a TensorRT engine. Carries torch's version and CUDA for the parent."""

    def __init__(self, torch_version: str, cuda: str | None) -> None:
        super().__init__(f"No CUDA GPU is visible to PyTorch {torch_version} (CUDA {cuda})")
        self.torch_version, self.cuda = torch_version, cuda


def synthetic_image(width: int, height: int) -> Any:
    """A deterministic test picture: a colour gradient with a few shapes, so every engine sees real structure."""
    from PIL import Image, ImageDraw

    ramp = Image.linear_gradient("L")  # 256x256, black at the top to white at the bottom
    red = ramp.rotate(90).resize((width, height))
    green = ramp.resize((width, height))
    blue = Image.new("L", (width, height), 96)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    w, h = width, height
    draw.ellipse((w * 0.10, h * 0.15, w * 0.45, h * 0.50), fill=(230, 200, 40), outline=(20, 20, 20), width=3)
    draw.rectangle((w * 0.55, h * 0.20, w * 0.90, h * 0.45), fill=(40, 90, 200))
    draw.polygon([(w * 0.50, h * 0.55), (w * 0.85, h * 0.92), (w * 0.15, h * 0.92)], fill=(200, 60, 60))
    return image


def first_image(output: Any) -> Any:
    """The wrapper returns a PIL image, or a list of them with a frame buffer > 1."""
    if isinstance(output, (list, tuple)):
        return output[0] if output else None
    return output


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 of 20 frames is the 19th slowest, not an interpolation)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def load(config: dict[str, Any]) -> tuple[Any, Any, float]:
    emit("stage", stage="import")
    import torch

    if not torch.cuda.is_available():
        version = getattr(getattr(torch, "version", None), "cuda", None)
        raise NoGpu(str(getattr(torch, "__version__", "?")), version)
    from streamdiffusion.config import create_wrapper_from_config

    # build_engines_if_missing=False: if the engine folders StreamDiffusion derives from this config are not the
    # ones on disk, loading must fail at once naming what it looked for, instead of silently rebuilding for
    # minutes (and then passing). Everything else is exactly as written. Not every engine honours the flag (a
    # missing ControlNet or safety-checker engine is built anyway), so the parent also compares the engine files.
    load_config = {**config, "build_engines_if_missing": False, "compile_engines_only": False}
    torch.cuda.reset_peak_memory_stats()
    emit("stage", stage="load")
    started = time.perf_counter()
    wrapper = create_wrapper_from_config(load_config)
    if not (config.get("prompt") or "prompt_blending" in config):
        # create_wrapper_from_config prepares only for a non-empty prompt; frames need a prepared stream.
        emit("stage", stage="prepare")
        # The config's own runtime values; a key it lacks keeps StreamDiffusion's default, as at inference.
        runtime = ("negative_prompt", "num_inference_steps", "guidance_scale", "delta")
        wrapper.prepare(prompt=NEUTRAL_PROMPT, **{key: config[key] for key in runtime if key in config})
    return torch, wrapper, time.perf_counter() - started


def run_frames(torch: Any, wrapper: Any, image: Any, count: int, txt2img: bool, label: str) -> tuple[list[float], Any]:
    """Call the wrapper `count` times; each frame's wall time in ms, GPU work included."""
    times: list[float] = []
    output: Any = None
    told = time.monotonic()
    for index in range(count):
        started = time.perf_counter()
        output = wrapper() if txt2img else wrapper(image=image)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000.0)
        if time.monotonic() - told >= PROGRESS_EVERY:
            told = time.monotonic()
            emit("log", code=f"frame_{label}", params={"index": index + 1, "count": count})
    return times, output


def check(job: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = job["config"]
    warmup, frames = int(job.get("warmup", 10)), max(1, int(job.get("frames", 100)))
    torch, wrapper, load_seconds = load(config)
    emit("log", code="num_loaded", params={"seconds": f"{load_seconds:.2f}"})
    image = synthetic_image(int(config.get("width", 512)), int(config.get("height", 512)))
    txt2img = config.get("mode") == "txt2img"
    if warmup > 0:
        emit("stage", stage="warmup")
        run_frames(torch, wrapper, image, warmup, txt2img, "warmup")
    emit("stage", stage="frames")
    times, output = run_frames(torch, wrapper, image, frames, txt2img, "timed")
    per_call = len(output) if isinstance(output, (list, tuple)) and output else 1
    mean_ms = sum(times) / len(times)
    result: dict[str, Any] = {
        "load_seconds": round(load_seconds, 3),
        "mean_ms": round(mean_ms, 3),
        "p95_ms": round(percentile(times, 0.95), 3),
        "fps": round(per_call * 1000.0 / mean_ms, 2) if mean_ms > 0 else None,
        "images_per_call": per_call,
        "frames": frames,
        "warmup": warmup,
        "peak_memory_bytes": int(torch.cuda.max_memory_allocated()),
        "gpu": torch.cuda.get_device_name(0),
        "image": None,
    }
    try:
        free, total = torch.cuda.mem_get_info()
        # TensorRT allocates outside PyTorch's allocator: this one sees it (and every other process on the GPU).
        result["device_used_bytes"] = int(total - free)
    except Exception:
        pass
    picture = first_image(output)
    target = job.get("image_path")
    if target and hasattr(picture, "save"):
        emit("stage", stage="save")
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.stem}.{os.getpid()}.png")
        picture.save(partial, format="PNG")
        os.replace(partial, path)
        result["image"] = str(path)
    elif target:
        emit("log", code="check_not_an_image", params={"type": type(picture).__name__})
    return result


def main(argv: list[str]) -> int:
    end_with_parent()  # a check left behind by a killed app would hold the GPU beside the next build
    job = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    try:
        result = check(job)
    except NoGpu as error:
        emit(
            "error",
            type="NoGpu",
            no_gpu=True,
            message=str(error),
            torch=error.torch_version,
            cuda=error.cuda,
            details=[],
        )
        return 1
    except BaseException as error:  # everything, SystemExit included, becomes a reason for people
        traceback.print_exc(file=sys.stdout)
        sys.stdout.flush()
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        emit("error", type=type(error).__name__, message=lines[0] if lines else "", details=lines[1:20])
        return 1
    emit("stage", stage="check_done")
    emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
