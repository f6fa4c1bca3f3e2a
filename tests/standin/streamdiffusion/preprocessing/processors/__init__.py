"""Stand-in preprocessor registry: the names the forkni fork always registers.

Optional TensorRT/MediaPipe processors (depth_tensorrt, pose_tensorrt, ...) are
only registered by the real fork when their imports succeed; on a test machine
they would not be, so they are left out here too.
"""

from __future__ import annotations

_registry: dict[str, object] = dict.fromkeys(
    (
        "canny",
        "depth",
        "openpose",
        "lineart",
        "standard_lineart",
        "passthrough",
        "external",
        "soft_edge",
        "hed",
        "scribble",
        "feedback",
        "latent_feedback",
        "sharpen",
        "upscale",
        "blur",
        "realesrgan_trt",
    )
)


def list_preprocessors() -> list[str]:
    """Registered names, in registration order (like the real function)."""
    return list(_registry)


def register_preprocessor(name: str, preprocessor_class: object) -> None:
    _registry[name] = preprocessor_class


def get_preprocessor_class(name: str) -> object:
    if name not in _registry:
        available = ", ".join(_registry)
        raise ValueError(f"Unknown preprocessor '{name}'. Available: {available}")
    return _registry[name]
