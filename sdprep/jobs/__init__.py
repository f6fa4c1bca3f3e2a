"""Parent-side jobs: start a child in the build Python, stream what it says, cancel it, prove and record its work.

Nothing here imports torch, TensorRT or StreamDiffusion; the scripts that do live in `sdprep.child` and run there.
"""
