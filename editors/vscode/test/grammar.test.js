// Tokenises every examples/*.dw (and experiments/movielens/*.dw) with syntaxes/dw.tmLanguage.json through vscode-textmate and
// vscode-oniguruma (the engine VS Code itself uses) and compares the tokens with the snapshots in
// test/snapshots/ (`node test/grammar.test.js --update` rewrites them; review the diff). It also
// checks, independently of the snapshots, that outside comments every character is either a plain
// name (a reference) or has a scope of its own, and that statement keywords, kinds and numbers get
// theirs. Exit status 1 on any difference.
"use strict";

const fs = require("fs");
const path = require("path");
const oniguruma = require("vscode-oniguruma");
const textmate = require("vscode-textmate");

const HERE = __dirname;
const ROOT = path.resolve(HERE, "..", "..", "..");
const SNAPSHOTS = path.join(HERE, "snapshots");
const update = process.argv.includes("--update");

async function grammar() {
  const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
  await oniguruma.loadWASM(wasm);
  const registry = new textmate.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async () => textmate.parseRawGrammar(
      fs.readFileSync(path.join(HERE, "..", "syntaxes", "dw.tmLanguage.json"), "utf8"),
      "dw.tmLanguage.json"),
  });
  return registry.loadGrammar("source.dw");
}

function tokenise(g, text) {
  const out = [];
  let state = textmate.INITIAL;
  text.split("\n").forEach((line, number) => {
    const result = g.tokenizeLine(line, state);
    for (const token of result.tokens) {
      const word = line.slice(token.startIndex, token.endIndex);
      out.push({ line: number + 1, column: token.startIndex + 1, word,
                 scopes: token.scopes.filter((s) => s !== "source.dw") });
    }
    state = result.ruleStack;
  });
  return out;
}

function snapshot(tokens) {
  return tokens.filter((t) => t.word.trim())
    .map((t) => `${t.line}:${t.column} ${JSON.stringify(t.word)} ${t.scopes.join(" ") || "-"}`)
    .join("\n") + "\n";
}

function problems(tokens) {
  const found = [];
  const expect = (t, scope, why) => {
    if (!t.scopes.some((s) => s.startsWith(scope))) {
      found.push(`${t.line}:${t.column} ${JSON.stringify(t.word)}: ${why} needs ${scope}, has ${t.scopes.join(" ") || "none"}`);
    }
  };
  for (const t of tokens) {
    const word = t.word.trim();
    if (!word || t.scopes.some((s) => s.startsWith("comment"))) continue;
    if (!t.scopes.length && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) {
      found.push(`${t.line}:${t.column} ${JSON.stringify(word)} has no scope`);
    }
    if (/^(model|feature|scenarios|condition|output|defaults)$/.test(word)) {
      expect(t, "keyword.control.statement", "a statement keyword");
    }
    if (/^-?[0-9]/.test(word)) expect(t, "constant.numeric", "a number");
    if (/^"/.test(word)) expect(t, "string.quoted", "a string");
  }
  return found;
}

async function main() {
  const g = await grammar();
  // the examples, and the MovieLens specs (they use the data options: strings, `column`);
  // a snapshot is named after its spec, a folder's specs prefixed with the folder's name
  const specs = [];
  for (const [folder, prefix] of [["examples", ""], ["experiments/movielens", "movielens-"]]) {
    for (const f of fs.readdirSync(path.join(ROOT, folder)).filter((f) => f.endsWith(".dw")).sort()) {
      specs.push({ rel: `${folder}/${f}`, snap: `${prefix}${f}.snap` });
    }
  }
  let failed = 0;
  fs.mkdirSync(SNAPSHOTS, { recursive: true });
  for (const { rel, snap } of specs) {
    const tokens = tokenise(g, fs.readFileSync(path.join(ROOT, rel), "utf8"));
    for (const problem of problems(tokens)) {
      console.error(`${rel}:${problem}`);
      failed += 1;
    }
    const file = path.join(SNAPSHOTS, snap);
    const text = snapshot(tokens);
    if (update) {
      fs.writeFileSync(file, text);
    } else if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) {
      console.error(`${rel}: tokens differ from test/snapshots/${snap} ` +
                    "(node test/grammar.test.js --update, then review the diff)");
      failed += 1;
    }
  }
  const known = new Set(specs.map((s) => s.snap));
  const stale = fs.readdirSync(SNAPSHOTS).filter((f) => !known.has(f));
  for (const f of stale) {
    if (update) fs.unlinkSync(path.join(SNAPSHOTS, f));
    else { console.error(`test/snapshots/${f}: no such spec`); failed += 1; }
  }
  console.log(`${specs.length} specs tokenised, ${failed} problem(s)`);
  process.exit(failed ? 1 : 0);
}

main().catch((error) => { console.error(error); process.exit(1); });
