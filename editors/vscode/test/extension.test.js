// Loads extension.js with stand-ins for the `vscode` API and vscode-languageclient (only VS Code
// itself provides the former) and checks what it asks for: `dwc lsp` started from the dwc.path
// setting (${workspaceFolder} expanded) with dwc.lspArgs appended, for documents of language dw,
// and restarted when either setting changes. Exit status 1 on a failed check.
"use strict";

const assert = require("assert");
const Module = require("module");
const path = require("path");

const settings = { path: "${workspaceFolder}/.venv/bin/dwc", lspArgs: ["--log-level", "debug"] };
const started = [];
let stopped = 0;
let onConfig;

class LanguageClient {
  constructor(id, name, server, client) { Object.assign(this, { id, name, server, client }); }
  async start() { started.push(this); }
  async stop() { stopped += 1; }
}

const vscode = {
  workspace: {
    workspaceFolders: [{ uri: { fsPath: "/work/project" } }],
    getConfiguration: (section) => {
      assert.strictEqual(section, "dwc");
      return { get: (key, fallback) => settings[key] ?? fallback };
    },
    createFileSystemWatcher: (glob) => ({ glob }),
    onDidChangeConfiguration: (listener) => { onConfig = listener; return { dispose() {} }; },
  },
  window: { showErrorMessage: (message) => { throw new Error(message); } },
};

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === "vscode" || request === "vscode-languageclient/node") return request;
  return resolve.call(this, request, ...rest);
};
require.cache.vscode = { id: "vscode", filename: "vscode", loaded: true, exports: vscode };
require.cache["vscode-languageclient/node"] = {
  id: "vscode-languageclient/node", filename: "vscode-languageclient/node", loaded: true,
  exports: { LanguageClient },
};

async function main() {
  const extension = require(path.join(__dirname, "..", "extension.js"));
  const context = { subscriptions: [] };
  await extension.activate(context);
  assert.strictEqual(started.length, 1);
  const [client] = started;
  assert.deepStrictEqual(client.server, {
    command: "/work/project/.venv/bin/dwc", args: ["lsp", "--log-level", "debug"],
    options: { cwd: "/work/project" } });
  assert.deepStrictEqual(client.client.documentSelector, [{ language: "dw" }]);
  assert.strictEqual(client.client.synchronize.fileEvents.glob, "**/pyproject.toml");
  settings.path = "dwc";
  await onConfig({ affectsConfiguration: (key) => key === "dwc.path" });
  assert.strictEqual(stopped, 1);
  assert.strictEqual(started.length, 2);
  assert.strictEqual(started[1].server.command, "dwc");
  await onConfig({ affectsConfiguration: () => false });
  assert.strictEqual(started.length, 2);
  await extension.deactivate();
  assert.strictEqual(stopped, 2);
  console.log("extension.js: ok");
}

main().catch((error) => { console.error(error); process.exit(1); });
