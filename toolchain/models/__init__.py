"""Model registry and architectures. `create_model(name, ...)` is the only way the rest of cplitool builds one."""

from cplitool.toolchain.models.registry import create_model, input_shape, list_models

__all__ = ["create_model", "input_shape", "list_models"]
