"""The stand-in TensorRT 10 API: build a small network, serialize it, deserialize it and run it on tensor addresses.

Names, signatures and failure behaviour follow the TensorRT 10 Python API (tensorrt.Builder, INetworkDefinition,
IBuilderConfig, Runtime, ICudaEngine, IExecutionContext): calls that fail in the real library by returning None or
False and logging an error do the same here, and CUDA that cannot start fails object creation with the real
message and exception. Only the layers a self-test needs exist (activation, element-wise); the "plan" a build
returns is a JSON description of the network that `deserialize_cuda_engine` reads back, so running an engine
really computes the network on the numbers at the addresses it was given.
"""

from __future__ import annotations

import builtins
import enum
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from tensorrt import _device

PLAN_MAGIC = b"standin-trt-plan\n"
PLAN_FORMAT = 1


# ------------------------------------------------------------------------------------------------ enums and logger


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8


float32 = DataType.FLOAT
float16 = DataType.HALF
bfloat16 = DataType.BF16
int8 = DataType.INT8
int32 = DataType.INT32
int64 = DataType.INT64
uint8 = DataType.UINT8
bool = DataType.BOOL  # shadows the builtin in this module, as the real `tensorrt.bool` does: don't call bool() here


class ActivationType(enum.IntEnum):
    RELU = 0
    SIGMOID = 1
    TANH = 2
    LEAKY_RELU = 3


