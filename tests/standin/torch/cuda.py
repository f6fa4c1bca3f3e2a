"""Stand-in for ``torch.cuda``: device queries answered from the simulated machine.

Errors mirror what real torch raises on a machine without a usable GPU, so
product code that guards those calls is exercised the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import _machine


class OutOfMemoryError(RuntimeError):
    """Same name and base class as ``torch.cuda.OutOfMemoryError``."""


@dataclass(frozen=True)
class _CudaDeviceProperties:
    name: str
    major: int
    minor: int
    total_memory: int
    multi_processor_count: int

    def __repr__(self) -> str:
        return (
            f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
            f"total_memory={self.total_memory // (1024 * 1024)}MB, "
            f"multi_processor_count={self.multi_processor_count})"
        )


# Peak-memory bookkeeping. The stand-in streamdiffusion reports what a build
# "allocated" through _record_allocation so max_memory_allocated() looks real.
_allocated = 0
_peak = 0
_current_device = 0


def _lazy_init() -> None:
    # Real torch: a CPU-only wheel fails with AssertionError, a CUDA wheel on a
    # machine without a driver/GPU fails with RuntimeError.
    if _machine.cuda_version() is None:
        raise AssertionError("Torch not compiled with CUDA enabled")
    if not _machine.cuda_on() or _machine.gpu_count() == 0:
        raise RuntimeError(
            "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU "
            "and installed a driver from http://www.nvidia.com/Download/index.aspx"
        )


def _index(device: object = None) -> int:
    _lazy_init()
    if device is None:
        index = _current_device
    elif isinstance(device, int):
        index = device
    else:
        text = str(device)
        index = int(text.split(":", 1)[1]) if ":" in text else _current_device
    if not 0 <= index < _machine.gpu_count():
        raise AssertionError("Invalid device id")
    return index


def init() -> None:
    """Initialise CUDA now: raises the precise reason (CPU-only wheel, no driver) that is_available() hides."""
    _lazy_init()


def is_available() -> bool:
    return _machine.gpu_count() > 0


def device_count() -> int:
    return _machine.gpu_count()


def current_device() -> int:
    _lazy_init()
    return _current_device


def set_device(device: object) -> None:
    global _current_device
    _current_device = _index(device)


def get_device_name(device: object = None) -> str:
    _index(device)
    return _machine.gpu_name()


def get_device_capability(device: object = None) -> tuple[int, int]:
    _index(device)
    return _machine.capability()


def get_device_properties(device: object = None) -> _CudaDeviceProperties:
    _index(device)
    major, minor = _machine.capability()
    return _CudaDeviceProperties(_machine.gpu_name(), major, minor, _machine.vram_total(), 128)


def mem_get_info(device: object = None) -> tuple[int, int]:
    _index(device)
    free = max(0, _machine.vram_free() - _allocated)
    return free, _machine.vram_total()


def memory_allocated(device: object = None) -> int:
    _index(device)
    return _allocated


def max_memory_allocated(device: object = None) -> int:
    _index(device)
    return _peak


def reset_peak_memory_stats(device: object = None) -> None:
    global _peak
    _index(device)
    _peak = _allocated


def synchronize(device: object = None) -> None:
    _index(device)


# Stream handles: the legacy default stream is 0 (as cudaStreamLegacy is in torch); new streams get fake but
# distinct non-zero handles. The stand-in runs everything synchronously, so a stream only has to exist.
_handles = itertools.count(0x7F0000001000, 0x10)


class Stream:
    """Same surface as ``torch.cuda.Stream`` that code hands to TensorRT: ``cuda_stream``, ``synchronize()``."""

    def __init__(self, device: object = None, priority: int = 0, _handle: int | None = None) -> None:
        self.device_index = _index(device)
        self.priority = priority
        self.cuda_stream: int = next(_handles) if _handle is None else _handle

    def synchronize(self) -> None:
        _lazy_init()

    def query(self) -> bool:
        return True

    def wait_stream(self, stream: Stream) -> None:
        _lazy_init()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other.cuda_stream == self.cuda_stream

    def __hash__(self) -> int:
        return hash(self.cuda_stream)

    def __repr__(self) -> str:
        return f"<torch.cuda.Stream device=cuda:{self.device_index} cuda_stream={self.cuda_stream:#x}>"


_current_streams: dict[int, Stream] = {}


def default_stream(device: object = None) -> Stream:
    index = _index(device)
    return Stream(index, _handle=0)


def current_stream(device: object = None) -> Stream:
    index = _index(device)
    return _current_streams.get(index) or default_stream(index)


def set_stream(stream: Stream) -> None:
    _current_streams[stream.device_index] = stream


@contextmanager
def stream(chosen: Stream | None) -> Iterator[Stream | None]:
    """``with torch.cuda.stream(s):`` makes ``s`` the current stream of its device for the block."""
    if chosen is None:
        yield None
        return
    before = _current_streams.get(chosen.device_index)
    _current_streams[chosen.device_index] = chosen
    try:
        yield chosen
    finally:
        if before is None:
            _current_streams.pop(chosen.device_index, None)
        else:
            _current_streams[chosen.device_index] = before


def empty_cache() -> None:
    # Real torch silently does nothing when CUDA was never initialised.
    return None


def _record_allocation(nbytes: int) -> None:
    """Private hook: pretend ``nbytes`` were allocated and freed again (raises the peak)."""
    global _peak
    _peak = max(_peak, _allocated + max(0, int(nbytes)))
