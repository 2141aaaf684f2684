"""TensorRT engine building with TensorRT's Python API (imported only when a build is asked for).

The network is strongly typed: precision comes from the ONNX graph itself (FP32, FP16 graph, or INT8
Q/DQ nodes), never from builder flags, which TensorRT 10.12 deprecates and TensorRT 11 removes. On
TensorRT 10 the STRONGLY_TYPED creation flag is set; TensorRT 11 is always strongly typed and ignores it.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any

from cplitool.deploy.trt.host import current_host, require_tensorrt
from cplitool.deploy.trt.profiles import Profile, profiles_from_section
from cplitool.deploy.trt.sidecar import Sidecar
from cplitool.toolchain.errors import CplitoolError, MissingDependencyError
from cplitool.toolchain.io import atomic_write, sha256_file
from cplitool.toolchain.progress import console
from cplitool.toolchain.recipe.sections import TrtSection


def network_flags(trt: ModuleType) -> int:
    """Creation flags for a strongly typed network on TensorRT 10 and 11."""
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise MissingDependencyError(
            f"TensorRT {trt.__version__} is too old: strongly typed networks need TensorRT >= 10"
        )
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if major >= 11 or flag is None else 1 << int(flag)


def attach_timing_cache(config: Any, path: Path) -> None:
    """Give the build the timing cache at `path`; one from another GPU or TensorRT version is refused by
    TensorRT (set_timing_cache returns False), so warn and start a fresh one, which the build then saves."""
    saved = path.read_bytes() if path.is_file() else b""
    if config.set_timing_cache(config.create_timing_cache(saved), ignore_mismatch=False):
        return
    console.print(
        f"[yellow]warning[/yellow]: {path}: timing cache from another GPU or TensorRT version; "
        "building with a fresh cache (it replaces this file)",
        highlight=False,
    )
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise CplitoolError(f"{path}: TensorRT refused even an empty timing cache")


def build_engine(
    onnx_path: str | Path, engine_path: str | Path, cfg: TrtSection, timing_cache: str | Path, precision: str
) -> Sidecar:
    """Build `engine_path` from `onnx_path` with the recipe's profiles, workspace and optimization level;
    the timing cache file is read before and rewritten after the build, so later builds reuse its tactics."""
    onnx_path, engine_path, timing_cache = Path(onnx_path), Path(engine_path), Path(timing_cache)
    trt = require_tensorrt()
    host = current_host()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
        raise CplitoolError(f"{onnx_path}: TensorRT's ONNX parser rejected the graph: {errors}")
    if network.num_inputs != 1:
        raise CplitoolError(f"{onnx_path}: expected one input, the graph has {network.num_inputs}")
    inp = network.get_input(0)
    sample_shape = tuple(int(d) for d in inp.shape)[1:]
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    config.builder_optimization_level = cfg.opt_level
    if inp.shape[0] == -1:  # dynamic batch: one profile per recipe range or batch
        profiles = profiles_from_section(cfg)
        for prof in profiles:
            p = builder.create_optimization_profile()
            p.set_shape(inp.name, *prof.shapes(sample_shape))
            config.add_optimization_profile(p)
    else:
        profiles = [Profile(int(inp.shape[0]), int(inp.shape[0]), int(inp.shape[0]))]
    attach_timing_cache(config, timing_cache)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise CplitoolError(f"{onnx_path}: TensorRT failed to build an engine (see the TensorRT messages above)")
    atomic_write(engine_path, lambda p: p.write_bytes(memoryview(serialized)))
    atomic_write(timing_cache, lambda p: p.write_bytes(memoryview(config.get_timing_cache().serialize())))
    sidecar = Sidecar(
        engine=engine_path.name,
        onnx=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path),
        precision=precision,
        input_name=str(inp.name),
        sample_shape=list(sample_shape),
        profiles=[p.to_dict() for p in profiles],
        tensorrt_version=host.tensorrt_version,
        gpu_name=host.gpu_name,
        compute_capability=host.compute_capability,
        build_seconds=round(seconds, 3),
        opt_level=cfg.opt_level,
        workspace_mb=cfg.workspace_mb,
        timing_cache=str(timing_cache),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    sidecar.write(engine_path)
    return sidecar
