"""`cplitool.load`: a model from a cplitool artifact, or saved weights into the user's own module."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from cplitool.toolchain.artifacts import FORMAT, artifact_from_payload, fit_to_state_dict
from cplitool.toolchain.checkpoints import CheckpointOptions, fit_keys, load_into, pick_state
from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.io import safe_load


def load(path: str | Path, model: nn.Module | None = None, checkpoint_key: str = "") -> nn.Module:
    """The model saved at `path`, in eval mode on the CPU; loading is weights-only and never modifies the file.

    Without `model`, a cplitool artifact (`runs/<name>/pruned.pt`, `finetuned.pt`, `dense.pt`) rebuilds its
    own registered architecture at its saved widths. With `model` (an instance of the dense architecture),
    a copy of it has its convs, norms and linears resized to the saved widths before the weights load, so
    a pruned model's state_dict reloads into a freshly built dense module. The file may be an artifact, a
    plain state_dict or a training checkpoint in the layouts `model.checkpoint` accepts (nested under
    `state_dict`, `model`, ..., or `checkpoint_key`; `module.`-style prefixes; safetensors).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: file not found")
    payload = safe_load(path)
    if model is None:
        if payload.get("format") != FORMAT:
            raise UsageError(
                f"{path}: saved weights, not a cplitool artifact: pass the architecture too, "
                "cplitool.load(path, model=MyNet())"
            )
        loaded, _ = artifact_from_payload(payload, path)
        return loaded
    fitted = copy.deepcopy(model)  # the caller's module stays as it was
    state = fit_keys(pick_state(payload, checkpoint_key, path), fitted, CheckpointOptions(checkpoint_key))
    fit_to_state_dict(fitted, state)
    return load_into(fitted, state, path, type(model).__name__).eval()
