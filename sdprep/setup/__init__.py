"""`setup` and `doctor`: make the build Python (.venv-build: CUDA torch, TensorRT, a StreamDiffusion fork) with uv,
and prove it in seconds with a self-test. Parent side only; the self-test itself runs in
sdprep/child/environment_check.py."""
