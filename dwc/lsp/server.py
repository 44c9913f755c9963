"""`dwc lsp`: the language server (pygls over stdio) on top of dwc/lsp/analysis.py.

Each open document is analysed on open and on every change (full-text sync); the diagnostics are
published with their code, a link to docs/diagnostics.md, the help line and the secondary labels.
The last version that checked is kept per document, so hovers keep their costs while the text is
broken. No handler lets an exception escape (it is logged and answered with nothing), and the
server never writes to stdout except the protocol: stray output goes to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from dwc import __version__
from dwc.diagnostics import Diagnostic, Severity
from dwc.fmt import format_spec
from dwc.lint import LintConfig
from dwc.lint.runner import ConfigError, find_config
from dwc.lsp import analysis
from dwc.lsp.analysis import DEFAULT_DOCS_URL, Analysis, analyse
from dwc.lsp.text import Lines, word_at
from dwc.source import SourceFile, Span

log = logging.getLogger("dwc.lsp")

T = TypeVar("T")

_SEVERITY = {Severity.ERROR: types.DiagnosticSeverity.Error,
             Severity.WARNING: types.DiagnosticSeverity.Warning,
             Severity.INFO: types.DiagnosticSeverity.Information}
_UNNECESSARY = {"DW501", "DW513"}  # unused feature, unused value: editors fade them
_SYMBOL_KINDS = {"model": types.SymbolKind.Module, "feature": types.SymbolKind.Field,
                 "condition": types.SymbolKind.Event, "value": types.SymbolKind.Variable,
                 "output": types.SymbolKind.Property}
_COMPLETION_KINDS = {"keyword": types.CompletionItemKind.Keyword,
                     "kind": types.CompletionItemKind.Function,
                     "option": types.CompletionItemKind.Property,
                     "feature": types.CompletionItemKind.Field,
                     "condition": types.CompletionItemKind.Event,
                     "value": types.CompletionItemKind.Variable,
                     "output": types.CompletionItemKind.Property,
                     "choice": types.CompletionItemKind.EnumMember}


@dataclass
class Document:
    """What the server keeps per open document."""

    uri: str
    config: LintConfig
    now: Analysis
    good: Analysis | None = None
    """The last version that checked (its graph gives hovers their costs)."""
    encoding: str = "utf-16"
    """The position encoding negotiated at initialisation."""
    lines: Lines = field(init=False)

    def __post_init__(self) -> None:
        self.lines = Lines(self.now.source.text, self.encoding)

    def update(self, now: Analysis) -> None:
        self.now = now
        self.lines = Lines(now.source.text, self.encoding)
        if now.graph is not None:
            self.good = now

    def range(self, span: Span) -> types.Range:
        (l0, c0), (l1, c1) = self.lines.position(span.start), self.lines.position(span.end)
        return types.Range(types.Position(l0, c0), types.Position(l1, c1))

    def offset(self, position: types.Position) -> int:
        return self.lines.offset(position.line, position.character)


class _Protocol(LanguageServerProtocol):
    """pygls's protocol, except that a request it cannot deserialise (params of the wrong
    shape: a negative character, `params: null`) is answered with that JSON-RPC error rather
    than dropped, which left the client waiting for the answer forever."""

    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "id" in data and "method" in data:
                self._send_response(data["id"], error=error.to_response_error())
            raise


class DwcServer(LanguageServer):
    def __init__(self, docs_url: str = DEFAULT_DOCS_URL) -> None:
        super().__init__("dwc", __version__, protocol_cls=_Protocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.docs_url = docs_url
        self.documents: dict[str, Document] = {}

    def report_server_error(self, error: Exception, source) -> None:
        """pygls's report of an error outside a handler. A message the protocol layer cannot
        parse or apply (malformed JSON, params of the wrong shape, a change to a document never
        opened) is the client's mistake: logged, not shown to the user as "Error in server:
        KeyError ..." (pygls's default). A reply the server could not send (`source` is
        JsonRpcInternalError: e.g. a result that does not serialise) is dwc's own bug: logged as
        an error and shown, as the editor would otherwise wait for it in silence. Every dwc
        handler catches its own exceptions (`_safe`)."""
        if source is not JsonRpcInternalError:
            log.warning("ignored a message the server cannot handle (%s: %s)",
                        type(error).__name__, error)
            return
        log.error("could not send a message to the client (%s: %s): this is a bug in dwc, "
                  "please report it", type(error).__name__, error)
        self.window_show_message(types.ShowMessageParams(
            type=types.MessageType.Error,
            message=f"dwc language server: a reply could not be sent ({type(error).__name__}); "
                    "see the server log and please report it"))


_MAX_BODY = 1 << 30
"""The largest message body read (1 GiB); a larger Content-Length is a corrupt header."""


class _BoundedInput:
    """stdin for pygls's reader. A header claiming a body over _MAX_BODY bytes (e.g.
    `Content-Length: 99999999999999999999`; reading it failed with an OverflowError) means the
    stream cannot be followed any more (the next header would be read from inside a body), so
    the message is logged and the input ends: the server stops and `dwc lsp` exits with 2,
    which editors answer by starting it again."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.corrupt = False

    def readline(self) -> bytes:
        return b"" if self.corrupt else self.stream.readline()

    def read(self, n: int) -> bytes:
        if n > _MAX_BODY:
            log.error("a message header claims a body of %d bytes (over %d): the stream is "
                      "corrupt, stopping", n, _MAX_BODY)
            self.corrupt = True
        return b"" if self.corrupt else self.stream.read(n)


