// The VS Code client of `dwc lsp`: starts the language server over stdio for .dw files and
// restarts it when the dwc.path / dwc.lspArgs settings change. Plain JavaScript (no build step).
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("dwc");
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? "";
  const command = config.get("path", "dwc").replace("${workspaceFolder}", folder);
  const args = ["lsp", ...config.get("lspArgs", [])];
  return { command, args, options: { cwd: folder || undefined } };
}

async function start(context) {
  client = new LanguageClient("dwc", "dwc language server", serverOptions(), {
    documentSelector: [{ language: "dw" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/pyproject.toml") },
  });
  try {
    await client.start();
  } catch (error) {
    const { command } = serverOptions();
    vscode.window.showErrorMessage(
      `dwc: could not start '${command} lsp' (${error.message}); set dwc.path to the dwc ` +
      "executable of an environment with pip install 'dwc[lsp]'");
  }
}

async function activate(context) {
  await start(context);
  context.subscriptions.push(vscode.workspace.onDidChangeConfiguration(async (event) => {
    if (event.affectsConfiguration("dwc.path") || event.affectsConfiguration("dwc.lspArgs")) {
      if (client) await client.stop();
      await start(context);
    }
  }));
}

async function deactivate() {
  if (client) await client.stop();
}

module.exports = { activate, deactivate };
