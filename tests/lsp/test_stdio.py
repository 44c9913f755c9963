"""`dwc lsp` on raw stdio, with frames a client should never send: a request whose params do not
deserialise is answered with its JSON-RPC error (not dropped), a change to a document never opened
is logged without a message to the user, and a header claiming an impossible body stops the server
with DW430 instead of an internal error."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def _frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _request(id_: int, method: str, params) -> bytes:
    return _frame({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})


def _notify(method: str, params) -> bytes:
    return _frame({"jsonrpc": "2.0", "method": method, "params": params})


START = (_request(1, "initialize", {"capabilities": {}, "processId": None, "rootUri": None})
         + _notify("initialized", {}))
END = _request(9, "shutdown", None) + _notify("exit", None)


def _serve(frames: bytes) -> tuple[list[dict], subprocess.CompletedProcess]:
    done = subprocess.run([sys.executable, "-m", "dwc", "lsp"], input=frames,
                          capture_output=True, timeout=120, cwd=ROOT)
    out, replies = done.stdout, []
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        length = int(head.split(b"\r\n")[0].split(b":")[1])
        replies.append(json.loads(rest[:length]))
        out = rest[length:]
    return replies, done


def test_malformed_requests_get_error_responses_and_the_server_goes_on():
    hover = {"textDocument": {"uri": "file:///x.dw"}, "position": {"line": 0, "character": -5}}
    change = {"textDocument": {"uri": "file:///never-opened.dw", "version": 2},
              "contentChanges": [{"text": "model m\n"}]}
    replies, done = _serve(START + _request(2, "textDocument/hover", hover)
                           + _request(3, "textDocument/hover", None)
                           + _notify("textDocument/didChange", change) + END)
    assert done.returncode == 0
    by_id = {r.get("id"): r for r in replies}
    for id_ in (2, 3):
        assert by_id[id_]["error"]["code"] == -32602  # Invalid Params, answered
    assert by_id[9] == {"id": 9, "jsonrpc": "2.0", "result": None}  # still serving
    assert not [r for r in replies if r.get("method") == "window/showMessage"]
    assert "ignored a message the server cannot handle (JsonRpcInternalError: KeyError" in \
        done.stderr.decode()


def test_an_impossible_content_length_stops_the_server_with_dw430():
    replies, done = _serve(START + b"Content-Length: 99999999999999999999\r\n\r\n{}" + END)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert replies[0]["id"] == 1  # initialize was answered before the bad frame
    assert "error[DW430]: the language server stopped: a message header on stdin was corrupt" \
        in err
    assert "internal error" not in err and "OverflowError" not in err


def test_a_reply_that_cannot_be_sent_is_shown_as_dwc_s_bug(monkeypatch, caplog):
    from lsprotocol import types
    from pygls.exceptions import FeatureNotificationError, JsonRpcInternalError

    from dwc.lsp.server import DwcServer

    server, shown = DwcServer(), []
    monkeypatch.setattr(server, "window_show_message", shown.append)
    with caplog.at_level("WARNING", logger="dwc.lsp"):
        server.report_server_error(KeyError("never-opened.dw"), FeatureNotificationError)
        assert shown == [] and "ignored a message" in caplog.text  # the client's mistake
        server.report_server_error(TypeError("not serialisable"), JsonRpcInternalError)
    assert [m.type for m in shown] == [types.MessageType.Error]
    assert "could not be sent (TypeError)" in shown[0].message
    assert "could not send a message to the client (TypeError: not serialisable)" in caplog.text
