"""cplitool's deployment side: ONNX/TensorRT export, backend runners, benchmarking, regression gates, reports.

deploy/ may use toolchain's models, artifacts and run directories, never its training code.
"""
