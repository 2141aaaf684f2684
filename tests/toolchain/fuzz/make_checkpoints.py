"""Regenerate the crafted-checkpoint corpus: `python -m tests.toolchain.fuzz.make_checkpoints`.

Each file is something a user (or an attacker) might hand to `--artifact` or `model.checkpoint`; the
expected fragment of the one-line error is listed in checkpoints.toml beside it. The malicious pickles
would create `pwned_by_checkpoint` in the current directory if anything in them ever ran.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cplitool.toolchain.artifacts import FORMAT
from cplitool.toolchain.models.vgg import VGG

HERE = Path(__file__).parent
OUT = HERE / "checkpoints"
MARKER = "pwned_by_checkpoint"


class Shell:
    """Unpickling calls os.system: a classic malicious checkpoint."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {MARKER}",))


class Evaluate:
    def __reduce__(self) -> tuple[Any, ...]:
        return (eval, (f"open({MARKER!r}, 'w')",))


class Popen:
    def __reduce__(self) -> tuple[Any, ...]:
        import subprocess

        return (subprocess.Popen, (["touch", MARKER],))


class Touch:
    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(MARKER),))


def tiny_state() -> dict[str, torch.Tensor]:
    """quick_vgg's keys at width 2 (a heavily pruned model): a few hundred bytes of weights."""
    torch.manual_seed(0)
    return VGG([2, 2, "M", 2, 2, "M", 2], 10, 1).state_dict()


def artifact(**changes: Any) -> dict[str, Any]:
    payload = {
        "format": FORMAT,
        "arch": "quick_vgg",
        "num_classes": 10,
        "kwargs": {},
        "plan": {},
        "metrics": {},
        "state_dict": tiny_state(),
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not _DROP}


_DROP = object()


def with_state(**changes: Any) -> dict[str, torch.Tensor]:
    state = tiny_state()
    state.update(changes)
    return state


def torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def pickle_bytes(obj: Any, protocol: int) -> bytes:
    return pickle.dumps(obj, protocol=protocol)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)  # reproducible bytes
    return buf.getvalue()


def safetensors_header(length: int, header: bytes) -> bytes:
    return struct.pack("<Q", length) + header


