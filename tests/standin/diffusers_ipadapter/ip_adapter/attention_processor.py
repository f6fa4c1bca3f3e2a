"""The TensorRT attention processors the fork's UNet export imports (on the feat/trt-weight-types line only), and the
helper its IP-Adapter module imports (names only)."""

from __future__ import annotations

from typing import Any


class TRTIPAttnProcessor:
    """Stand-in: an IP-Adapter attention processor the fork's ONNX export installs into the UNet."""

    def __init__(
        self, hidden_size: Any = None, cross_attention_dim: Any = None, num_tokens: int = 4, **kwargs: Any
    ) -> None:
        self.hidden_size = hidden_size
        self.cross_attention_dim = cross_attention_dim
        self.num_tokens = num_tokens


class TRTIPAttnProcessor2_0(TRTIPAttnProcessor):
    """Stand-in of the scaled-dot-product variant."""


def build_layer_weights(*args: Any, **kwargs: Any) -> dict[str, float]:
    return {}
