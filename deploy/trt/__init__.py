"""TensorRT engines from the exported ONNX files; `tensorrt` is imported only when an engine is built or loaded."""
