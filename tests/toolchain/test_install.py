"""Install hints fit how cplitool was installed: editable clone, wheel, or a source tree on the path."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from cplitool.toolchain import install


class FakeDist:
    def __init__(self, direct_url: dict | None) -> None:
        self.text = json.dumps(direct_url) if direct_url is not None else None

    def read_text(self, name: str) -> str | None:
        return self.text if name == "direct_url.json" else None


def patch_dist(monkeypatch: pytest.MonkeyPatch, dist: FakeDist | None) -> None:
    def distribution(name: str) -> FakeDist:
        if dist is None:
            raise metadata.PackageNotFoundError(name)
        return dist

    monkeypatch.setattr(install.metadata, "distribution", distribution)


def test_editable_clone_gets_pip_install_e_of_the_clone(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_dist(monkeypatch, FakeDist({"dir_info": {"editable": True}, "url": "file:///home/me/cplitool%20clone"}))
    assert install.install_hint("trt") == "pip install -e '/home/me/cplitool clone[trt]'"


def test_wheel_or_index_install_gets_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break caught: treating every install as editable (or none), which gives a pip line that fails."""
    patch_dist(monkeypatch, FakeDist(None))  # installed from an index: no direct_url.json
    assert install.install_hint("trt") == "pip install 'cplitool[trt]'"
    patch_dist(monkeypatch, FakeDist({"archive_info": {}, "url": "file:///tmp/cplitool-0.1.0-py3-none-any.whl"}))
    assert install.install_hint("gpu") == "pip install 'cplitool[gpu]'"


def test_source_tree_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    patch_dist(monkeypatch, None)
    assert install.install_hint("trt") == "pip install -e '.[trt]'"


def test_the_trt_message_uses_it() -> None:
    from cplitool.deploy.runners.cuda.pycuda_io import TRT_EXTRA

    assert TRT_EXTRA.startswith(install.install_hint("trt"))


def test_installed_versions_name_only_what_is_installed() -> None:
    from importlib import metadata

    from cplitool.toolchain.install import installed_versions

    assert installed_versions(["numpy", "no-such-distribution-x"]) == {"numpy": metadata.version("numpy")}
