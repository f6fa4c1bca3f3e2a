"""Stand-in for the ``tensorrt`` Python package (TensorRT 10 API, stdlib only).

It answers the calls a self-test makes (Logger/ILogger, Builder, create_network, add_input, add_activation,
add_elementwise, mark_output, create_builder_config, set_memory_pool_limit, build_serialized_network, Runtime,
deserialize_cuda_engine, ICudaEngine, create_execution_context, set_tensor_address, execute_async_v3), and running
an engine really computes its network on the stand-in torch tensors at the given addresses (see ``_infer.py``).

Field failures, chosen by environment variables (tests/standin/README.md):
- STANDIN_NO_TRT=1: not installed (``No module named 'tensorrt'``).
- STANDIN_TRT_BINDINGS_MISSING=1: the ``tensorrt`` package is there but its bindings are not, as when only the
  ``tensorrt`` meta package got installed: its ``__init__`` fails on ``tensorrt_bindings``.
- STANDIN_TRT_CUDA_MAJOR=13 (or a wheel built as tensorrt-cu13) beside a torch of another CUDA major: creating a
  Builder or Runtime logs "CUDA initialization failure with error: 35" and raises pybind11's nullptr TypeError.
"""

from __future__ import annotations

import importlib
import os

if os.environ.get("STANDIN_NO_TRT", "") == "1":
    raise ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt")

if os.environ.get("STANDIN_TRT_BINDINGS_MISSING", "") == "1":
    # The real __init__ does `from tensorrt_bindings import *`; importing a module that is not there fails with the
    # very ModuleNotFoundError (name="tensorrt_bindings") that broken installs show.
    importlib.import_module("tensorrt_bindings")

# After the failure switches, which must fire before anything loads.
from tensorrt import _device
from tensorrt._infer import (
    ActivationType,
    Builder,
    BuilderFlag,
    DataType,
    Dims,
    ElementWiseOperation,
    IActivationLayer,
    IBuilderConfig,
    ICudaEngine,
    IElementWiseLayer,
    IExecutionContext,
    IHostMemory,
    ILayer,
    ILogger,
    INetworkDefinition,
    ITensor,
    ITimingCache,
    LayerType,
    Logger,
    MemoryPoolType,
    NetworkDefinitionCreationFlag,
    Runtime,
    TensorIOMode,
    bfloat16,
    float16,
    float32,
    int8,
    int32,
    int64,
    uint8,
)
from tensorrt._infer import bool as bool  # the real module exports `tensorrt.bool` too

if int(_device.trt_version().split(".")[0]) >= 10:  # IProgressMonitor came with TensorRT 10
    from tensorrt._infer import IProgressMonitor as IProgressMonitor

__version__: str = _device.trt_version()

__all__ = [
    "ActivationType",
    "Builder",
    "BuilderFlag",
    "DataType",
    "Dims",
    "ElementWiseOperation",
    "IActivationLayer",
    "IBuilderConfig",
    "ICudaEngine",
    "IElementWiseLayer",
    "IExecutionContext",
    "IHostMemory",
    "ILayer",
    "ILogger",
    "INetworkDefinition",
    "ITensor",
    "ITimingCache",
    "LayerType",
    "Logger",
    "MemoryPoolType",
    "NetworkDefinitionCreationFlag",
    "Runtime",
    "TensorIOMode",
    "__version__",
    "bfloat16",
    "bool",
    "float16",
    "float32",
    "int8",
    "int32",
    "int64",
    "uint8",
]
