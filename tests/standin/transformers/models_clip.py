"""Stand-in CLIP classes: built from a config, saved as a folder that from_pretrained-style loaders accept.

Only what the rehearsal's tiny model needs (sdprep/child/rehearse_build.py): CLIPTextConfig, CLIPTextModel,
CLIPTextModelWithProjection and CLIPTokenizer (from a vocab.json and merges.txt), each with save_pretrained writing
the files the real one writes (config.json + weights; vocab.json, merges.txt, tokenizer_config.json).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


class CLIPTextConfig:
    model_type = "clip_text_model"

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, **self.__dict__}


class _PreTrainedModel:
    def __init__(self, config: CLIPTextConfig) -> None:
        if not isinstance(config, CLIPTextConfig):
            raise TypeError(f"config must be a CLIPTextConfig, not {type(config).__name__}")
        self.config = config

    def save_pretrained(self, save_directory: str | os.PathLike[str], **_kwargs: Any) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"architectures": [type(self).__name__], **self.config.to_dict()}
        (folder / "config.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
        (folder / "model.safetensors").write_bytes(b"standin weights\n")


class CLIPTextModel(_PreTrainedModel):
    pass


class CLIPTextModelWithProjection(_PreTrainedModel):
    pass


class CLIPTokenizer:
    def __init__(self, vocab_file: str, merges_file: str, **kwargs: Any) -> None:
        with open(vocab_file, encoding="utf-8") as handle:
            self.encoder: dict[str, int] = json.load(handle)
        self.vocab_file, self.merges_file = vocab_file, merges_file
        self.model_max_length = int(kwargs.get("model_max_length", 77))
        self.init_kwargs = kwargs

    def __len__(self) -> int:
        return len(self.encoder)

    def save_pretrained(self, save_directory: str | os.PathLike[str], **_kwargs: Any) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.vocab_file, folder / "vocab.json")
        shutil.copyfile(self.merges_file, folder / "merges.txt")
        config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": self.model_max_length, **self.init_kwargs}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