class ElementWiseOperation(enum.IntEnum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    SUB = 4
    DIV = 5


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0  # deprecated and ignored in TensorRT 10: networks are always explicit batch
    STRONGLY_TYPED = 1


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0
    DLA_MANAGED_SRAM = 1
    DLA_LOCAL_DRAM = 2
    DLA_GLOBAL_DRAM = 3
    TACTIC_DRAM = 4
    TACTIC_SHARED_MEMORY = 5


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    DEBUG = 2
    TF32 = 7


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class LayerType(enum.IntEnum):
    ACTIVATION = 1
    ELEMENTWISE = 6


class ILogger:
    """Base class of loggers; subclass it and override ``log(severity, msg)`` to capture TensorRT's messages."""

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        raise NotImplementedError("ILogger.log must be overridden")


_LETTER = {0: "F", 1: "E", 2: "W", 3: "I", 4: "V"}


class Logger(ILogger):
    """The bundled logger: prints messages at or above ``min_severity`` to stderr, in TensorRT's format."""

    INTERNAL_ERROR = ILogger.Severity.INTERNAL_ERROR
    ERROR = ILogger.Severity.ERROR
    WARNING = ILogger.Severity.WARNING
    INFO = ILogger.Severity.INFO
    VERBOSE = ILogger.Severity.VERBOSE

    def __init__(self, min_severity: ILogger.Severity = ILogger.Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            stamp = time.strftime("%m/%d/%Y-%H:%M:%S")
            sys.stderr.write(f"[{stamp}] [TRT] [{_LETTER.get(int(severity), '?')}] {msg}\n")
            sys.stderr.flush()


def _log(logger: ILogger, severity: ILogger.Severity, message: str) -> None:
    logger.log(severity, message)


def _start_cuda(logger: ILogger) -> None:
    """What creating a Builder or Runtime does first; on failure TensorRT logs why and pybind11 gets a nullptr."""
    error = _device.cuda_init_error()
    if error is None:
        return
    _log(
        logger,
        ILogger.Severity.WARNING,
        f"CUDA initialization failure with error: {error}. Please check your CUDA installation:  {_device.CUDA_GUIDE}",
    )
    raise TypeError("pybind11::init(): factory function returned nullptr")


class Dims(tuple):  # type: ignore[type-arg]
    """A shape; the real Dims also behaves like a sequence of ints."""

    def __repr__(self) -> str:
        return f"({', '.join(str(size) for size in self)})"


def _volume(shape: Sequence[int]) -> int:
    return math.prod(shape)


# ------------------------------------------------------------------------------------------------------ network


class ITensor:
    def __init__(self, network: INetworkDefinition, name: str, dtype: DataType, shape: Sequence[int]) -> None:
        self._network = network
        self.name = name
        self.dtype = dtype
        self.shape = Dims(int(size) for size in shape)
        self.is_network_input = False
        self.is_network_output = False

    def __repr__(self) -> str:
        return f"<tensorrt.ITensor {self.name!r} {self.dtype.name} {self.shape!r}>"


class ILayer:
    def __init__(self, network: INetworkDefinition, kind: LayerType, inputs: list[ITensor], spec: dict[str, Any]):
        self._network = network
        self.type = kind
        self._inputs = inputs
        self._spec = spec
        index = len(network._layers)
        label = {LayerType.ACTIVATION: "Activation", LayerType.ELEMENTWISE: "ElementWise"}[kind]
        self.name = f"(Unnamed Layer* {index}) [{label}]"
        shape = inputs[0].shape if len(inputs) == 1 else _broadcast(inputs[0].shape, inputs[1].shape)
        self._output = ITensor(network, f"{self.name}_output", inputs[0].dtype, shape)
        self.num_inputs = len(inputs)
        self.num_outputs = 1

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        if index != 0:
            raise IndexError("layer has one output")
        return self._output


class IActivationLayer(ILayer):
    pass


class IElementWiseLayer(ILayer):
    pass


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    if len(a) != len(b):
        raise ValueError(f"element-wise inputs must have the same rank, got {tuple(a)} and {tuple(b)}")
    shape = []
    for x, y in zip(a, b, strict=True):
        if x != y and 1 not in (x, y):
            raise ValueError(f"element-wise inputs are not broadcastable: {tuple(a)} and {tuple(b)}")
        shape.append(max(x, y))
    return tuple(shape)


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = int(flags)
        self.name = "Unnamed Network 0"
        self._inputs: list[ITensor] = []
        self._outputs: list[ITensor] = []
        self._layers: list[ILayer] = []

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> ILayer:
        return self._layers[index]

    def get_input(self, index: int) -> ITensor:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    def get_layer(self, index: int) -> ILayer:
        return self._layers[index]

    def add_input(self, name: str, dtype: DataType, shape: Sequence[int]) -> ITensor:
        tensor = ITensor(self, name, DataType(dtype), shape)
        tensor.is_network_input = True
        self._inputs.append(tensor)
        return tensor

    def add_activation(self, input: ITensor, type: ActivationType) -> IActivationLayer:  # the real parameter names
        layer = IActivationLayer(self, LayerType.ACTIVATION, [input], {"op": ActivationType(type).name})
        self._layers.append(layer)
        return layer

    def add_elementwise(self, input1: ITensor, input2: ITensor, op: ElementWiseOperation) -> IElementWiseLayer:
        layer = IElementWiseLayer(self, LayerType.ELEMENTWISE, [input1, input2], {"op": ElementWiseOperation(op).name})
        self._layers.append(layer)
        return layer

    def mark_output(self, tensor: ITensor) -> None:
        tensor.is_network_output = True
        self._outputs.append(tensor)


# ------------------------------------------------------------------------------------------------------ builder


class IProgressMonitor:
    """TensorRT 10's progress interface: subclass it, call its __init__, override the three methods (pure virtual in
    the real pybind11 class: calling one that is not overridden raises RuntimeError)."""

    def __init__(self) -> None:
        self._initialised = True

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        raise RuntimeError('Tried to call pure virtual function "IProgressMonitor::phase_start"')

    def step_complete(self, phase_name: str, step: int) -> builtins.bool:
        raise RuntimeError('Tried to call pure virtual function "IProgressMonitor::step_complete"')

    def phase_finish(self, phase_name: str) -> None:
        raise RuntimeError('Tried to call pure virtual function "IProgressMonitor::phase_finish"')


TIMING_CACHE_FORMAT = "standin-trt-timing-cache/1"


def _this_device() -> str:
    """What a timing cache's header says about the device: TensorRT checks it against the GPU it is given to."""
    major, minor = _device.compute_capability()
    return f"{_device.gpu_name()}|sm_{major}{minor}"


class ITimingCache:
    """Tactic timings collected by a builder (TensorRT 10's ITimingCache: serialize, combine, reset). Its header names
    the TensorRT version and the device; the stand-in serialises it as JSON with the timings as named entries."""

    def __init__(self, device: str, version: str, entries: dict[str, float] | None = None) -> None:
        self._device = device
        self._version = version
        self._entries: dict[str, float] = dict(entries or {})

    def serialize(self) -> IHostMemory:
        document = {"format": TIMING_CACHE_FORMAT, "tensorrt": self._version, "device": self._device}
        return IHostMemory(json.dumps({**document, "entries": self._entries}, sort_keys=True).encode("utf-8"))

    def combine(self, input_cache: ITimingCache, ignore_mismatch: builtins.bool) -> builtins.bool:
        """Append the entries of `input_cache` (conflicting ones are skipped); False for another TensorRT version, or
        for another device unless ignore_mismatch."""
        if input_cache._version != self._version or (input_cache._device != self._device and not ignore_mismatch):
            return False
        for key, value in input_cache._entries.items():
            self._entries.setdefault(key, value)
        return True

    def reset(self) -> builtins.bool:
        self._entries.clear()
        return True

    def _time(self, layer: str) -> builtins.bool:
        """The builder timing one layer's tactics: True when the cache already had them (nothing timed)."""
        if layer in self._entries:
            return True
        self._entries[layer] = 0.01
        return False


class IBuilderConfig:
    def __init__(self, logger: ILogger | None = None) -> None:
        self._pools: dict[MemoryPoolType, int] = {MemoryPoolType.WORKSPACE: 24 * 1024**3}
        self._flags: set[BuilderFlag] = set()
        self._monitor: IProgressMonitor | None = None
        self._logger = logger
        self._timing_cache: ITimingCache | None = None

    @property
    def progress_monitor(self) -> IProgressMonitor | None:
        return self._monitor

    @progress_monitor.setter
    def progress_monitor(self, monitor: IProgressMonitor | None) -> None:
        # pybind11 accepts only its own type (or None), and only once its __init__ ran
        if monitor is not None and not (
            isinstance(monitor, IProgressMonitor) and getattr(monitor, "_initialised", False)
        ):
            raise TypeError("progress_monitor(): incompatible function arguments")
        self._monitor = monitor

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
        """A cache from a buffer (empty: a new one for this device). A buffer that is not a cache of this TensorRT
        version is logged and gives an empty cache."""
        fresh = ITimingCache(_this_device(), _device.trt_version())
        if not serialized_timing_cache:
            return fresh
        try:
            document = json.loads(bytes(serialized_timing_cache).decode("utf-8"))
            if document.get("format") != TIMING_CACHE_FORMAT or document.get("tensorrt") != _device.trt_version():
                raise ValueError("not a timing cache of this TensorRT version")
            return ITimingCache(str(document["device"]), str(document["tensorrt"]), dict(document["entries"]))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            if self._logger is not None:
                _log(self._logger, ILogger.Severity.ERROR, "createTimingCache: the timing cache is invalid, ignored")
            return fresh

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: builtins.bool) -> builtins.bool:
        """Attach `cache`; a cache of another device is refused unless ignore_mismatch (False: not attached)."""
        if cache._device != _this_device() and not ignore_mismatch:
            if self._logger is not None:
                message = f"setTimingCache: the timing cache was created on another device ({cache._device}), ignored"
                _log(self._logger, ILogger.Severity.ERROR, message)
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._timing_cache

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        self._pools[MemoryPoolType(pool)] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        return self._pools.get(MemoryPoolType(pool), 0)

    def set_flag(self, flag: BuilderFlag) -> None:
        self._flags.add(BuilderFlag(flag))

    def clear_flag(self, flag: BuilderFlag) -> None:
        self._flags.discard(BuilderFlag(flag))

    def get_flag(self, flag: BuilderFlag) -> builtins.bool:
        return BuilderFlag(flag) in self._flags


class IHostMemory(bytes):
    """A serialized engine; the real one is a buffer, and so is this (``bytes(plan)``, ``len``, ``nbytes``)."""

    @property
    def nbytes(self) -> int:
        return len(self)

    @property
    def dtype(self) -> DataType:
        return DataType.UINT8


class Builder:
    def __init__(self, logger: ILogger) -> None:
        _start_cuda(logger)
        self.logger = logger
        self.platform_has_fast_fp16 = True
        self.platform_has_tf32 = _device.compute_capability() >= (8, 0)

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self.logger)

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        problem = _check_network(network)
        if problem:
            _log(self.logger, ILogger.Severity.ERROR, problem)
            return None
        if _device.cuda_init_error() is not None:  # the machine changed under a live builder (a test did it)
            _log(self.logger, ILogger.Severity.ERROR, "IBuilder::buildSerializedNetwork: Error Code 1: Cuda Runtime")
            return None
        if not _optimise(config._monitor):
            _log(
                self.logger,
                ILogger.Severity.ERROR,
                "IBuilder::buildSerializedNetwork: Error Code 2: Internal Error "
                "(Build cancelled by the progress monitor.)",
            )
            return None
        return IHostMemory(PLAN_MAGIC + json.dumps(_describe(network), sort_keys=True).encode("utf-8"))


