"""Latency of `dwc lsp` per keystroke: didChange -> publishDiagnostics round trips on every example.

    python benchmarks/lsp.py [--changes 30]

One server process (`python -m dwc lsp`) driven over stdio by pygls's client, as an editor does.
For each example: open it, then send `--changes` full-text changes that alternate between the
example and the example with one character typed into a trailing comment (so every change is a
new text the server parses, checks and lints), and time each change until the diagnostics of
that version arrive. Prints one row per example (median, 95th percentile and largest round trip,
in ms), the largest example last; docs/editors.md quotes the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent


async def run(changes: int) -> list[tuple[str, int, float, float, float]]:
    client = LanguageClient("dwc-benchmark", "1")
    arrived: dict[str, asyncio.Queue] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def diagnostics(params: types.PublishDiagnosticsParams) -> None:
        arrived[params.uri].put_nowait((params.version, time.perf_counter()))

    await client.start_io(sys.executable, "-m", "dwc", "lsp", cwd=str(ROOT))
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    rows = []
    for path in sorted((ROOT / "examples").glob("*.dw"), key=lambda p: p.stat().st_size):
        uri, text = path.as_uri(), path.read_text()
        arrived[uri] = asyncio.Queue()
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="dw", version=0, text=text)))
        await arrived[uri].get()
        times = []
        for version in range(1, changes + 1):
            edited = text if version % 2 else text + "# x\n"
            sent = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [types.TextDocumentContentChangeWholeDocument(text=edited)]))
            got, at = await arrived[uri].get()
            assert got == version, (got, version)
            times.append((at - sent) * 1e3)
        client.text_document_did_close(types.DidCloseTextDocumentParams(
            types.TextDocumentIdentifier(uri=uri)))
        await arrived[uri].get()  # the close clears its diagnostics
        times.sort()
        rows.append((path.name, len(text), statistics.median(times),
                     times[min(len(times) - 1, int(0.95 * len(times)))], times[-1]))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=30, help="changes per example")
    args = parser.parse_args()
    rows = asyncio.run(run(args.changes))
    print(f"{'example':<16} {'chars':>6} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for name, size, median, p95, largest in rows:
        print(f"{name:<16} {size:>6} {median:>10.1f} {p95:>8.1f} {largest:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
