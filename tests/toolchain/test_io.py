"""Atomic writes and safe checkpoint loading."""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cplitool.toolchain.errors import UsageError
from cplitool.toolchain.io import atomic_path, atomic_write, safe_load, sha256_file, write_json


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
    cases = {
        "trunc.pt": "truncated or corrupt checkpoint",
        "empty.pt": "truncated or corrupt checkpoint",
        "text.pt": "not a checkpoint: unknown format",
        "random.pt": "not a checkpoint: unknown format",
    }
    contents = {"trunc.pt": data[: len(data) // 2], "empty.pt": b"", "text.pt": b"hello, not a checkpoint"}
    contents["random.pt"] = bytes(range(7, 256)) * 4  # random-looking bytes are never "code"
    for name, message in cases.items():
        (tmp_path / name).write_bytes(contents[name])
        with pytest.raises(UsageError, match=rf"{name}: {message}"):
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


def test_full_disk_is_one_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing (simulated): one CplitoolError naming the file, the earlier file intact, no temp."""
    import errno

    from cplitool.toolchain.errors import CplitoolError
    from cplitool.toolchain.io import save_torch

    path = tmp_path / "dense.pt"
    path.write_bytes(b"earlier")

    def full(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(CplitoolError) as info:
        save_torch(path, {"w": torch.ones(10)})
    assert str(info.value) == f"cannot write {path}: No space left on device; earlier files are left as they were"
    assert path.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["dense.pt"]


def test_torch_writer_failure_names_the_file(tmp_path: Path) -> None:
    """torch.save writing to a path reports a full disk as RuntimeError (no errno): still one line."""
    from cplitool.toolchain.errors import CplitoolError

    def torch_full(p: Path) -> None:
        raise RuntimeError(
            "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
            "PytorchStreamWriter failed writing file data/0: file write failed"
        )

    with pytest.raises(CplitoolError, match=rf"cannot write {tmp_path / 'm.pt'}: the writer failed .*disk full"):
        atomic_write(tmp_path / "m.pt", torch_full)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_names_the_file(tmp_path: Path) -> None:
    from cplitool.toolchain.errors import CplitoolError

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(CplitoolError, match=rf"cannot write {folder / 'a.json'}: Permission denied"):
            write_json(folder / "a.json", {})
    finally:
        folder.chmod(0o700)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (needs root and mount rights; skipped elsewhere, where the simulation above stands)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_real_full_disk_through_the_cli(tiny_disk: Path, in_tmp: Path, cli) -> None:
    """Training into a 64 KiB file system: exit 1, one line naming the file and "No space left on device",
    no temporary file left on the disk."""
    from tests.conftest import digits_recipe_text, write_recipe

    text = digits_recipe_text("full", "[train]\nepochs = 1\nmax_steps = 1\n", f'dir = "{tiny_disk / "run"}"')
    result = cli("train", write_recipe(in_tmp, text))
    assert result.code == 1, result.err
    assert "Traceback" not in result.err and result.err.count("error:") == 1
    assert f"cannot write {tiny_disk / 'run'}/" in result.err and "No space left on device" in result.err
    assert not [p for p in tiny_disk.rglob("*") if p.name.endswith(".tmp")]


def test_same_content_same_bytes(tmp_path: Path) -> None:
    """torch.save to a path records the file name inside the zip (temp names differ per save); save_torch
    does not. Break: save_torch calling torch.save(obj, tmp) makes the two hashes differ."""
    from cplitool.toolchain.io import save_torch

    state = {"w": torch.arange(6.0), "meta": {"arch": "x"}}
    a = save_torch(tmp_path / "a.pt", state)
    b = save_torch(tmp_path / "other_name.pt", state)
    assert sha256_file(a) == sha256_file(b)
    assert torch.equal(safe_load(b)["w"], state["w"])
