"""`dwc compile --vocab DIR`: the vocabularies of a prepared directory, copied into an artifact.

The artifact then carries `vocab/FEATURE.json` (one per vocabulary, as `dwc data prepare` wrote
it) and its manifest.json gains `vocabularies` (feature -> file) and `raw_inputs` (how
`dwc.runtime` encodes each feature's raw values: its kind, vocabulary, sequence length and
splitter, numeric width and fill), so the artifact serves strings and floats exactly as prepare
encoded the training data (dwc.encoding holds the one implementation both use).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dwc.diagnostics import Diagnostic, DiagnosticError
from dwc.sema.data import DataSpec
from dwc.source import SourceFile


def spec_digest(spec: bytes | str | Path) -> str:
    """sha256 of a spec file's bytes (given, or read from its path), exactly as they are on disk
    (a CRLF file is not normalised): the `spec_sha256` that `dwc data prepare` records and that
    `dwc compile --vocab` and `dwc train` compare with the spec they read."""
    data = spec if isinstance(spec, bytes) else Path(spec).read_bytes()
    return hashlib.sha256(data).hexdigest()


def _fail(message: str, help: str) -> DiagnosticError:
    return DiagnosticError([Diagnostic.file_level("DW620", message, help=help)])


def load_vocabularies(directory: str, data: DataSpec, source: SourceFile
                      ) -> tuple[dict[str, str], list[Diagnostic]]:
    """The vocabulary files (owner feature -> JSON text) of a prepared directory or its vocab/
    folder, checked against the spec's features; and DW621 when the prepared directory was
    written for another spec. Raises DiagnosticError(DW620)."""
    root = Path(directory)
    if not root.is_dir():
        raise _fail(f"--vocab '{directory}' is not a directory",
                    "pass a directory `dwc data prepare` wrote, or its vocab/ folder")
    notes: list[Diagnostic] = []
    paths = {name: root / f"{name}.json" for name in data.vocabularies}
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise _fail(f"cannot read '{manifest_path}': {error}",
                        "pass a directory `dwc data prepare` wrote") from None
        listed = manifest.get("vocabularies", {}) if isinstance(manifest, dict) else {}
        paths = {name: root / listed.get(name, f"vocab/{name}.json") for name in data.vocabularies}
        try:
            digest = spec_digest(source.name)
        except OSError:  # the spec was read a moment ago; without its bytes nothing is compared
            digest = None
        if digest is not None and manifest.get("spec_sha256") not in (None, digest):
            notes.append(Diagnostic.file_level(
                "DW621", f"'{directory}' was prepared from another spec (its spec.dw differs from "
                f"{source.name})", help="the vocabularies fit this spec's features; prepare again "
                "with this spec if its data options changed"))
    files: dict[str, str] = {}
    for name, owner in data.vocabularies.items():
        path = paths[name]
        try:
            text = path.read_text(encoding="utf-8")
            body = json.loads(text)
        except FileNotFoundError:
            raise _fail(f"--vocab '{directory}' has no vocabulary of '{name}' ({path.name})",
                        "prepare the data with this spec (`dwc data prepare`)") from None
        except (OSError, ValueError) as error:
            raise _fail(f"cannot read vocabulary '{path}': {error}",
                        "prepare the data again") from None
        if not isinstance(body, dict) or body.get("encoding") != owner.encoding or \
                body.get("size") != owner.vocab or \
                len(body.get("tokens") or ()) >= owner.vocab:
            got = (f"encoding = {body.get('encoding')}, size {body.get('size')}"
                   if isinstance(body, dict) else "not a vocabulary")
            raise _fail(f"vocabulary '{path}' ({got}) does not fit feature '{name}' (encoding = "
                        f"{owner.encoding}, vocab = {owner.vocab})",
                        "prepare the data with this spec, or compile the spec it was prepared "
                        "with")
        files[name] = text
    return files, notes


def raw_inputs(data: DataSpec) -> dict[str, dict]:
    """manifest.json's `raw_inputs`: how the runtime encodes each feature's raw values."""
    out: dict[str, dict] = {}
    for f in data.features:
        entry: dict[str, object] = {"kind": f.kind, "column": f.column}
        if f.kind == "numeric":
            entry.update(width=f.width, fill=f.fill)
        else:
            entry["vocabulary"] = f"vocab/{f.vocabulary}.json"
            if f.kind == "sequence":
                entry.update(max_len=f.max_len, splitter=f.splitter)
        out[f.name] = entry
    return out


def attach(files: dict[str, str | bytes], vocabularies: dict[str, str], data: DataSpec) -> None:
    """Add the vocabulary files to an artifact's files and record them in its manifest."""
    for name, text in vocabularies.items():
        files[f"vocab/{name}.json"] = text
    manifest = json.loads(files["manifest.json"])
    manifest["vocabularies"] = {f.name: f"vocab/{f.vocabulary}.json" for f in data.features
                                if f.kind != "numeric"}
    manifest["raw_inputs"] = raw_inputs(data)
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
