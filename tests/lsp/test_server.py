"""`dwc lsp` driven by a real LSP client over stdio (pytest-lsp): one server process for the
module, documents opened and edited in it the way an editor does."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import ClientServerConfig, LanguageClient

from dwc.diagnostics import CODES
from dwc.lsp.text import Lines

ROOT = Path(__file__).resolve().parents[2]
M2M = ROOT / "examples" / "m2m.dw"
DOCS = "https://example.org/dwc/docs/"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "dwc", "lsp"],
    server_env={**os.environ, "PYTHONPATH": str(ROOT)}))
async def client(lsp_client: LanguageClient):
    result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(
            general=types.GeneralClientCapabilities(
                position_encodings=[types.PositionEncodingKind.Utf8]),
            text_document=types.TextDocumentClientCapabilities(
                hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown]),
                completion=types.CompletionClientCapabilities(
                    completion_item=types.ClientCompletionItemOptions(
                        snippet_support=True,
                        documentation_format=[types.MarkupKind.Markdown])))),
        root_uri=ROOT.as_uri(), initialization_options={"docsUrl": DOCS}))
    assert result.server_info.name == "dwc"
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
    yield
    await lsp_client.shutdown_session()


_versions: dict[str, int] = {}


async def _open(client: LanguageClient, name: str, text: str) -> str:
    """Open `text` as a document beside the examples; returns its URI once diagnosed."""
    uri = (ROOT / "examples" / name).as_uri()
    _versions[uri] = 1
    waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="dw", version=1, text=text)))
    await waiting
    return uri


async def _change(client: LanguageClient, uri: str, text: str) -> list[types.Diagnostic]:
    _versions[uri] += 1
    waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=_versions[uri]),
        [types.TextDocumentContentChangeWholeDocument(text=text)]))
    await waiting
    return list(client.diagnostics[uri])


def _at(text: str, needle: str, skip: int = 0) -> types.Position:
    line, character = Lines(text, "utf-8").position(text.index(needle) + skip)  # as negotiated
    return types.Position(line, character)


def _doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


async def test_diagnostics_on_open_and_change(client: LanguageClient):
    text = M2M.read_text()
    uri = await _open(client, "lsp_diag.dw", text)
    assert list(client.diagnostics[uri]) == []  # m2m checks and lints clean
    broken = text.replace("mlp(concat(advertiser,", "mlp(concat(advertser,")
    diagnostics = await _change(client, uri, broken)
    assert [d.code for d in diagnostics] == ["DW201"]
    d = diagnostics[0]
    assert d.range.start == _at(broken, "advertser")
    assert d.range.end == _at(broken, "advertser", len("advertser"))
    assert d.severity == types.DiagnosticSeverity.Error
    assert "did you mean 'advertiser'?" in d.message
    assert d.code_description.href == f"{DOCS}diagnostics.md#dw201-{CODES['DW201'].name}"
    unused = text.replace("scenarios channel * region", "scenarios channel * region\n"
                          "feature spare : numeric")
    diagnostics = await _change(client, uri, unused)
    assert [(d.code, d.range.start.line) for d in diagnostics] == [("DW501", 13)]
    assert list(diagnostics[0].tags) == [types.DiagnosticTag.Unnecessary]
    diagnostics = await _change(client, uri, "model m\nfeature x : (")
    assert [d.code for d in diagnostics] == ["DW100"]


async def test_hover(client: LanguageClient):
    text = M2M.read_text()
    commented = text + "# déjà vu: DW502\n"  # positions after 'é' differ in UTF-8 and UTF-16
    uri = await _open(client, "lsp_hover.dw", commented)
    feature = await client.text_document_hover_async(types.HoverParams(
        _doc(uri), _at(text, "feature channel", len("feature c"))))
    value = feature.contents.value
    assert "categorical" in value and "scenario-sensitive" in value
    assert "vocab = 4" in value and "read by conditions: `s`" in value
    binding = await client.text_document_hover_async(types.HoverParams(
        _doc(uri), _at(text, "r1 = meta")))
    value = binding.contents.value
    assert "meta_attention(e, by = s, act = leaky_relu)" in value  # the default written out
    assert "| FLOPs | 42,368 | 4,480 |" in value  # `dwc explain examples/m2m.dw`'s r1 row
    assert "| parameters | 18,000 | 13,088 |" in value
    code = await client.text_document_hover_async(types.HoverParams(
        _doc(uri), _at(commented, "DW502", 2)))
    assert CODES["DW502"].summary in code.contents.value
    assert code.range.start == _at(commented, "DW502")
    assert f"{DOCS}diagnostics.md#dw502-" in code.contents.value
    option = await client.text_document_hover_async(types.HoverParams(
        _doc(uri), _at(text, "max_len = 10", 2)))
    assert "`max_len` of **sequence**" in option.contents.value
    # a broken version keeps the last good costs
    await _change(client, uri, text.replace("output clicks_next", "output clicks_next = ("))
    stale = await client.text_document_hover_async(types.HoverParams(
        _doc(uri), _at(text, "r1 = meta")))
    assert "42,368" in stale.contents.value and "last version that checked" in stale.contents.value


async def _labels(client: LanguageClient, uri: str, text: str, marker: str) -> list[str]:
    await _change(client, uri, text.replace(marker, ""))
    result = await client.text_document_completion_async(types.CompletionParams(
        _doc(uri), _at(text, marker)))
    return [item.label for item in result.items]


async def test_completion(client: LanguageClient):
    text = M2M.read_text()
    uri = await _open(client, "lsp_complete.dw", text)
    kinds = await _labels(client, uri, text.replace("e = experts(h", "e = |experts(h"), "|")
    assert {"mlp", "experts", "meta_attention", "star", "h", "s", "advertiser"} <= set(kinds)
    assert "t1" not in kinds  # defined below: not in scope
    options = await _labels(client, uri, text.replace("[64])", "[64], |)", 1), "|")
    assert {"act", "last_act", "norm", "dropout"} <= set(options)
    result = await client.text_document_completion_async(types.CompletionParams(
        _doc(uri), _at(text.replace("[64])", "[64], |)", 1), "|")))
    dropout = next(i for i in result.items if i.label == "dropout")
    assert "default 0.0" in dropout.detail
    assert dropout.insert_text == "dropout = $0"  # the client supports snippets
    assert dropout.insert_text_format == types.InsertTextFormat.Snippet
    cells = await _labels(client, uri, text.replace("scenarios channel * region",
                                                    "scenarios |"), "|")
    assert cells == ["channel", "region"]
    choices = await _labels(client, uri, text.replace("act = leaky_relu)", "act = |)"), "|")
    assert "leaky_relu" in choices and "gelu" in choices
    starts = await _labels(client, uri, text + "\n|", "|")
    assert {"model", "feature", "scenarios", "condition", "output", "defaults"} == set(starts)


async def test_navigation_and_outline(client: LanguageClient):
    text = M2M.read_text()
    uri = await _open(client, "lsp_nav.dw", text)
    target = await client.text_document_definition_async(types.DefinitionParams(
        _doc(uri), _at(text, "by = s)", len("by = "))))
    assert target.range.start == _at(text, "condition s", len("condition "))
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=_doc(uri), position=_at(text, "condition s", len("condition ")),
        context=types.ReferenceContext(include_declaration=False)))
    assert len(refs) == 4  # r1, t1, r2, t2 read it
    region = await client.text_document_references_async(types.ReferenceParams(
        text_document=_doc(uri), position=_at(text, "feature region", len("feature ")),
        context=types.ReferenceContext(include_declaration=True)))
    assert len(region) == 3  # declaration, `scenarios`, the condition
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(_doc(uri)))
    names = [(s.name, s.kind) for s in symbols]
    assert names[:2] == [("m2m", types.SymbolKind.Module), ("advertiser", types.SymbolKind.Field)]
    assert ("s", types.SymbolKind.Event) in names and ("clicks_next", types.SymbolKind.Property) \
        in names
    renamed = await client.text_document_rename_async(types.RenameParams(
        text_document=_doc(uri), position=_at(text, "by = s)", len("by = ")),
        new_name="knowledge"))
    edits = renamed.changes[uri]
    assert len(edits) == 5 and {e.new_text for e in edits} == {"knowledge"}
    assert edits[0].range.start == _at(text, "condition s", len("condition "))
    with pytest.raises(JsonRpcInvalidParams, match="already declared"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=_doc(uri), position=_at(text, "by = s)", len("by = ")),
            new_name="h"))
    # a text that does not parse keeps its outline and definitions (token scan)
    await _change(client, uri, text.replace("e = experts(h, 4, [16])", "e = experts(h, 4, [16"))
    broken = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(_doc(uri)))
    assert [s.name for s in broken][:8] == [n for n, _ in names][:8]
    target = await client.text_document_definition_async(types.DefinitionParams(
        _doc(uri), _at(text, "by = s)", len("by = "))))
    assert target.range.start == _at(text, "condition s", len("condition "))


async def test_formatting_and_code_actions(client: LanguageClient):
    messy = "model  m\nfeature x:categorical(vocab=10,dim=4) scenario\nfeature y : numeric\n" \
            "scenarios x\ncondition z=concat(x)\nh=mlp(y,[8]) dynamic(by=z)\noutput o=sigmoid(linear(h,1))\n"
    uri = await _open(client, "lsp_fmt.dw", messy)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        _doc(uri), types.FormattingOptions(tab_size=4, insert_spaces=True)))
    assert edits[0].new_text.startswith("model m\nfeature x : categorical(vocab = 10, dim = 4) "
                                        "scenario\n")
    typo = messy.replace("dynamic(by=z)", "dynamic(by=z, hiden=[4])")
    diagnostics = await _change(client, uri, typo)
    assert [d.code for d in diagnostics] == ["DW206"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=diagnostics[0].range,
        context=types.CodeActionContext(diagnostics=diagnostics)))
    assert [a.title for a in actions] == ["replace with 'hidden'"]
    (edit,) = actions[0].edit.changes[uri]
    assert edit.new_text == "hidden" and edit.range == diagnostics[0].range
    unmarked = messy.replace(" scenario\n", "\n")
    diagnostics = await _change(client, uri, unmarked)
    assert diagnostics[0].code == "DW308"
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=diagnostics[0].range,
        context=types.CodeActionContext(diagnostics=diagnostics)))
    assert actions[0].title == "mark 'x' scenario"
    (edit,) = actions[0].edit.changes[uri]
    assert edit.new_text == " scenario" and edit.range.start == _at(unmarked, "\nfeature y")
    lint = messy + "feature spare : numeric\n"
    diagnostics = await _change(client, uri, lint)
    assert [d.code for d in diagnostics] == ["DW501"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=_doc(uri), range=diagnostics[0].range,
        context=types.CodeActionContext(diagnostics=diagnostics)))
    assert [a.title for a in actions] == ["remove the declaration of 'spare'",
                                          "suppress DW501 on this line"]
    (removal,) = actions[0].edit.changes[uri]
    assert removal.new_text == "" and removal.range.start.line == 7 \
        and removal.range.end == types.Position(8, 0)


async def test_lint_settings_follow_pyproject(client: LanguageClient, tmp_path):
    spec = tmp_path / "spec.dw"
    text = ("model m\nfeature y : numeric\nfeature spare : numeric\nh = mlp(y, [4])\n"
            "output o = sigmoid(linear(h, 1))\n")
    spec.write_text(text)
    waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=spec.as_uri(), language_id="dw", version=1, text=text)))
    await waiting
    assert [d.code for d in client.diagnostics[spec.as_uri()]] == ["DW501"]
    (tmp_path / "pyproject.toml").write_text('[tool.dwc]\nignore = ["DW501"]\n')
    waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams([
        types.FileEvent(uri=(tmp_path / "pyproject.toml").as_uri(),
                        type=types.FileChangeType.Created)]))
    while (await waiting).uri != spec.as_uri():  # every open document is linted again
        waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[spec.as_uri()]) == []


async def test_a_burst_of_changes_ends_with_the_last_version(client: LanguageClient):
    text = M2M.read_text()
    uri = await _open(client, "lsp_burst.dw", text)
    for n in range(1, 6):  # typing 'advertiser' wrong, one keystroke at a time, without waiting
        _versions[uri] += 1
        typed = text.replace("concat(advertiser,", f"concat({'advertiser'[:10 - n]},")
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=_versions[uri]),
            [types.TextDocumentContentChangeWholeDocument(text=typed)]))

    def last() -> list[str]:
        return [d.message.split("\n")[0] for d in client.diagnostics.get(uri, ())]

    for _ in range(200):
        if last() == ["unknown name 'adver'"]:
            break
        await asyncio.sleep(0.05)
    # a request answered after every change was handled: nothing stale was published since
    await client.text_document_document_symbol_async(types.DocumentSymbolParams(_doc(uri)))
    assert last() == ["unknown name 'adver'"]
