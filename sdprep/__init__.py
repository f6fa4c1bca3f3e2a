"""sdprep: prepare StreamDiffusion models (baked parameters, TensorRT engines, config.yaml)."""
