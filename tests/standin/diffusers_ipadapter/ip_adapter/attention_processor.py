"""The attention processors and helper the fork imports from diffusers_ipadapter (names only)."""

from __future__ import annotations

from typing import Any


class TRTIPAttnProcessor:
    def __init__(self, hidden_size: int | None = None, cross_attention_dim: int | None = None, **kwargs: Any) -> None:
        self.hidden_size = hidden_size
        self.cross_attention_dim = cross_attention_dim


class TRTIPAttnProcessor2_0(TRTIPAttnProcessor):
    pass


def build_layer_weights(*args: Any, **kwargs: Any) -> dict[str, float]:
    return {}
