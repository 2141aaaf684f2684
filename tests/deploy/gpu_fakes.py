"""Fakes of pycuda.driver, cuda-python's runtime and tensorrt that mirror the real APIs closely enough for
deploy/trt/build.py and the engine runners to execute without a GPU.

Every class has __slots__ and explicit methods, so a name the real library does not have raises
AttributeError here too. The TensorRT names were checked against the TensorRT 10 Python API reference
(Builder, INetworkDefinition, OnnxParser, IBuilderConfig, IOptimizationProfile, ITimingCache, Runtime,
ICudaEngine, IExecutionContext); the cuda-python names are checked against the installed cuda-python by
tests/deploy/runners/cuda/test_device_io.py. One FakeGPU holds "device memory" by address for all three.

The pycuda fake models context ownership as pycuda does: a retained primary context is pushed and popped
on a stack; allocations, streams and events need a current context; a free of memory whose context was
detached is skipped (pycuda warns and leaks); detach() of a context that is not current pushes it first and
never pops it (the stray push).
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any

import numpy as np
import pytest


class FakeGPU:
    """Device memory by address, and a record of what the code under test did wrong."""

    __slots__ = (
        "events",
        "host_frees",
        "max_depth",
        "memory",
        "next_address",
        "problems",
        "retains",
        "stack",
        "streams",
    )

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.next_address = 4096
        self.problems: list[str] = []
        self.stack: list[Any] = []  # pycuda's context stack
        self.retains = 0  # primary-context retains not yet released
        self.max_depth = 0
        self.streams = 0  # live streams (cuda-python)
        self.events = 0  # live events (cuda-python)
        self.host_frees = 0  # explicit frees of pycuda's page-locked host memory

    def alloc(self, nbytes: int) -> int:
        address = self.next_address
        self.next_address += max(nbytes, 1) + 256
        self.memory[address] = np.zeros(0, dtype=np.uint8)
        return address

    def write(self, address: int, data: np.ndarray) -> None:
        if address not in self.memory:
            self.problems.append(f"write to unallocated address {address}")
        self.memory[address] = np.array(data, copy=True)

    def read(self, address: int) -> np.ndarray:
        if address not in self.memory:
            self.problems.append(f"read of unallocated address {address}")
            return np.zeros(0)
        return self.memory[address]

    def clean(self) -> bool:
        """Nothing allocated, pushed or leaked; no stream or event left alive. (A retained primary context
        may stay retained: it is the process's one context, as pycuda.autoprimaryctx keeps it.)"""
        return not (self.memory or self.stack or self.problems or self.streams or self.events)


# ----------------------------------------------------------------------------------------------- pycuda


def fake_pycuda(gpu: FakeGPU) -> types.ModuleType:
    """A pycuda.driver module over `gpu`."""

    class Error(Exception):
        pass

    def need_context(what: str) -> Any:
        if not gpu.stack:
            raise Error(f"{what}: no currently active context")
        return gpu.stack[-1]

    class Context:
        __slots__ = ("valid",)

        def __init__(self) -> None:
            self.valid = True

        def push(self) -> None:
            gpu.stack.append(self)
            gpu.max_depth = max(gpu.max_depth, len(gpu.stack))

        @staticmethod
        def pop() -> None:
            if not gpu.stack:
                raise Error("context::pop: cannot pop non-current context")
            gpu.stack.pop()

        def detach(self) -> None:
            if not gpu.stack or gpu.stack[-1] is not self:
                gpu.stack.append(self)  # pycuda pushes it to release it, and the release does not pop
            gpu.retains -= 1
            self.valid = False

    class Device:
        __slots__ = ("index",)

        def __init__(self, index: int) -> None:
            self.index = index

        @staticmethod
        def count() -> int:
            return 1

        def retain_primary_context(self) -> Context:
            gpu.retains += 1
            return Context()

    class DeviceAllocation:
        __slots__ = ("address", "context", "freed")

        def __init__(self, nbytes: int) -> None:
            self.context = need_context("mem_alloc")
            self.address = gpu.alloc(nbytes)
            self.freed = False

        def __int__(self) -> int:
            return self.address

        def free(self) -> None:
            if not self.context.valid:
                gpu.problems.append(f"free of {self.address} skipped: its context was detached")
            elif not self.freed:
                gpu.memory.pop(self.address, None)
            self.freed = True

    class HostAllocation(bytearray):
        """Page-locked host memory; pycuda's pagelocked_empty returns an array whose .base is one."""

        def free(self) -> None:
            gpu.host_frees += 1

    class Stream:
        __slots__ = ("context", "handle")

        def __init__(self, flags: int = 0) -> None:
            self.context = need_context("Stream")
            self.handle = 7

        def synchronize(self) -> None: ...

    class Event:
        __slots__ = ("context",)

        def __init__(self, flags: int = 0) -> None:
            self.context = need_context("Event")

        def record(self, stream: Any = None) -> Event:
            return self

        def synchronize(self) -> Event:
            return self

        def time_till(self, end: Event) -> float:
            return 0.5

    def init(flags: int = 0) -> None: ...

    def pagelocked_empty(shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> np.ndarray:
        shape = tuple(shape) if isinstance(shape, tuple | list) else (shape,)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        return np.ndarray(shape, dtype, buffer=HostAllocation(max(nbytes, 1)))

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        return DeviceAllocation(nbytes)

    def memcpy_htod_async(dest: Any, src: np.ndarray, stream: Any = None) -> None:
        need_context("memcpy_htod_async")
        gpu.write(int(dest), src)

    def memcpy_dtoh_async(dest: np.ndarray, src: Any, stream: Any = None) -> None:
        need_context("memcpy_dtoh_async")
        dest[...] = gpu.read(int(src)).reshape(dest.shape)

    def memcpy_dtod_async(dest: Any, src: Any, size: int, stream: Any = None) -> None:
        gpu.write(int(dest), gpu.read(int(src)))

    driver = types.ModuleType("pycuda.driver")
    for name, value in dict(locals()).items():
        if name[0].isupper() or name in ("init", "pagelocked_empty", "mem_alloc") or name.startswith("memcpy"):
            setattr(driver, name, value)
    return driver


# ------------------------------------------------------------------------------------------ cuda-python


def fake_cudart(gpu: FakeGPU, device_count: int = 1) -> types.ModuleType:
    """A cuda.bindings.runtime module over `gpu`: every call returns (error, *values), as the real one does."""
    import enum

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1
        cudaErrorInsufficientDriver = 35

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2
        cudaMemcpyDeviceToDevice = 3

    ok = cudaError_t.cudaSuccess
    host: dict[int, Any] = {}

    def cudaGetErrorString(err: Any) -> tuple[Any, bytes]:
        return ok, b"CUDA driver version is insufficient for CUDA runtime version"

    def cudaGetDeviceCount() -> tuple[Any, int]:
        if device_count < 0:
            return cudaError_t.cudaErrorInsufficientDriver, 0
        return ok, device_count

    def cudaSetDevice(device: int) -> tuple[Any]:
        return (ok,)

    class cudaDeviceProp:
        __slots__ = ("major", "minor", "name")

        def __init__(self) -> None:
            self.name, self.major, self.minor = b"NVIDIA H200", 9, 0

    def cudaGetDeviceProperties(device: int) -> tuple[Any, cudaDeviceProp]:
        return ok, cudaDeviceProp()

    def cudaStreamCreate() -> tuple[Any, int]:
        gpu.streams += 1
        return ok, 11

    def cudaStreamDestroy(stream: Any) -> tuple[Any]:
        gpu.streams -= 1
        return (ok,)

    def cudaStreamSynchronize(stream: Any) -> tuple[Any]:
        return (ok,)

    def cudaEventCreate() -> tuple[Any, int]:
        gpu.events += 1
        return ok, 21

    def cudaEventDestroy(event: Any) -> tuple[Any]:
        gpu.events -= 1
        return (ok,)

    def cudaEventRecord(event: Any, stream: Any) -> tuple[Any]:
        return (ok,)

    def cudaEventSynchronize(event: Any) -> tuple[Any]:
        return (ok,)

    def cudaEventElapsedTime(start: Any, end: Any) -> tuple[Any, float]:
        return ok, 0.25

    def cudaMalloc(size: int) -> tuple[Any, int]:
        return ok, gpu.alloc(size)

    def cudaFree(ptr: int) -> tuple[Any]:
        if gpu.memory.pop(int(ptr), None) is None:
            return (cudaError_t.cudaErrorInvalidValue,)
        return (ok,)

    def cudaMallocHost(size: int) -> tuple[Any, int]:
        block = (np.zeros(size, dtype=np.uint8), size)
        host[block[0].ctypes.data] = block
        return ok, block[0].ctypes.data

    def cudaFreeHost(ptr: int) -> tuple[Any]:
        return (ok,) if host.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)

    def cudaMemcpyAsync(dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[Any]:
        import ctypes

        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            gpu.write(int(dst), np.frombuffer((ctypes.c_byte * count).from_address(src), dtype=np.uint8).copy())
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            data = gpu.read(int(src)).view(np.uint8).reshape(-1)[:count]
            ctypes.memmove(dst, data.ctypes.data, data.nbytes)
        else:
            gpu.write(int(dst), gpu.read(int(src)))
        return (ok,)

    runtime = types.ModuleType("cuda.bindings.runtime")
    for name, value in dict(locals()).items():
        if name.startswith("cuda"):
            setattr(runtime, name, value)
    return runtime


# --------------------------------------------------------------------------------------------- tensorrt


def fake_tensorrt(gpu: FakeGPU, version: str = "10.9.0", gpu_tag: bytes = b"H200") -> types.ModuleType:
    """A tensorrt module: a builder that 'builds' from an ONNX file, and engines whose network doubles the
    first ten input values of each sample (read and written through `gpu`'s memory)."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # importlib.util.find_spec works on it
    trt.__version__ = version  # type: ignore[attr-defined]
    log: list[str] = []
    trt.log = log  # type: ignore[attr-defined]  # what the fake was asked to do, for assertions

    class Logger:
        __slots__ = ("level",)
        WARNING = 2
        ERROR = 1

        def __init__(self, level: int = 2) -> None:
            self.level = level

    class NetworkDefinitionCreationFlag:
        __slots__ = ()
        STRONGLY_TYPED = 5

    class MemoryPoolType:
        __slots__ = ()
        WORKSPACE = 0

    class TensorIOMode:
        __slots__ = ()
        INPUT = "INPUT"
        OUTPUT = "OUTPUT"

    class DataType:
        __slots__ = ()
        FLOAT = "FLOAT"

    def nptype(dtype: Any) -> type:
        return np.float32

    class ITensor:
        __slots__ = ("name", "shape")

        def __init__(self, name: str, shape: tuple[int, ...]) -> None:
            self.name, self.shape = name, shape

    class INetworkDefinition:
        __slots__ = ("inputs",)

        def __init__(self) -> None:
            self.inputs: list[ITensor] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, index: int) -> ITensor:
            return self.inputs[index]

    class ParserError:
        __slots__ = ("text",)

        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

    class OnnxParser:
        __slots__ = ("errors", "network")

        def __init__(self, network: INetworkDefinition, logger: Logger) -> None:
            self.network, self.errors = network, []

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> ParserError:
            return self.errors[index]

        def parse_from_file(self, model: str) -> bool:
            import onnx

            graph = onnx.load(model).graph
            inits = {t.name: t.data_type for t in graph.initializer}
            for node in graph.node:  # the TensorRT 10 parser's refusal the INT8 export must avoid
                if node.op_type == "DequantizeLinear" and inits.get(node.input[0]) == onnx.TensorProto.INT32:
                    self.errors.append(ParserError(f"{node.name}: only activation types allowed as input"))
            if self.errors:
                return False
            dims = graph.input[0].type.tensor_type.shape.dim
            shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
            self.network.inputs.append(ITensor(graph.input[0].name, shape))
            return True

    class IOptimizationProfile:
        __slots__ = ("shapes",)

        def __init__(self) -> None:
            self.shapes: dict[str, tuple[Any, ...]] = {}

        def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:
            self.shapes[input] = (tuple(min), tuple(opt), tuple(max))

    class ITimingCache:
        __slots__ = ("data",)

        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data

    class IBuilderConfig:
        __slots__ = ("_opt_level", "cache", "pools", "profiles")

        def __init__(self) -> None:
            self.pools: dict[int, int] = {}
            self.profiles: list[IOptimizationProfile] = []
            self.cache: ITimingCache | None = None
            self._opt_level = 3

        @property
        def builder_optimization_level(self) -> int:
            return self._opt_level

        @builder_optimization_level.setter
        def builder_optimization_level(self, level: int) -> None:
            self._opt_level = level

        def set_memory_pool_limit(self, pool: int, pool_size: int) -> None:
            self.pools[pool] = pool_size

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
            return ITimingCache(bytes(serialized_timing_cache))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            if cache.data and cache.data != b"cache:" + gpu_tag and not ignore_mismatch:
                log.append("timing cache refused")
                return False
            self.cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache:
            assert self.cache is not None, "get_timing_cache before set_timing_cache"
            return ITimingCache(b"cache:" + gpu_tag)

    class Builder:
        __slots__ = ("logger",)

        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            log.append(f"create_network({flags})")
            return INetworkDefinition()

        def create_builder_config(self) -> IBuilderConfig:
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
            if config.cache is None:
                return None
            log.append(f"build profiles={[p.shapes for p in config.profiles]}")
            return b"engine:" + network.inputs[0].name.encode()

    class IExecutionContext:
        __slots__ = ("addresses", "profiles", "shape")

        def __init__(self) -> None:
            self.shape: tuple[int, ...] = ()
            self.addresses: dict[str, int] = {}
            self.profiles: list[int] = []

        def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
            self.profiles.append(profile_index)
            return True

        def set_input_shape(self, name: str, shape: Any) -> bool:
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.shape if name == "input" else (self.shape[0], 10)

        def set_tensor_address(self, name: str, memory: int) -> bool:
            self.addresses[name] = memory
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            x = gpu.read(self.addresses["input"]).view(np.float32).reshape(self.shape)
            gpu.write(self.addresses["logits"], 2 * x.reshape(x.shape[0], -1)[:, :10])
            return True

    class ICudaEngine:
        __slots__ = ("context",)
        num_io_tensors = 2
        num_optimization_profiles = 2

        def __init__(self) -> None:
            self.context = IExecutionContext()

        def get_tensor_name(self, index: int) -> str:
            return ("input", "logits")[index]

        def get_tensor_mode(self, name: str) -> str:
            return TensorIOMode.INPUT if name == "input" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name: str) -> str:
            return DataType.FLOAT

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
            low, opt, high = ((1, 1, 8), (9, 64, 256))[profile_index]
            return [(low, 3, 4, 4), (opt, 3, 4, 4), (high, 3, 4, 4)]

        def create_execution_context(self) -> IExecutionContext:
            return self.context

    class Runtime:
        __slots__ = ("logger",)

        def __init__(self, logger: Logger) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
            return ICudaEngine() if bytes(serialized_engine).startswith(b"engine:") else None

    for name, value in dict(locals()).items():
        if name[0].isupper() or name == "nptype":
            setattr(trt, name, value)
    return trt


# ------------------------------------------------------------------------------------------- installing


def install_pycuda(monkeypatch: pytest.MonkeyPatch, fake: FakeGPU | None) -> None:
    """fake None: pycuda is not installed."""
    driver = fake_pycuda(fake) if fake else None
    package = types.ModuleType("pycuda")
    package.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", package if fake else None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)


def install_cudart(monkeypatch: pytest.MonkeyPatch, fake: FakeGPU | None, devices: int = 1) -> None:
    runtime = fake_cudart(fake, devices) if fake else None
    bindings = types.ModuleType("cuda.bindings")
    bindings.runtime = runtime  # type: ignore[attr-defined]
    cuda = types.ModuleType("cuda")
    cuda.bindings = bindings  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda", cuda if fake else None)
    monkeypatch.setitem(sys.modules, "cuda.bindings", bindings if fake else None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    monkeypatch.setitem(sys.modules, "cuda.cudart", None)