def _optimise(monitor: IProgressMonitor | None) -> builtins.bool:
    """The optimiser's phases as TensorRT reports them to a progress monitor: a top-level phase with nested ones, each
    with steps, every step taking STANDIN_TRT_STEP_SECONDS (default 0). A step answered False cancels the build: the
    open phases finish early, as the real builder does, and the build returns None. Its size: STANDIN_TRT_STEPS
    (default 6) steps in the innermost phase. The phase names are the stand-in's own."""
    steps = max(1, int(os.environ.get("STANDIN_TRT_STEPS") or 6))
    pause = float(os.environ.get("STANDIN_TRT_STEP_SECONDS") or 0)
    if monitor is None:
        time.sleep(pause * steps * 2)
        return True
    top, layers = "Building engine", ("Graph optimization", "Tactic selection")
    monitor.phase_start(top, None, len(layers))
    try:
        for index, layer in enumerate(layers):
            monitor.phase_start(layer, top, steps)
            try:
                for step in range(steps):
                    time.sleep(pause)
                    if not monitor.step_complete(layer, step):
                        return False
            finally:
                monitor.phase_finish(layer)
            if not monitor.step_complete(top, index):
                return False
    finally:
        monitor.phase_finish(top)
    return True


def _check_network(network: INetworkDefinition) -> str | None:
    if not network._outputs:
        return "IBuilder::buildSerializedNetwork: Error Code 4: API Usage Error (Network must have at least one output)"
    names = [tensor.name for tensor in (*network._inputs, *network._outputs)]
    if len(set(names)) != len(names):
        return f"IBuilder::buildSerializedNetwork: Error Code 4: API Usage Error (Duplicate I/O tensor names {names})"
    for tensor in network._inputs:
        if tensor.dtype != DataType.FLOAT:
            return f"the stand-in TensorRT runs float32 networks only, input {tensor.name!r} is {tensor.dtype.name}"
    return None


