"""The Gradio web UI: one module per section (render + listen), all wording in text.py, logic in the core modules.

Only this package imports gradio. Nothing here imports torch, TensorRT or StreamDiffusion: builds and the
environment probe run in a child Python (sdprep.jobs; the scripts in sdprep.child run inside it).
"""
