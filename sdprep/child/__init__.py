"""Scripts that run inside the build Python (the one with torch, TensorRT and StreamDiffusion), started by path.

Standard library only at import time: each is run as `python <file>`, so its own folder is `sys.path[0]` and it
imports `protocol` as a top-level module. Nothing in the app imports these, except `protocol` for its constants.
"""
