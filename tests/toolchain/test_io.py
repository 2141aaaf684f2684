"""Atomic writes and safe checkpoint loading."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest
import torch

from toolchain.errors import UsageError
from toolchain.io import atomic_path, atomic_write, safe_load, sha256_file, write_json


class CreatesFile:
    """Unpickling this calls Path.touch(target): what a malicious checkpoint would do."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.target,))


def test_atomic_write_replaces_in_one_step(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": 2})
    assert path.read_text() == '{\n  "x": 2\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failing_write_leaves_the_earlier_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"earlier")

    def half_then_fail(p: Path) -> None:
        p.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_interrupted_write_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_sha256(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickle_that_would_create_a_file_is_refused_and_runs_nothing(tmp_path: Path, writer: str) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.ones(2), "x": CreatesFile(target)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(UsageError, match=r"evil.pt: refused: loading it would run code from the file"):
        safe_load(path)
    assert not target.exists()
    pickle.loads(pickle.dumps(CreatesFile(target)))  # the payload is real: unsafe loading does create it
    assert target.exists()


def test_truncated_and_corrupt_checkpoints(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(100)}, good)
    data = good.read_bytes()
    cases = {"trunc.pt": data[: len(data) // 2], "empty.pt": b"", "text.pt": b"hello, not a checkpoint"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UsageError, match=rf"{name}: truncated or corrupt checkpoint"):
            safe_load(tmp_path / name)
    assert torch.equal(safe_load(good)["w"], torch.ones(100))


def test_safetensors_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.arange(6.0).view(2, 3)}, str(tmp_path / "m.safetensors"))
    assert torch.equal(safe_load(tmp_path / "m.safetensors")["conv.weight"], torch.arange(6.0).view(2, 3))
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(UsageError, match="not a readable safetensors file"):
        safe_load(tmp_path / "bad.safetensors")


def test_missing_and_non_dict_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="checkpoint not found"):
        safe_load(tmp_path / "none.pt")
    torch.save(torch.ones(2), tmp_path / "tensor.pt")
    with pytest.raises(UsageError, match="expected a dict of tensors"):
        safe_load(tmp_path / "tensor.pt")
