"""LoRA: the user's own LoRAs as JSON; the hint shows the consistency LoRA that is added and the final lora_dict."""

from __future__ import annotations

from sdprep.ui.components.common import footer, heading
from sdprep.ui.form import Form


def render(form: Form) -> None:
    heading("sec_lora")
    form.add("lora_json", lines=2, max_lines=8, placeholder='{"owner/lora": 0.8}')
    footer(form, "lora")
