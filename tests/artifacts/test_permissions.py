"""Artifacts are readable by a serving process under another user: every directory and file gets
the permissions the umask gives new ones (0755 / 0644 under umask 022), for every target."""

from __future__ import annotations

import os
import stat

import pytest

from dwc.cli import main
from tests.conftest import ROOT

SPEC = str(ROOT / "examples" / "ctr_mlp.dw")


@pytest.fixture
def umask():
    previous = os.umask(0o022)

    def set_mask(mask: int) -> int:
        os.umask(mask)
        return mask

    yield set_mask
    os.umask(previous)


def _modes(root) -> dict[str, int]:
    modes = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            modes[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
    return modes


@pytest.mark.parametrize("target, extra", [("torch", []), ("onnx", ["--triton"]), ("tvm", [])])
def test_artifact_permissions_follow_the_umask(target, extra, tmp_path, umask):
    out = tmp_path / target
    assert main(["compile", SPEC, "--target", target, "-o", str(out), *extra]) == 0
    modes = _modes(out)
    assert len(modes) >= 4  # the directory, its files (and triton/'s tree)
    for name, mode in modes.items():
        expected = 0o755 if os.path.isdir(out / name) else 0o644
        assert mode == expected, (name, oct(mode))


def test_a_stricter_umask_is_respected_and_rewrites_keep_a_files_mode(tmp_path, umask):
    umask(0o027)
    out = tmp_path / "torch"
    assert main(["compile", SPEC, "-o", str(out)]) == 0
    assert _modes(out)["."] == 0o750 and _modes(out)["model.py"] == 0o640
    os.chmod(out / "model.py", 0o600)
    assert main(["compile", SPEC, "-o", str(out)]) == 0  # into the existing directory
    assert _modes(out)["model.py"] == 0o600 and _modes(out)["spec.dw"] == 0o640