def _safe(default: T) -> Callable:
    """Log an exception in a handler and answer `default`: a bug in dwc must not take the
    editor's server down."""
    def wrap(fn):
        @wraps(fn)
        def run(ls: DwcServer, params):
            try:
                return fn(ls, params)
            except Exception:  # noqa: BLE001 - the server outlives any one request
                log.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
                return default
        return run
    return wrap


def _markup(formats, value: str) -> types.MarkupContent:
    """Markdown when the client renders it (its capability lists it), else the same as text."""
    if formats and types.MarkupKind.Markdown in formats:
        return types.MarkupContent(types.MarkupKind.Markdown, value)
    return types.MarkupContent(types.MarkupKind.PlainText, value)


def _open_document(fn):
    """A request handler on an open document: `fn(ls, params, doc)`, answered with nothing for a
    document the server was not sent."""
    @wraps(fn)
    def run(ls: DwcServer, params):
        doc = ls.documents.get(params.text_document.uri)
        return None if doc is None else fn(ls, params, doc)
    return run


def _config(path: str | None) -> LintConfig:
    """The `[tool.dwc]` lint settings above the document (defaults when unreadable)."""
    if not path:
        return LintConfig()
    try:
        return find_config(Path(path).resolve().parent)[0]
    except (ConfigError, OSError) as error:
        log.warning("lint settings ignored: %s", error)
        return LintConfig()


def _analyse(uri: str, name: str, text: str, config: LintConfig) -> Analysis:
    source = SourceFile(name, text)
    try:
        return analyse(source, config)
    except Exception as error:  # noqa: BLE001 - reported as DW900, like the CLI does
        log.error("analysis of %s failed:\n%s", uri, traceback.format_exc())
        return Analysis(source, None, None, [Diagnostic.file_level(
            "DW900", f"internal error: {type(error).__name__}: {error}",
            help="this is a bug in dwc; please report it with the spec")])


def lsp_diagnostic(doc: Document, d: Diagnostic, docs_url: str) -> types.Diagnostic:
    message = d.message + "".join(f"\nnote: {n}" for n in d.notes)
    if d.help:
        message += f"\nhelp: {d.help}"
    span = d.span if d.located else Span(0, 0)
    related = [types.DiagnosticRelatedInformation(
        types.Location(doc.uri, doc.range(label.span)), label.message or d.message)
        for label in d.secondary]
    return types.Diagnostic(
        range=doc.range(span), message=message, severity=_SEVERITY[d.level], code=d.code,
        code_description=types.CodeDescription(analysis.docs_link(d.code, docs_url)),
        source="dwc", related_information=related or None,
        tags=[types.DiagnosticTag.Unnecessary] if d.code in _UNNECESSARY else None)


def _publish(ls: DwcServer, doc: Document, version: int | None) -> None:
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=doc.uri, version=version,
        diagnostics=[lsp_diagnostic(doc, d, ls.docs_url) for d in doc.now.diagnostics]))


