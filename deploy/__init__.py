"""cplitool's deployment side: ONNX/TensorRT export, backend runners, benchmarking, regression gates, reports.

deploy/ may use toolchain's models, artifacts and run directories, never its training code.
"""

import os

# ONNX Runtime (1.2x) otherwise writes a device id and a telemetry database under
# $XDG_CACHE_HOME or ~/.cache/Microsoft/DeveloperTools/.onnxruntime on every import; a user who wants it
# sets ORT_DISABLE_TELEMETRY=0. Set before any module here imports onnxruntime.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
