"""Unknown codes in `--select`/`--ignore` and in `[tool.dwc]` are usage errors that name them
(they used to select nothing, silently)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dwc.lint import RULES
from dwc.lint.runner import ConfigError, check_codes, find_config


@pytest.mark.parametrize("codes", [None, set(), {"DW501"}, {"DW5"}, {"DW51", "DW502"},
                                   set(RULES)])
def test_known_codes_and_prefixes_pass(codes):
    check_codes(codes, "--select")


@pytest.mark.parametrize(("code", "hint"), [
    ("DW5009", "did you mean 'DW509'?"),        # a digit too many
    ("DW5O2", "did you mean 'DW502'?"),          # letter O for zero
    ("dw513", "did you mean 'DW513'?"),
    ("unused-value", "'unused-value' is the name of DW513: write 'DW513'"),
    ("DW201", "DW201 is a compiler diagnostic, not a lint rule"),
    ("DW3", "DW3 names compiler diagnostics, not lint rules"),
    ("DW6", ""),
    ("", ""),
])
def test_unknown_codes_are_named(code, hint):
    last = sorted(RULES)[-1]
    with pytest.raises(ConfigError) as info:
        check_codes({"DW501", code}, "--ignore")
    message = str(info.value)
    assert message.startswith(f"--ignore: unknown code {code!r} (codes: DW501..{last}; prefixes "
                              "such as DW5 are accepted)")
    assert hint in message


def _config(tmp_path, body: str):
    (tmp_path / "pyproject.toml").write_text("[tool.dwc]\n" + body)
    return find_config(tmp_path)


def test_pyproject_codes_are_checked(tmp_path):
    config, _ = _config(tmp_path, 'select = ["DW5"]\nignore = ["DW510", "DW513"]\n')
    assert config.select == {"DW5"} and config.ignore == {"DW510", "DW513"}
    with pytest.raises(ConfigError, match=r"\[tool.dwc\] ignore: unknown code 'DW599'"):
        _config(tmp_path, 'ignore = ["DW510", "DW599"]\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.dwc\] select: unknown code 'DW2'"):
        _config(tmp_path, 'select = ["DW2"]\n')


@pytest.mark.parametrize(("body", "message"), [
    ('select = "DW5"\n', "select must be a list of codes"),  # once read as {'D', 'W', '5'}
    ("ignore = [501]\n", "ignore must be a list of codes"),
    ('batch = "big"\n', "batch must be a positive integer"),
    ("memory-budget-mib = 0\n", "memory-budget-mib must be a positive integer"),
    ("huge-vocab = true\n", "huge-vocab must be a positive integer"),
    ("batch = 2147483648\n", "batch must lie in 1 .. 2,147,483,647, not 2,147,483,648"),
])
def test_pyproject_values_of_the_wrong_type(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, body)


def test_a_pyproject_that_cannot_be_read_is_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.dwc]\n")
    read_text = Path.read_text

    def refused(self, *args, **kwargs):
        if self.name == "pyproject.toml":
            raise PermissionError(13, "Permission denied")
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refused)
    with pytest.raises(ConfigError, match=r"pyproject.toml: cannot be read \(Permission denied\)"):
        find_config(tmp_path)


def test_a_pyproject_that_is_not_utf8_is_a_config_error(tmp_path):
    """TOML is UTF-8: other bytes are a ConfigError naming the file and the byte (it was a
    UnicodeDecodeError, reported as an internal error)."""
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.dwc]\nbatch = 4 # \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: not UTF-8 text \(byte 23: b'\\xff'\)"):
        find_config(tmp_path)