def build(docs_url: str = DEFAULT_DOCS_URL) -> DwcServer:
    """A server with every feature registered (not started)."""
    server = DwcServer(docs_url)

    @server.feature(types.INITIALIZE)
    @_safe(None)
    def initialize(ls: DwcServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("docsUrl"), str):
            ls.docs_url = options["docsUrl"]

    def refresh(ls: DwcServer, uri: str, version: int | None) -> None:
        text_doc = ls.workspace.get_text_document(uri)
        doc = ls.documents.get(uri)
        config = doc.config if doc else _config(text_doc.path)
        now = _analyse(uri, text_doc.path or uri, text_doc.source, config)
        if doc is None:
            chosen = ls.server_capabilities.position_encoding  # an enum member or a string
            encoding = getattr(chosen, "value", chosen) or "utf-16"
            doc = ls.documents[uri] = Document(uri, config, now, now if now.graph else None,
                                               encoding)
        else:
            doc.update(now)
        _publish(ls, doc, version)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @_safe(None)
    def did_open(ls: DwcServer, params: types.DidOpenTextDocumentParams) -> None:
        refresh(ls, params.text_document.uri, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: DwcServer, params: types.DidChangeTextDocumentParams) -> None:
        # Yield first: changes that queued up while the last analysis ran are applied to the
        # workspace meanwhile, and only the newest version is analysed (typing faster than
        # the analysis never builds a backlog).
        await asyncio.sleep(0)
        uri, version = params.text_document.uri, params.text_document.version
        try:
            if ls.workspace.get_text_document(uri).version == version:
                refresh(ls, uri, version)
        except Exception:  # noqa: BLE001 - the server outlives any one change
            log.error("did_change failed:\n%s", traceback.format_exc())

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @_safe(None)
    def did_save(ls: DwcServer, params: types.DidSaveTextDocumentParams) -> None:
        doc = ls.documents.get(params.text_document.uri)
        if doc is not None:  # pyproject.toml's [tool.dwc] may have changed
            doc.config = _config(ls.workspace.get_text_document(doc.uri).path)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @_safe(None)
    def watched_files(ls: DwcServer, params: types.DidChangeWatchedFilesParams) -> None:
        if not any(change.uri.endswith("/pyproject.toml") for change in params.changes):
            return
        for doc in list(ls.documents.values()):  # [tool.dwc] changed: lint again
            text_doc = ls.workspace.get_text_document(doc.uri)
            doc.config = _config(text_doc.path)
            refresh(ls, doc.uri, text_doc.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @_safe(None)
    def did_close(ls: DwcServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.documents.pop(params.text_document.uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=params.text_document.uri, diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @_safe(None)
    @_open_document
    def hover(ls: DwcServer, params: types.HoverParams, doc: Document) -> types.Hover | None:
        found = analysis.hover(doc.now, doc.good, doc.offset(params.position), ls.docs_url)
        if found is None:
            return None
        markdown, span = found
        hover = ls.client_capabilities.text_document and ls.client_capabilities.text_document.hover
        return types.Hover(_markup(hover and hover.content_format, markdown), doc.range(span))

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(
        trigger_characters=["(", ",", "=", ":", " ", "*"]))
    @_safe(None)
    @_open_document
    def completion(ls: DwcServer, params: types.CompletionParams, doc: Document
                   ) -> types.CompletionList | None:
        capability = ls.client_capabilities.text_document
        item = capability and capability.completion and capability.completion.completion_item
        snippets = bool(item and item.snippet_support)
        items = []
        for c in analysis.completions(doc.now, doc.offset(params.position)):
            insert = c.insert if snippets or c.insert is None else c.insert.replace("$0", "")
            items.append(types.CompletionItem(
                label=c.label, kind=_COMPLETION_KINDS[c.kind], detail=c.detail or None,
                documentation=_markup(item and item.documentation_format, c.documentation)
                if c.documentation else None,
                insert_text=insert, sort_text=f"{c.sort}{c.label}",
                insert_text_format=types.InsertTextFormat.Snippet if snippets and c.insert
                else None))
        return types.CompletionList(is_incomplete=False, items=items)

    def symbol_at(doc: Document, position: types.Position) -> str:
        word, _, _ = word_at(doc.now.source.text, doc.offset(position))
        return word

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @_safe(None)
    @_open_document
    def definition(ls: DwcServer, params: types.DefinitionParams, doc: Document) -> types.Location | None:
        sym = doc.now.declared(symbol_at(doc, params.position))
        return None if sym is None else types.Location(doc.uri, doc.range(sym.span))

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    @_safe(None)
    @_open_document
    def references(ls: DwcServer, params: types.ReferenceParams, doc: Document
                   ) -> list[types.Location] | None:
        name = symbol_at(doc, params.position)
        sym = doc.now.declared(name)
        if sym is None:
            return None
        spans = [span for n, span in doc.now.references if n == name]
        if params.context.include_declaration:
            spans.insert(0, sym.span)
        return [types.Location(doc.uri, doc.range(s)) for s in spans]

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    @_safe(None)
    @_open_document
    def prepare_rename(ls: DwcServer, params: types.PrepareRenameParams, doc: Document
                       ) -> types.Range | None:
        word, start, end = word_at(doc.now.source.text, doc.offset(params.position))
        return doc.range(Span(start, end)) if doc.now.declared(word) is not None else None

    @server.feature(types.TEXT_DOCUMENT_RENAME)
    @_open_document
    def rename(ls: DwcServer, params: types.RenameParams, doc: Document
               ) -> types.WorkspaceEdit | None:
        name = symbol_at(doc, params.position)
        sym = doc.now.declared(name)
        if sym is None:
            return None
        problem = analysis.rename_problem(doc.now, params.new_name)
        if problem is not None:
            raise JsonRpcInvalidParams(problem)  # shown to the user; nothing is changed
        spans = [sym.span, *(span for n, span in doc.now.references if n == name)]
        return types.WorkspaceEdit(changes={doc.uri: [
            types.TextEdit(doc.range(span), params.new_name) for span in spans]})

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @_safe(None)
    @_open_document
    def document_symbols(ls: DwcServer, params: types.DocumentSymbolParams, doc: Document
                         ) -> list[types.DocumentSymbol] | None:
        return [types.DocumentSymbol(
            name=s.name, kind=_SYMBOL_KINDS[s.kind], range=doc.range(s.statement),
            selection_range=doc.range(s.span), detail=f"{s.kind}: {s.detail}"[:120])
            for s in doc.now.symbols]

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @_safe(None)
    @_open_document
    def formatting(ls: DwcServer, params: types.DocumentFormattingParams, doc: Document
                   ) -> list[types.TextEdit] | None:
        if doc.now.spec is None:
            return None  # a spec that does not parse is left as it is (its DW1xx is shown)
        source = doc.now.source
        formatted = format_spec(doc.now.spec, source)
        if formatted == source.text:
            return []
        return [types.TextEdit(doc.range(Span(0, len(source.text))), formatted)]

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix]))
    @_safe(None)
    @_open_document
    def code_action(ls: DwcServer, params: types.CodeActionParams, doc: Document
                    ) -> list[types.CodeAction] | None:
        start, end = doc.offset(params.range.start), doc.offset(params.range.end)
        text = doc.now.source.text
        actions = []
        for d in doc.now.diagnostics:
            if not d.located or d.span.end < start or d.span.start > end:
                continue
            shown = lsp_diagnostic(doc, d, ls.docs_url)
            fixes = [(f.title, [(e.span, e.text) for e in f.edits]) for f in d.suggestions()]
            quiet = analysis.suppression(d, text)
            if quiet is not None:
                fixes.append((quiet[0], [(quiet[1], quiet[2])]))
            for n, (title, edits) in enumerate(fixes):
                actions.append(types.CodeAction(
                    title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[shown],
                    is_preferred=n == 0 and not title.startswith("suppress"),
                    edit=types.WorkspaceEdit(changes={doc.uri: [
                        types.TextEdit(doc.range(span), new) for span, new in edits]})))
        return actions

    return server


def serve(docs_url: str = DEFAULT_DOCS_URL) -> bool:
    """Run the server on stdin/stdout until the client says exit (or the input ends). Returns
    False if it stopped on a corrupt message header (see _BoundedInput)."""
    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by accident must not corrupt the protocol
    reader = _BoundedInput(sys.stdin.buffer)
    build(docs_url).start_io(reader, protocol_out)
    return not reader.corrupt


__all__ = ["DwcServer", "build", "serve"]
