"""Checked ONNX export: torch.onnx export, FP16 and INT8 (Q/DQ) variants, parity against PyTorch, the export stage."""
