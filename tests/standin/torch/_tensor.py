"""A minimal dense tensor for the stand-in torch: enough to hand a buffer to the stand-in TensorRT and read it back.

The elements live in a ctypes array, so ``data_ptr()`` is a real address in this process. That is what makes the
stand-in honest: TensorRT only ever sees pointers (``set_tensor_address(name, tensor.data_ptr())``), and the stand-in
TensorRT reads and writes the numbers at that address exactly as the real one reads device memory. "cuda" tensors are
host memory too; the device string only decides which checks run (a CPU-only wheel or no GPU fails like real torch).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Sequence
from typing import Any

# dtype name -> ctypes element type. float16/bfloat16 have no ctypes type and are not needed by anything here.
_CTYPES: dict[str, Any] = {
    "float32": ctypes.c_float,
    "float64": ctypes.c_double,
    "int64": ctypes.c_int64,
    "uint8": ctypes.c_uint8,
}


class device:  # lowercase on purpose: same name as torch.device
    type: str
    index: int | None

    def __init__(self, spec: str | device | int, index: int | None = None) -> None:
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if isinstance(spec, int):
            self.type, self.index = "cuda", spec
            return
        kind, _, number = str(spec).partition(":")
        if kind not in ("cpu", "cuda"):
            raise RuntimeError(f"Expected one of cpu, cuda device type at start of device string: {spec}")
        self.type = kind
        self.index = int(number) if number else index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def _resolve_device(spec: Any) -> device:
    where = device(spec if spec is not None else "cpu")
    if where.type == "cuda":
        from torch import cuda

        # Real torch initialises CUDA on the first CUDA allocation and fails there on a CPU-only wheel or no driver.
        cuda._index(where.index)
        if where.index is None:
            where = device("cuda", cuda.current_device())
    return where


def _element_type(dtype: Any) -> Any:
    name = getattr(dtype, "_name", None)
    if name not in _CTYPES:
        raise TypeError(f"the stand-in torch holds float32, float64, int64 and uint8 tensors only, not {dtype!r}")
    return _CTYPES[name]


def _flatten(data: Any) -> tuple[list[Any], tuple[int, ...]]:
    if isinstance(data, Tensor):
        return data._flat(), data.shape
    if isinstance(data, (list, tuple)):
        if not data:
            return [], (0,)
        parts = [_flatten(item) for item in data]
        shapes = {shape for _, shape in parts}
        if len(shapes) != 1:
            raise ValueError(f"expected sequence of equal length lists, got shapes {sorted(shapes)}")
        return [value for values, _ in parts for value in values], (len(data), *parts[0][1])
    return [data], ()


class Tensor:
    """A contiguous tensor whose storage is a ctypes array (the address TensorRT is given)."""

    def __init__(self, values: Iterable[Any], shape: Sequence[int], dtype: Any, where: device) -> None:
        from torch import float32

        self.dtype = dtype if dtype is not None else float32
        self.shape: tuple[int, ...] = tuple(int(size) for size in shape)
        self.device = where
        count = 1
        for size in self.shape:
            count *= size
        element = _element_type(self.dtype)
        self._storage = (element * count)()
        items = list(values)
        if items:
            if len(items) != count:
                raise RuntimeError(f"shape {list(self.shape)} is invalid for input of size {len(items)}")
            for index, value in enumerate(items):
                self._storage[index] = value

    # ---- what callers of the real API use
    def data_ptr(self) -> int:
        return ctypes.addressof(self._storage) if self.numel() else 0

    def numel(self) -> int:
        return len(self._storage)

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return len(self.shape)

    def element_size(self) -> int:
        return ctypes.sizeof(_element_type(self.dtype))

    @property
    def nbytes(self) -> int:
        return self.numel() * self.element_size()

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def to(self, target: Any = None, dtype: Any = None) -> Tensor:
        where = _resolve_device(target) if target is not None else self.device
        return Tensor(self._flat(), self.shape, dtype or self.dtype, where)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Tensor:
        return self.to(device("cuda", index))

    def clone(self) -> Tensor:
        return Tensor(self._flat(), self.shape, self.dtype, self.device)

    def tolist(self) -> Any:
        values = self._flat()
        if not self.shape:
            return values[0]
        return _nest(values, self.shape)

    def item(self) -> Any:
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted to Scalar")
        return self._flat()[0]

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        where = "" if self.device.type == "cpu" else f", device='{self.device}'"
        return f"tensor({self.tolist()}{where}, dtype={self.dtype!r})"

    def _flat(self) -> list[Any]:
        return list(self._storage)


def _nest(values: list[Any], shape: tuple[int, ...]) -> list[Any]:
    if len(shape) == 1:
        return list(values)
    step = len(values) // shape[0] if shape[0] else 0
    return [_nest(values[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def _shape(size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        return tuple(size[0])
    return tuple(size)


def tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    from torch import float32, int64

    values, shape = _flatten(data)
    if dtype is None:
        dtype = int64 if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values) else float32
    return Tensor(values, shape, dtype, _resolve_device(device))


def empty(*size: Any, dtype: Any = None, device: Any = None) -> Tensor:
    # ctypes arrays start zeroed; real torch.empty leaves garbage, which no caller may rely on either way.
    return Tensor([], _shape(size), dtype, _resolve_device(device))


def zeros(*size: Any, dtype: Any = None, device: Any = None) -> Tensor:
    return Tensor([], _shape(size), dtype, _resolve_device(device))


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None, device: Any = None) -> Tensor:
    from torch import float32, int64

    if end is None:
        start, end = 0, start
    values: list[Any] = []
    value = start
    while (step > 0 and value < end) or (step < 0 and value > end):
        values.append(value)
        value += step
    if dtype is None:
        dtype = int64 if all(isinstance(v, int) for v in (start, end, step)) else float32
    return Tensor(values, (len(values),), dtype, _resolve_device(device))