rng = random.Random(0)
GOOD = torch_bytes(artifact())
# file name -> (bytes, fragment the error line must contain); "" means the file must load (exit 0)
CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "good_artifact.pt": (lambda: GOOD, ""),
    "random_bytes.pt": (lambda: bytes(rng.randrange(256) for _ in range(4096)), "not a checkpoint"),
    "random_bytes.pth": (lambda: bytes(rng.randrange(256) for _ in range(333)), "not a checkpoint"),
    "empty.pt": (lambda: b"", "corrupt"),
    "text.pt": (lambda: b"this is a README, not weights\n", "not a checkpoint"),
    "json.pt": (lambda: b'{"state_dict": {}}', "not a checkpoint"),
    "truncated_half.pt": (lambda: GOOD[: len(GOOD) // 2], "corrupt"),
    "truncated_tail.pt": (lambda: GOOD[:-40], "corrupt"),
    "flipped_bytes.pt": (lambda: GOOD[:200] + bytes(b ^ 0xFF for b in GOOD[200:600]) + GOOD[600:], "corrupt"),
    "foreign_zip.pt": (lambda: zip_bytes({"hello.txt": b"hi"}), "corrupt"),
    "zip_bad_pickle.pt": (lambda: zip_bytes({"archive/data.pkl": b"\x80\x02garbage"}), "corrupt"),
    "pickle_garbage.pt": (lambda: b"\x80\x04" + bytes(range(200)), "corrupt"),
    "a_tensor.pt": (lambda: torch_bytes(torch.ones(3)), "expected a dict of tensors"),
    "a_list.pt": (lambda: torch_bytes([torch.ones(3)]), "expected a dict of tensors"),
    "no_tensors.pt": (lambda: torch_bytes({"epoch": 3, "best_acc": 91.0}), "no tensors"),
    "int_keys.pt": (lambda: torch_bytes({0: torch.ones(3), 1: torch.ones(2)}), "non-string key"),
    "mixed_keys.pt": (lambda: torch_bytes({"features.0.weight": torch.ones(2), 7: torch.ones(1)}), "non-string key"),
    "state_dict_string.pt": (lambda: torch_bytes({"epoch": 1, "state_dict": "weights.bin"}), "no tensors found"),
    "model_list.pt": (lambda: torch_bytes({"model": [1, 2, 3]}), "no tensors found"),
    "plain_wrong_shapes.pt": (lambda: torch_bytes(tiny_state()), "does not fit the architecture"),
    "plain_1d_conv.pt": (
        lambda: torch_bytes({"features.0.weight": torch.ones(32)}),
        "does not fit the architecture",
    ),
    "complex_weights.pt": (lambda: torch_bytes({"w": torch.ones(2, dtype=torch.complex64)}), "expected dense"),
    "artifact_no_arch.pt": (lambda: torch_bytes(artifact(arch=_DROP)), "no 'arch'"),
    "artifact_arch_int.pt": (lambda: torch_bytes(artifact(arch=5)), "'arch' is a int"),
    "artifact_arch_unknown.pt": (lambda: torch_bytes(artifact(arch="resnet9000")), "unknown model"),
    "artifact_num_classes_neg.pt": (lambda: torch_bytes(artifact(num_classes=-5)), "num_classes is -5"),
    "artifact_num_classes_str.pt": (lambda: torch_bytes(artifact(num_classes="10")), "'num_classes' is a str"),
    "artifact_num_classes_huge.pt": (lambda: torch_bytes(artifact(num_classes=10**12)), "too large"),
    "artifact_kwargs_list.pt": (lambda: torch_bytes(artifact(kwargs=[1, 2])), "'kwargs' is a list"),
    "artifact_kwargs_unknown.pt": (lambda: torch_bytes(artifact(kwargs={"bogus": 1})), "bogus"),
    "artifact_kwargs_int_key.pt": (lambda: torch_bytes(artifact(kwargs={1: 2})), "non-string key"),
    "artifact_state_string.pt": (lambda: torch_bytes(artifact(state_dict="weights")), "state_dict is a str"),
    "artifact_state_empty.pt": (lambda: torch_bytes(artifact(state_dict={})), "no tensors"),
    "artifact_state_int_keys.pt": (
        lambda: torch_bytes(artifact(state_dict={i: t for i, t in enumerate(tiny_state().values())})),
        "non-string key",
    ),
    "artifact_1d_conv.pt": (
        lambda: torch_bytes(artifact(state_dict=with_state(**{"features.0.weight": torch.ones(2)}))),
        "wrong shapes",
    ),
    "artifact_widths_do_not_chain.pt": (
        lambda: torch_bytes(artifact(state_dict=with_state(**{"features.3.weight": torch.ones(2, 5, 3, 3)}))),
        "wrong shapes",
    ),
    "artifact_missing_key.pt": (
        lambda: torch_bytes(artifact(state_dict={k: v for k, v in tiny_state().items() if "classifier" not in k})),
        "missing",
    ),
    "artifact_extra_key.pt": (
        lambda: torch_bytes(artifact(state_dict=with_state(**{"extra.weight": torch.ones(1)}))),
        "unexpected",
    ),
    "artifact_sparse.pt": (
        lambda: torch_bytes(artifact(state_dict=with_state(**{"classifier.bias": torch.ones(10).to_sparse()}))),
        "expected dense",
    ),
    "evil_os_system.pt": (lambda: torch_bytes({"w": torch.ones(1), "x": Shell()}), "posix.system"),
    "evil_eval_protocol4.pt": (lambda: pickle_bytes({"x": Evaluate()}, 4), "builtins.eval"),
    "evil_eval_protocol2.pt": (lambda: pickle_bytes({"x": Evaluate()}, 2), "builtins.eval"),
    "evil_popen.pt": (lambda: torch_bytes({"state_dict": {"w": Popen()}}), "subprocess.Popen"),
    "evil_path_touch.pth": (lambda: torch_bytes(Touch()), "builtins.getattr"),
    "evil_in_artifact.pt": (lambda: torch_bytes(artifact(metrics={"x": Shell()})), "posix.system"),
    "bad_header.safetensors": (lambda: b"\x00\x01garbage", "not a readable safetensors file"),
    "huge_header.safetensors": (lambda: safetensors_header(2**60, b"{}"), "not a readable safetensors file"),
    "bad_json.safetensors": (lambda: safetensors_header(5, b"{nope"), "not a readable safetensors file"),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    lines = ["# crafted checkpoints: file name -> fragment of the expected one-line error (empty: loads)\n"]
    for name, (make, fragment) in CASES.items():
        (OUT / name).write_bytes(make())
        lines.append(f'"{name}" = "{fragment}"\n')
    (HERE / "checkpoints.toml").write_text("".join(lines))


if __name__ == "__main__":
    main()
