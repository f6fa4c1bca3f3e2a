"""The baseline for the start-up and memory figures: the smallest useful Gradio Blocks app, launched the same way.

    python bench/minimal_app.py --host 127.0.0.1 --port 7870

It imports gradio, builds one Blocks page with a textbox, a button and a Markdown output, and serves it. Whatever
the real app costs beyond this (its own imports, building its form, reading the engines folder) is what the
benchmark's ratios show.
"""

from __future__ import annotations

import argparse

import gradio as gr


def create_demo() -> gr.Blocks:
    demo = gr.Blocks(title="minimal", analytics_enabled=False)
    with demo:
        gr.Markdown("# Minimal Gradio app")
        name = gr.Textbox(label="Name", elem_id="name")
        button = gr.Button("Greet")
        output = gr.Markdown()
        button.click(lambda text: f"Hello {text}!", inputs=name, outputs=output, api_name="greet")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7870)
    args = parser.parse_args()
    create_demo().launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == "__main__":
    main()