def _describe(network: INetworkDefinition) -> dict[str, Any]:
    """The network as data: what the stand-in runtime executes."""
    names: dict[int, str] = {id(tensor): tensor.name for tensor in network._inputs}
    layers = []
    for layer in network._layers:
        names[id(layer._output)] = layer._output.name
        layers.append(
            {
                "kind": layer.type.name,
                "op": layer._spec["op"],
                "inputs": [names[id(tensor)] for tensor in layer._inputs],
                "output": layer._output.name,
                "shape": list(layer._output.shape),
            }
        )
    return {
        "format": PLAN_FORMAT,
        "tensorrt": _device.trt_version(),
        "cuda_major": _device.cuda_major(),
        "compute_capability": list(_device.compute_capability()),
        "inputs": [{"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape)} for t in network._inputs],
        "outputs": [{"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape)} for t in network._outputs],
        "layers": layers,
    }


# ------------------------------------------------------------------------------------------------------ runtime


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        _start_cuda(logger)
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: Any) -> ICudaEngine | None:
        data = bytes(serialized_engine)
        if not data.startswith(PLAN_MAGIC):
            _log(
                self.logger,
                ILogger.Severity.ERROR,
                "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion "
                "plan.header.magicTag == rt::kPLAN_MAGIC_TAG failed.)",
            )
            return None
        plan = json.loads(data[len(PLAN_MAGIC) :].decode("utf-8"))
        if plan.get("tensorrt") != _device.trt_version():
            _log(
                self.logger,
                ILogger.Severity.ERROR,
                "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion "
                f"stdVersionRead == kSERIALIZATION_VERSION failed.Version tag does not match. Note: Current Version: "
                f"{_device.trt_version()}, Serialized Engine Version: {plan.get('tensorrt')})",
            )
            return None
        return ICudaEngine(plan, self.logger)


class ICudaEngine:
    def __init__(self, plan: dict[str, Any], logger: ILogger) -> None:
        self._plan = plan
        self._logger = logger
        self._io: list[dict[str, Any]] = [
            *({**item, "mode": TensorIOMode.INPUT} for item in plan["inputs"]),
            *({**item, "mode": TensorIOMode.OUTPUT} for item in plan["outputs"]),
        ]
        self.name = "Unnamed Network 0"

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    @property
    def num_layers(self) -> int:
        return len(self._plan["layers"])

    def get_tensor_name(self, index: int) -> str:
        return str(self._io[index]["name"])

    def _find(self, name: str) -> dict[str, Any] | None:
        return next((item for item in self._io if item["name"] == name), None)

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        item = self._find(name)
        return item["mode"] if item else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> Dims:
        item = self._find(name)
        return Dims(item["shape"]) if item else Dims()

    def get_tensor_dtype(self, name: str) -> DataType:
        item = self._find(name)
        return DataType[item["dtype"]] if item else DataType.FLOAT

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def serialize(self) -> IHostMemory:
        return IHostMemory(PLAN_MAGIC + json.dumps(self._plan, sort_keys=True).encode("utf-8"))


_ACTIVATIONS: dict[str, Callable[[float], float]] = {
    "RELU": lambda x: x if x > 0 else 0.0,
    "SIGMOID": lambda x: 1.0 / (1.0 + math.exp(-x)),
    "TANH": math.tanh,
    "LEAKY_RELU": lambda x: x if x > 0 else 0.01 * x,
}
_ELEMENTWISE: dict[str, Callable[[float, float], float]] = {
    "SUM": lambda a, b: a + b,
    "PROD": lambda a, b: a * b,
    "MAX": max,
    "MIN": min,
    "SUB": lambda a, b: a - b,
    "DIV": lambda a, b: a / b,
}


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, memory: int) -> builtins.bool:
        if self.engine._find(name) is None:
            _log(
                self.engine._logger,
                ILogger.Severity.ERROR,
                f"IExecutionContext::setTensorAddress: Error Code 3: Internal Error (Given invalid tensor name: {name})",
            )
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def set_input_shape(self, name: str, shape: Sequence[int]) -> builtins.bool:
        item = self.engine._find(name)
        return item is not None and list(shape) == item["shape"]

    def execute_async_v3(self, stream_handle: int) -> builtins.bool:
        """Run the network: read the inputs at their addresses, compute layer by layer, write the outputs."""
        int(stream_handle)  # a handle is an int (0 = the legacy default stream); anything else is a TypeError
        for item in self.engine._io:
            if not self._addresses.get(item["name"]):
                _log(
                    self.engine._logger,
                    ILogger.Severity.ERROR,
                    f"IExecutionContext::enqueueV3: Error Code 3: API Usage Error (Parameter check failed, "
                    f"condition: mContext.profileObliviousBindings.at(profileObliviousIndex) || "
                    f"getPtrOrNull(mOutputAllocators, profileObliviousIndex). Neither address or allocator is set "
                    f"for output tensor {item['name']}. Call setOutputTensorAddress, setTensorAddress or "
                    f"setOutputAllocator before enqueue/execute.)",
                )
                return False
        values: dict[str, list[float]] = {}
        for item in self.engine._plan["inputs"]:
            values[item["name"]] = _device.read_floats(self._addresses[item["name"]], _volume(item["shape"]))
        for layer in self.engine._plan["layers"]:
            args = [values[name] for name in layer["inputs"]]
            if layer["kind"] == "ACTIVATION":
                function = _ACTIVATIONS[layer["op"]]
                values[layer["output"]] = [function(x) for x in args[0]]
            else:
                combine = _ELEMENTWISE[layer["op"]]
                size = _volume(layer["shape"])
                # Broadcasting here covers only equal shapes or a single value, all a self-test needs.
                left = args[0] if len(args[0]) == size else args[0] * size
                right = args[1] if len(args[1]) == size else args[1] * size
                values[layer["output"]] = [combine(a, b) for a, b in zip(left, right, strict=True)]
        for item in self.engine._plan["outputs"]:
            _device.write_floats(self._addresses[item["name"]], values[item["name"]])
        return True
