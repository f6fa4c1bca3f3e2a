"""Config-holding stand-ins of diffusers models, a scheduler and two pipelines, with save_pretrained."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

WEIGHTS = "diffusion_pytorch_model.safetensors"


class _ConfigMixin:
    config_name = "config.json"

    def __init__(self, **config: Any) -> None:
        self.config = dict(config)

    def save_pretrained(self, save_directory: str | os.PathLike[str], **_kwargs: Any) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"_class_name": type(self).__name__, "_diffusers_version": "0.35.1", **self.config}
        (folder / self.config_name).write_text(json.dumps(data, indent=2, default=list), encoding="utf-8")
        if self.config_name == "config.json":
            (folder / WEIGHTS).write_bytes(b"standin weights\n")


class UNet2DConditionModel(_ConfigMixin):
    def __init__(self, **config: Any) -> None:
        # STANDIN_DIFFUSERS_REJECTS=1: a diffusers whose UNet rejects the rehearsal's tiny config (its own check's text).
        if os.environ.get("STANDIN_DIFFUSERS_REJECTS") == "1":
            raise ValueError(
                "Must provide the same number of `block_out_channels` as `down_block_types`. "
                f"`block_out_channels`: {config.get('block_out_channels')}. "
                f"`down_block_types`: {config.get('down_block_types')}."
            )
        super().__init__(**config)


class AutoencoderKL(_ConfigMixin):
    pass


class AutoencoderTiny(_ConfigMixin):
    pass


class ControlNetModel(_ConfigMixin):
    # The UNet settings a ControlNet copies (diffusers' ControlNetModel.from_unet passes these on).
    _FROM_UNET = (
        "in_channels",
        "down_block_types",
        "block_out_channels",
        "layers_per_block",
        "cross_attention_dim",
        "attention_head_dim",
        "use_linear_projection",
        "addition_embed_type",
        "addition_time_embed_dim",
        "projection_class_embeddings_input_dim",
        "transformer_layers_per_block",
        "norm_num_groups",
    )

    @classmethod
    def from_unet(cls, unet: UNet2DConditionModel, **kwargs: Any) -> ControlNetModel:
        if not isinstance(unet, UNet2DConditionModel):
            raise TypeError(f"from_unet needs a UNet2DConditionModel, not {type(unet).__name__}")
        copied = {key: unet.config[key] for key in cls._FROM_UNET if key in unet.config}
        kwargs.pop("load_weights_from_unet", None)
        return cls(**copied, **kwargs)


class LCMScheduler(_ConfigMixin):
    config_name = "scheduler_config.json"


class _Pipeline:
    _components: tuple[str, ...] = ()

    def __init__(self, **components: Any) -> None:
        unknown = set(components) - set(self._components) - {"requires_safety_checker"}
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected keyword arguments {sorted(unknown)}")
        self.components = {name: components.get(name) for name in self._components}

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        index: dict[str, Any] = {"_class_name": type(self).__name__, "_diffusers_version": "0.35.1"}
        for name, part in self.components.items():
            if part is None:
                index[name] = [None, None]
                continue
            library = "transformers" if type(part).__module__.startswith("transformers") else "diffusers"
            index[name] = [library, type(part).__name__]
            part.save_pretrained(folder / name, **kwargs)
        (folder / "model_index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


class StableDiffusionPipeline(_Pipeline):
    _components = ("vae", "text_encoder", "tokenizer", "unet", "scheduler", "safety_checker", "feature_extractor")


class StableDiffusionXLPipeline(_Pipeline):
    _components = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")
