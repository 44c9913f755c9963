"""The `dwc` command line: compile, check, fmt, explain, passes, verify.

Exit codes (ruff / mypy convention): 0 success, 1 the spec has errors (diagnostics printed) or
`fmt --check` found unformatted files, 2 usage errors, unreadable/unwritable files, weights that do
not fit, failed exports and internal errors, 3 `verify` found outputs above the tolerance. No
traceback reaches a user unless DWC_DEBUG=1 is set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence

from dwc import __version__
from dwc.diagnostics import Diagnostic, DiagnosticError, Label, render_json, render_text
from dwc.diagnostics.render import diagnostic_dict, escape_controls
from dwc.source import SourceFile, Span

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_MISMATCH = 0, 1, 2, 3
EXIT_PIPE = 128 + 13  # SIGPIPE: the reader of stdout closed the pipe, as `cat` reports it

_BYTES_PER_ROW = 300  # the columns below, the arrays building them, and the compressed copy
_MAX_ROWS = 50_000_000

# `dwc data generate --help`: the columns dwc.data writes (docs/data.md has the contract)
_DATA_COLUMNS = (
    ("user_id", "int64 [N]     ids in [0, 2000)"),
    ("item_id", "int64 [N]     ids in [1, 1000)"),
    ("category", "int64 [N]     ids in [0, 20)"),
    ("price", "float32 [N, 1]"),
    ("history", "int64 [N, 10] item ids, padded with 0 after history_len"),
    ("history_len", "int64 [N]     valid ids in history (1 .. 10)"),
    ("domain", "int64 [N]     the scenario, 4 values, 80/15/4/1 % of the rows"),
    ("ctr", "float32 [N, 1] the 0/1 click label"),
)


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends `(default: X)` to an option's help unless it has no default (None, required) or
    its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS) or action.required or "default" in text \
                or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _check_batch(batch: int) -> None:
    from dwc.lint.runner import MAX_BATCH

    if not 1 <= batch <= MAX_BATCH:
        raise _UsageError(f"--batch must lie in 1 .. {MAX_BATCH:,}, got {batch:,}")


def _seed(text: str) -> int:
    """A --seed: an integer in 0 .. 2**63 - 1, what torch and numpy both take."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{value} is outside 0 .. 2**63 - 1")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2 with a hint, like argparse, but shorter
        self.print_usage(sys.stderr)
        sys.stderr.write(f"dwc: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dwc", description="The Dynamic Weight Compiler.")
    parser.add_argument("--version", action="version", version=f"dwc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("compile", help="compile a spec to a target")
    p.add_argument("file")
    p.add_argument("--target", default="torch",
                   help="torch (default), onnx, tvm or aoti (an AOTInductor .pt2 package)")
    p.add_argument("-o", "--output", default=None,
                   help="output directory (default: ./<model name>)")
    _pipeline_options(p)
    _export_options(p)
    p.add_argument("--triton", action="store_true",
                   help="onnx: also write a Triton model repository under triton/")
    p.add_argument("--tune", type=int, default=None, metavar="TRIALS",
                   help="tvm cpu: tune the kernels of the --tune-batches sizes with MetaSchedule "
                   "(TRIALS in total; cached, a rebuild reuses the records)")
    p.add_argument("--tune-batches", default="1,64,1024,8192", metavar="B1,B2,...",
                   help="tvm --tune: the batch sizes given their own tuned function "
                   "(default 1,64,1024,8192; other sizes run the untuned dynamic one)")
    p.add_argument("--tune-cache", default=None, metavar="DIR",
                   help="tvm --tune: the tuning database directory "
                   "(default $XDG_CACHE_HOME/dwc/tvm-tuning or ~/.cache/dwc/tvm-tuning)")
    p.add_argument("--dump-ir", action="store_true",
                   help="print the final training and inference IR to stdout")
    p.add_argument("--vocab", default=None, metavar="DIR",
                   help="copy the vocabularies of a prepared directory (or its vocab/ folder) "
                   "into the artifact, so dwc.runtime serves raw values")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="diagnostic format")

    p = sub.add_parser("check", help="check syntax and semantics without writing anything")
    p.add_argument("files", nargs="+")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("fmt", help="rewrite specs in canonical layout")
    p.add_argument("files", nargs="+")
    p.add_argument("--check", action="store_true",
                   help="report unformatted files instead of rewriting them (exit 1)")
    p.add_argument("--resolved", action="store_true",
                   help="print each spec with every option its calls leave to a default written "
                   "out (the values dwc uses), instead of rewriting it")

    p = sub.add_parser("explain", help="per-layer parameters, generated numbers and FLOPs, "
                       "and what every pass changed")
    p.add_argument("file")
    _pipeline_options(p)
    p.add_argument("--batch", type=int, default=1024, help="batch size for activation memory")
    p.add_argument("--format", choices=("table", "json"), default="table")

    sub.add_parser("passes", help="list the passes and the -O pipelines")

    p = sub.add_parser(
        "data", help="prepare raw logs (CSV, Parquet) for dwc train; synthetic data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="dwc data prepare SPEC --train FILE... --out DIR: encode raw logs (CSV or "
        "Parquet) into the\nprepared directory dwc train reads (docs/data.md, 'Preparing raw "
        "logs').\ndwc data movielens --out FILE.parquet: MovieLens-100K as a raw log "
        "(experiments/movielens/).\n\n"
        "dwc data generate FILE: write synthetic, unbalanced multi-scenario CTR data "
        "as a .npz\nin the training-data contract of docs/data.md (train/valid/test = 80/10/10 %)."
        "\n\nColumns of every split (SPLIT/NAME keys):\n" + "\n".join(
            f"  {name:<12} {kind}" for name, kind in _DATA_COLUMNS) +
        "\n\nSpecs that train on it: experiments/*.dw (e.g. experiments/apg.dw).")
    actions = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    g = actions.add_parser("generate", help="synthetic multi-scenario CTR data as a .npz")
    g.add_argument("output", help="the .npz file to write (replaced atomically)")
    g.add_argument("--rows", type=int, default=200_000,
                   help="rows in all splits together (default 200000)")
    g.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    g = actions.add_parser(
        "prepare", formatter_class=_DefaultsFormatter,
        help="encode raw logs (CSV, Parquet) into a prepared directory for dwc train",
        description="Encode raw logs into DIR: vocabularies counted on the train split, "
        "Parquet shards per split, a manifest (docs/data.md, 'Preparing raw logs').")
    g.add_argument("file", help="the .dw spec (its features and outputs name the columns)")
    g.add_argument("--train", nargs="+", required=True, metavar="FILE",
                   help="log files of the train split (divided by --split unless --valid is "
                   "given)")
    g.add_argument("--valid", nargs="+", default=(), metavar="FILE",
                   help="log files of the validation split (default: none)")
    g.add_argument("--test", nargs="+", default=(), metavar="FILE",
                   help="log files of the test split (default: none)")
    g.add_argument("--split", default=None, metavar="TRAIN/VALID[/TEST]",
                   help="percentages of the --train rows (default: 80/10/10, or 90/10 with "
                   "--test; not with --valid)")
    g.add_argument("--split-by", choices=("hash", "order"), default="hash",
                   help="hash: each row by a hash of its position and --seed; order: in file "
                   "order (the first rows train, the last test: a time-ordered split of a log "
                   "sorted by time)")
    g.add_argument("--seed", type=_seed, default=0, help="seed of the hash split")
    g.add_argument("--format", choices=("csv", "parquet"), default=None,
                   help="the logs' format (default: from each file's extension)")
    g.add_argument("--shard-rows", type=int, default=1_000_000,
                   help="rows per Parquet shard at most")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="the prepared directory (new, or one prepare wrote: it is replaced)")
    g = actions.add_parser(
        "movielens", formatter_class=_DefaultsFormatter,
        help="MovieLens-100K (from the recbole wheel) as a raw log",
        description="Write MovieLens-100K as a raw log for experiments/movielens/*.dw: one row "
        "per rating, sorted by time. The data is read from the recbole 1.2.1 wheel (downloaded "
        "with pip into the cache); its licence forbids redistribution, so it is never committed.")
    g.add_argument("--out", required=True, metavar="FILE",
                   help="the .parquet (or .csv) file to write (replaced atomically)")
    g.add_argument("--history", type=int, default=20,
                   help="at most this many of the user's previous movies in 'history'")
    g.add_argument("--cache", default=None, metavar="DIR",
                   help="where the wheel is kept (default: ~/.cache/dwc)")

    p = sub.add_parser("train", help="train a spec's module on prepared data or a .npz",
                       formatter_class=_DefaultsFormatter,
                       description="Train the module a spec compiles to on a prepared directory "
                       "(dwc data prepare) or a .npz data set (their layouts: docs/data.md), "
                       "checking the data before the first step.")
    p.add_argument("file", help="the .dw spec")
    p.add_argument("--data", required=True, help="a directory written by dwc data prepare, or a "
                   ".npz with train/, valid/ and optionally test/ splits")
    p.add_argument("--out", required=True, help="directory for best.pt, last.pt, metrics.json")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training split")
    p.add_argument("--batch-size", type=int, default=512, help="rows per step (per process)")
    p.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam",
                   help="adam, adamw or sgd (momentum 0.9)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    p.add_argument("--weight-decay", type=float, default=0.0, help="the optimizer's weight decay")
    p.add_argument("--lr-schedule", choices=("constant", "cosine", "step"), default="constant",
                   help="constant, cosine (to 0 at the last step of --epochs) or step (times "
                   "--gamma every --step-size epochs)")
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="steps of linear warm-up to --lr before the schedule")
    p.add_argument("--step-size", type=int, default=None, metavar="EPOCHS",
                   help="--lr-schedule step: epochs between two decays")
    p.add_argument("--gamma", type=float, default=None,
                   help="--lr-schedule step: the decay factor (default: 0.1)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the initialisation and shuffling")
    p.add_argument("--patience", type=int, default=2,
                   help="stop after this many epochs without a better validation metric")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many steps in all (default: no limit)")
    p.add_argument("--two-stage", type=int, default=None, metavar="N",
                   help="train N epochs with the scenario parts (e.g. mlora's per-domain "
                   "factors) frozen, then only the scenario parts from the best checkpoint")
    p.add_argument("--shuffle-buffer", type=int, default=200_000, metavar="ROWS",
                   help="rows a prepared directory is shuffled through at a time")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="DIR",
                   help="continue from DIR/last.pt (DIR defaults to --out) exactly where it "
                   "stopped; --epochs may grow (default: start afresh)")

    p = sub.add_parser("lint", help="check specs for likely mistakes (exit 1 on findings)")
    p.add_argument("files", nargs="+")
    p.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text")
    p.add_argument("--select", default=None, help="only these codes or prefixes (comma-separated)")
    p.add_argument("--ignore", default=None, help="skip these codes or prefixes (comma-separated)")
    p.add_argument("--batch", type=int, default=None,
                   help="reference batch size for memory rules (default 4096 or [tool.dwc])")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even with findings")

    p = sub.add_parser("lsp", help="run the language server over stdin/stdout (docs/editors.md)")
    p.add_argument("--stdio", action="store_true", help="accepted for editors that pass it; "
                   "stdio is the only transport")
    p.add_argument("--docs-url", default=None, metavar="URL",
                   help="base URL of the docs/ pages diagnostics link to (default: the "
                   "repository's docs/ on GitHub)")
    p.add_argument("--log-file", default=None, help="append the server's log here (default: "
                   "stderr, which editors show in their output panel)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning")

    p = sub.add_parser("verify", help="run backends on the same inputs and compare with torch "
                       "(exit 3 above tolerance)")
    p.add_argument("file")
    p.add_argument("--targets", default="torch,onnx,tvm",
                   help="comma-separated: torch (the inference form), onnx, tvm, aoti")
    p.add_argument("--batches", default="1,33", help="batch sizes to run (default 1,33)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs error (default 1e-4)")
    _pipeline_options(p)
    _export_options(p)

    p = sub.add_parser("graph", help="draw the model as a dataflow picture (DOT, SVG or HTML)",
                       description="Draw a spec as a dataflow picture: features (scenario ones "
                       "marked), conditions, layers with their output shape, parameters and FLOPs "
                       "per sample, and the edges by which conditions generate dynamic weights "
                       "(docs/graph.md).")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True,
                   help="the file to write, replaced atomically (- for stdout); its extension "
                   "(.dot/.gv, .svg, .html/.htm) gives the format unless --format does")
    p.add_argument("--format", default=None, metavar="FORMAT",
                   help="dot, svg (laid out by graphviz-pure) or html (the SVG beside the "
                   "`dwc explain` table, one self-contained file)")
    p.add_argument("--inference", action="store_true",
                   help="draw the folded inference form (scenario tables, per-cell layers) "
                   "instead of the training form")
    _pipeline_options(p)
    return parser


def _export_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, metavar="STATE_DICT",
                   help="a state_dict saved from the generated training module")
    p.add_argument("--opset", type=int, default=17, help="onnx: opset version (default 17)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="tvm: device")
    p.add_argument("--arch", default=None, help="tvm cuda: GPU architecture (default sm_90)")
    p.add_argument("--max-batch", type=int, default=8192,
                   help="largest batch the artifact accepts (default 8192)")
    p.add_argument("--wrapper-opt", choices=("O0", "O1"), default="O1",
                   help="aoti: optimisation level of the package's C++ host code (default O1; "
                   "O0 builds ~4x faster and serves ~25%% slower at batch 1)")
    p.add_argument("--no-prepack", dest="prepack", action="store_false",
                   help="aoti: build only model.pt2, not also model-prepacked.pt2 (weights "
                   "packed for oneDNN, up to ~2-3x faster at 8192 rows; built when --max-batch "
                   "is 1024 or more, doubling the build time, and kept for the batch sizes of "
                   "1024 or more where it measures faster)")


def _pipeline_options(p: argparse.ArgumentParser) -> None:
    level = p.add_mutually_exclusive_group()
    for n in (0, 1, 2):
        level.add_argument(f"-O{n}", dest="level", action="store_const", const=n,
                           help=f"optimisation level {n}" + (" (default)" if n == 2 else ""))
    level.add_argument("--passes", default=None, metavar="PIPELINE",
                       help="explicit pipeline after the model passes, e.g. "
                       "'lowrank{rank=8},share,decompose,dce' (see `dwc passes`)")
    p.set_defaults(level=2)
    p.add_argument("--verify-each", action="store_true", help="verify the IR after every pass")
    p.add_argument("--print-after", default=None, metavar="PASS",
                   help="print the IR after the named pass (or 'all') to stderr")
    p.add_argument("--time-passes", action="store_true", help="report each pass's time")


def _pass_hooks(args):
    """An on_pass callback for --print-after and --time-passes, and a final report."""
    from dwc.ir.printer import print_graph
    from dwc.passes import PASSES

    if args.print_after not in (None, "all") and args.print_after not in PASSES:
        raise _UsageError(f"--print-after: unknown pass '{args.print_after}' (passes: all, "
                          f"{', '.join(sorted(PASSES))})")
    timings = []

    def on_pass(record) -> None:
        if args.print_after in ("all", record.name.split("{")[0]):
            print(f"// IR after {record.name} ({record.stage})", file=sys.stderr)
            print(print_graph(record.graph), file=sys.stderr)
        timings.append(record)

    def report() -> None:
        ran = {r.name.split("{")[0] for r in timings}
        if args.print_after not in (None, "all") and args.print_after not in ran:
            print(f"dwc: note: --print-after {args.print_after}: that pass is not in this "
                  f"pipeline (it ran: {', '.join(dict.fromkeys(r.name for r in timings))})",
                  file=sys.stderr)
        if args.time_passes:
            total = sum(r.seconds for r in timings)
            print(f"{'pass':<28} {'stage':<10} {'changed':<8} {'ms':>8}", file=sys.stderr)
            for r in timings:
                print(f"{r.name:<28} {r.stage:<10} {str(r.changed).lower():<8} "
                      f"{r.seconds * 1e3:8.3f}", file=sys.stderr)
            print(f"{'total':<48} {total * 1e3:8.3f}", file=sys.stderr)

    return on_pass, report


def _report(error: DiagnosticError, source: SourceFile, fmt: str = "text") -> int:
    if fmt == "json":
        print(render_json(error.diagnostics, source))
    else:
        for d in error.diagnostics:
            print(render_text(d, source), file=sys.stderr)
            print(file=sys.stderr)
        n = sum(1 for d in error.diagnostics if d.level.value == "error")
        if n:
            print(f"dwc: {n} error{'s' if n != 1 else ''} in {source.name}", file=sys.stderr)
    # file-level problems (unreadable or unwritable files, unknown targets, weights that do not
    # fit, failed exports) are usage errors; findings in the spec are not
    return _status_of(error)


def _status_of(error: DiagnosticError) -> int:
    # file-level problems (unreadable or unwritable files, unknown targets, weights that do not
    # fit, failed exports, bad data files) are usage errors; findings in the spec are not
    if any(not d.located and d.level.value == "error" for d in error.diagnostics):
        return EXIT_USAGE
    return EXIT_FINDINGS


def _load(path: str) -> SourceFile:
    from dwc.driver import load_source

    return load_source(path)


def cmd_compile(args) -> int:
    from dwc.driver import ExportOptions, compile_source, write_artifacts
    from dwc.ir.printer import print_graph

    if args.target == "torch" and args.weights is not None:
        raise _UsageError("--weights applies to the artifact targets (onnx, tvm, aoti): the torch "
                          "target writes the module's code, which loads a state_dict itself "
                          "(model.load_state_dict(torch.load(PATH)))")
    source = _load(args.file)
    on_pass, report = _pass_hooks(args)
    export = _export(args, ExportOptions)
    result = _with_pass_errors(lambda: compile_source(
        source, args.target, args.level, args.passes, args.verify_each, on_pass, export))
    report()
    if args.target != "torch" and args.weights is None:
        print(render_text(Diagnostic.file_level(
            "DW406", f"no --weights: the {args.target} artifact carries the seeded "
            "initialisation", help="pass --weights state.pt (a state_dict of the trained module)"),
            source),
            file=sys.stderr)
    if args.vocab is not None:
        _attach_vocabularies(args.vocab, source, result.files)
    out = args.output or result.graph.model
    path = write_artifacts(result.files, out)
    if args.dump_ir:
        print("// training graph")
        print(print_graph(result.graph), end="")
        print("// inference graph")
        print(print_graph(result.inference), end="")
    names = ", ".join(sorted(result.files))
    print(f"dwc: compiled {source.name} -> {path}/ ({names})", file=sys.stderr)
    return EXIT_OK


def _attach_vocabularies(directory: str, source: SourceFile, files: dict) -> None:
    """`--vocab DIR`: the checked vocabularies into the artifact (DW620; DW621 printed)."""
    from dwc import vocab
    from dwc.driver import check_data_source

    _, data = check_data_source(source)
    vocabularies, notes = vocab.load_vocabularies(directory, data, source)
    for note in notes:
        print(render_text(note, SourceFile(directory, "")), file=sys.stderr)
    vocab.attach(files, vocabularies, data)


def cmd_check(args) -> int:
    from dwc.driver import check_source

    status, findings = EXIT_OK, []
    for path in args.files:
        source = _load_or_none(path, args.format, findings)
        if source is None:
            status = max(status, EXIT_USAGE)
            continue
        try:
            graph = check_source(source)
        except DiagnosticError as error:
            if args.format == "json":
                findings += [diagnostic_dict(d, source) for d in error.diagnostics]
                status = max(status, _status_of(error))
            else:
                status = max(status, _report(error, source))
            continue
        if args.format == "text":
            print(f"dwc: {path}: ok (model {graph.model})", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(findings, indent=2))
    return status


def _load_or_none(path: str, fmt: str, findings: list) -> SourceFile | None:
    """The spec at `path`, or None after reporting why it cannot be read (DW401)."""
    try:
        return _load(path)
    except DiagnosticError as error:
        if fmt == "json":
            findings += [diagnostic_dict(d, SourceFile(path, "")) for d in error.diagnostics]
        else:
            _report(error, SourceFile(path, ""))
        return None


def cmd_fmt(args) -> int:
    from dwc.driver import check_source, write_artifacts
    from dwc.fmt import format_spec, resolve
    from dwc.parse import parse

    if args.resolved and args.check:
        raise _UsageError("--resolved prints the specs; it cannot be combined with --check")

    status = EXIT_OK
    for path in args.files:
        source = _load_or_none(path, "text", [])
        if source is None:
            status = max(status, EXIT_USAGE)
            continue
        try:
            if args.resolved:
                check_source(source)  # resolve only a spec that checks
                print(format_spec(resolve(parse(source)), source), end="")
                continue
            formatted = format_spec(parse(source), source)
        except DiagnosticError as error:
            status = max(status, _report(error, source))
            continue
        if formatted == source.text:
            continue
        if args.check:
            line = next((i + 1 for i, (a, b) in enumerate(
                zip(source.text.splitlines(), formatted.splitlines(), strict=False)) if a != b),
                min(len(source.text.splitlines()), len(formatted.splitlines())) + 1)
            offset = min(sum(len(x) + 1 for x in source.text.splitlines()[: line - 1]),
                         len(source.text))
            diag = Diagnostic("DW403", f"'{path}' is not formatted",
                              Label(Span(offset, offset), "first difference"),
                              help=f"run 'dwc fmt {path}'")
            print(render_text(diag, source), file=sys.stderr)
            status = max(status, EXIT_FINDINGS)
        else:
            target = os.path.abspath(path)
            write_artifacts({os.path.basename(target): formatted}, os.path.dirname(target))
            print(f"dwc: formatted {path}", file=sys.stderr)
    return status


def cmd_explain(args) -> int:
    from dwc import cost
    from dwc.driver import check_source

    _check_batch(args.batch)
    from dwc.driver import optimize

    graph = check_source(_load(args.file))
    on_pass, report = _pass_hooks(args)
    model, train, inference, records = _with_pass_errors(lambda: optimize(
        graph, args.level, args.passes, args.verify_each, on_pass))
    report()
    reports = (graph, model, train, inference, records, args.batch)
    if args.format == "json":
        print(json.dumps(cost.as_json(*reports), indent=2))
    else:
        print(cost.as_table(*reports), end="")
    return EXIT_OK


def cmd_passes(args) -> int:
    from dwc.passes import PASSES, PIPELINES
    from dwc.passes.base import MODEL_PASSES

    # in the order they run: by stage, then by place in the model passes and in -O2
    order = [p.split("{")[0] for p in f"{MODEL_PASSES},{PIPELINES[2]}".split(",")]
    for name in sorted(PASSES, key=lambda n: (("model", "train", "inference").index(
            PASSES[n].stage), order.index(n) if n in order else len(order), n)):
        cls = PASSES[name]
        print(f"{name:<22} {cls.stage:<10} {cls.summary}")
    print(f"\nmodel passes (always): {MODEL_PASSES}")
    for level, text in PIPELINES.items():
        print(f"-O{level}: {text or '(none)'}")
    return EXIT_OK


def cmd_lint(args) -> int:
    from pathlib import Path

    from dwc.lint import lint_source
    from dwc.lint.runner import ConfigError, check_codes, find_config, render

    results, status = [], EXIT_OK
    for path in args.files:
        try:
            source = _load(path)
        except DiagnosticError as error:  # reported with the findings; the other files go on
            results.append((SourceFile(path, ""), list(error.diagnostics)))
            status = EXIT_USAGE
            continue
        try:
            config, _ = find_config(Path(path).resolve().parent)
        except ConfigError as error:
            raise _UsageError(str(error), help=_CONFIG_HELP) from None
        try:
            if args.select is not None:
                config.select = {c.strip() for c in args.select.split(",") if c.strip()}
                check_codes(config.select, "--select", empty_ok=False)
            if args.ignore:
                ignored = {c.strip() for c in args.ignore.split(",") if c.strip()}
                check_codes(ignored, "--ignore")
                config.ignore |= ignored
        except ConfigError as error:
            raise _UsageError(str(error), help=_CONFIG_HELP) from None
        if args.batch is not None:
            _check_batch(args.batch)
            config.batch = args.batch
        results.append((source, lint_source(source, config)))
    text = render(results, args.format)
    if text:
        print(text)
    count = sum(len(ds) for _, ds in results)
    if args.format == "text":
        print(f"dwc lint: {count} finding{'s' if count != 1 else ''} in {len(results)} "
              f"file{'s' if len(results) != 1 else ''}", file=sys.stderr)
    if status == EXIT_USAGE:  # a file that could not be read is never a pass (--exit-zero)
        return status
    return EXIT_OK if count == 0 or args.exit_zero else EXIT_FINDINGS


def cmd_data(args) -> int:
    if args.action == "prepare":
        return _data_prepare(args)
    if args.action == "movielens":
        return _data_movielens(args)
    from dwc.data import save

    if args.rows < 10:
        raise _UsageError("--rows must be at least 10")
    if args.rows > _MAX_ROWS:
        raise _UsageError(f"--rows {args.rows:,} would need about "
                          f"{args.rows * _BYTES_PER_ROW / 2**30:,.0f} GiB of memory; the synthetic "
                          f"data set is built in memory, at most {_MAX_ROWS:,} rows")
    try:
        save(args.output, args.rows, args.seed)
    except DiagnosticError as error:
        return _report(error, SourceFile(args.output, ""))
    print(f"dwc: wrote {args.rows:,} rows (train/valid/test 80/10/10) to {args.output}",
          file=sys.stderr)
    return EXIT_OK


def _data_prepare(args) -> int:
    from dwc.driver import check_data_source
    from dwc.prepare import LogError, Options, prepare

    source = _load(args.file)
    graph, data = check_data_source(source)
    options = Options(train=tuple(args.train), valid=tuple(args.valid), test=tuple(args.test),
                      split=args.split, split_by=args.split_by, seed=args.seed,
                      format=args.format, shard_rows=args.shard_rows, out=args.out)
    try:
        report = prepare(source, graph, data, options)
    except LogError as error:
        return _report(error, SourceFile(error.path, ""))
    except DiagnosticError as error:
        return _report(error, SourceFile(args.out, ""))
    rows = ", ".join(f"{s} {n:,}" for s, n in report.rows.items() if n)
    print(f"dwc: prepared {report.total:,} rows ({rows}) from {report.files} "
          f"file{'s' if report.files != 1 else ''} in {report.seconds:.1f} s "
          f"({report.total / max(report.seconds, 1e-9):,.0f} rows/s) -> {report.out}/",
          file=sys.stderr)
    return EXIT_OK


def _data_movielens(args) -> int:
    from dwc.movielens import write_log

    if args.history < 1:
        raise _UsageError("--history must be at least 1")
    try:
        rows = write_log(args.out, args.history, args.cache)
    except DiagnosticError as error:
        return _report(error, SourceFile(args.out, ""))
    print(f"dwc: wrote {rows:,} MovieLens-100K ratings to {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_train(args) -> int:
    from dwc.driver import compile_source, ensure_directory, missing_folders, remove_empty
    from dwc.prepared import open_training_data
    from dwc.train import ResumeError, TrainConfig, check_resume, load_checkpoint, train
    from dwc.vocab import spec_digest

    for flag, value, low in (("--epochs", args.epochs, 1), ("--batch-size", args.batch_size, 1),
                             ("--patience", args.patience, 1), ("--max-steps", args.max_steps, 1),
                             ("--two-stage", args.two_stage, 1)):
        if value is not None and value < low:
            raise _UsageError(f"{flag} must be at least {low}")
    if not args.lr > 0 or not math.isfinite(args.lr):
        raise _UsageError("--lr must be a positive number")
    if not args.weight_decay >= 0 or not math.isfinite(args.weight_decay):
        raise _UsageError("--weight-decay must be a number >= 0")
    schedule = _schedule_problem(args)
    if schedule is not None:
        return _report(DiagnosticError([schedule]), SourceFile(args.file, ""))
    from dwc.train import LaunchError, launch_env

    try:
        rank, world = launch_env()
    except LaunchError as error:
        raise _UsageError(str(error), help="torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and "
                          "MASTER_PORT together; docs/data.md shows the launch") from None
    if args.two_stage is not None and args.two_stage >= args.epochs:
        raise _UsageError(f"--two-stage {args.two_stage} leaves no epoch of --epochs "
                          f"{args.epochs} for stage 2")
    source = _load(args.file)
    result = compile_source(source)
    if args.two_stage is not None and not _has_scenario_parts(result.files["model.py"]):
        raise _UsageError(f"--two-stage: {args.file} has no scenario parts to train in stage 2 "
                          "(a layer such as mlora has them)")
    data_file = SourceFile(args.data, "")
    sha = spec_digest(args.file)
    try:
        data = open_training_data(args.data, result.graph, sha)
    except DiagnosticError as error:
        return _report(error, data_file)
    if rank == 0:
        for note in data.notes:
            print(render_text(note, data_file), file=sys.stderr)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         optimizer=args.optimizer, weight_decay=args.weight_decay,
                         seed=args.seed, patience=args.patience, max_steps=args.max_steps,
                         two_stage=args.two_stage, lr_schedule=args.lr_schedule,
                         warmup_steps=args.warmup_steps, step_size=args.step_size,
                         gamma=0.1 if args.gamma is None else args.gamma,
                         shuffle_buffer=args.shuffle_buffer)
    checkpoint = resume_from = None
    if args.resume is not None:
        resume_from = args.resume or args.out
        try:
            checkpoint = load_checkpoint(resume_from)
            check_resume(checkpoint, config, sha, data, world, f"{resume_from}/last.pt")
        except DiagnosticError as error:
            return _report(error, SourceFile(f"{resume_from}/last.pt", ""))
    created = missing_folders(args.out)
    try:
        ensure_directory(args.out, "output directory with --out")
    except DiagnosticError as error:
        return _report(error, SourceFile(args.out, ""))
    started = time.time()
    try:
        outcome = train(result.files["model.py"], data, args.out, config, result.graph,
                        resume=checkpoint, resume_from=resume_from, spec_sha256=sha)
    except ResumeError as error:  # a checkpoint whose saved state does not fit the model
        remove_empty(created)
        return _report(error, SourceFile(f"{resume_from}/last.pt", ""))
    except DiagnosticError as error:  # a shard that turns out bad while it is read
        remove_empty(created)
        status = _report(error, data_file)
        _stopped_note(args.out, started, data_error=True)
        return status
    except BaseException:
        remove_empty(created)
        _stopped_note(args.out, started)
        raise
    if rank == 0:
        metric = outcome.selection["metric"]
        print(f"dwc: best epoch {outcome.best_epoch} (valid {metric} "
              f"{outcome.best_metric:.4f}); weights in {args.out}/best.pt", file=sys.stderr)
    return EXIT_OK


def _stopped_note(out: str, started: float, data_error: bool = False) -> None:
    """After a run that stopped early: say what its --out holds, if it wrote a checkpoint (rank 0
    only). The epochs finished are kept (each checkpoint is written whole), not deleted with the
    run. `data_error`: the data must change, so resuming on it is not offered."""
    from pathlib import Path

    from dwc.train import launch_env

    last = Path(out) / "last.pt"
    try:
        if launch_env()[0] != 0 or last.stat().st_mtime < started - 2:  # coarse mtimes
            return
    except Exception:  # noqa: BLE001 - a note must never hide the real error
        return
    held = f"{last} holds the last epoch completed"
    if (Path(out) / "best.pt").exists():
        held += " and best.pt the best so far"
    advice = ("" if data_error else "; the same command with --resume continues from it while "
              "the data and settings stay the same")
    print(f"dwc: note: training stopped before it finished: {held} (there is no "
          f"metrics.json){advice}", file=sys.stderr)


def _schedule_problem(args) -> Diagnostic | None:
    """The DW649 of learning-rate schedule options that do not fit together, or None."""
    problem = None
    if args.warmup_steps < 0:
        problem = "--warmup-steps must be >= 0"
    elif args.lr_schedule == "step" and (args.step_size is None or args.step_size < 1):
        problem = ("--lr-schedule step needs --step-size EPOCHS (at least 1)"
                   if args.step_size is None else "--step-size must be at least 1 epoch")
    elif args.lr_schedule != "step" and (args.step_size is not None or args.gamma is not None):
        flag = "--step-size" if args.step_size is not None else "--gamma"
        problem = f"{flag} applies to --lr-schedule step, not {args.lr_schedule}"
    elif args.gamma is not None and not (0 < args.gamma <= 1):
        problem = f"--gamma {args.gamma:g} is not in (0, 1]"
    elif args.shuffle_buffer < 1:
        problem = "--shuffle-buffer must be at least 1 row"
    if problem is None:
        return None
    return Diagnostic.file_level("DW649", problem, help="dwc train --help lists the schedule "
                                 "options; docs/data.md describes the schedules")


def _has_scenario_parts(model_py: str) -> bool:
    """Whether a runtime helper of the generated module names scenario parts (checked on the
    classes, without building the model: train() builds it once)."""
    import sys

    from dwc.backends.export import load_generated

    module = vars(sys.modules[load_generated(model_py, "train").__module__])
    return any(getattr(v, "dwc_scenario_parameters", ()) for v in module.values()
               if isinstance(v, type))


def _export(args, options_cls):
    if args.max_batch < 1:
        raise _UsageError("--max-batch must be at least 1")
    return options_cls(weights=args.weights, opset=args.opset,
                       triton=getattr(args, "triton", False), device=args.device, arch=args.arch,
                       max_batch=args.max_batch, wrapper_opt=args.wrapper_opt,
                       prepack=args.prepack, tune=_tune_options(args))


def _tune_options(args):
    """`--tune TRIALS [--tune-batches ..] [--tune-cache DIR]` (tvm, cpu) as TuneOptions."""
    if getattr(args, "tune", None) is None:
        return None
    from pathlib import Path

    from dwc.backends.tvm_tune import TuneOptions, check_options, parse_batches

    if args.target != "tvm" or args.device != "cpu":
        raise _UsageError("--tune applies to --target tvm --device cpu only")
    options = TuneOptions(args.tune, parse_batches(args.tune_batches),
                          Path(args.tune_cache) if args.tune_cache else None)
    check_options(options, args.max_batch)
    return options


def cmd_verify(args) -> int:
    from dwc.driver import ExportOptions
    from dwc.verify import verify_spec

    export = _export(args, ExportOptions)  # --max-batch first: --batches is checked against it
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        raise _UsageError(f"--batches must be integers, got {args.batches!r}") from None
    if not all(1 <= b <= args.max_batch for b in batches):
        raise _UsageError(f"--batches must lie in 1 .. --max-batch ({args.max_batch}), got "
                          f"{args.batches}")
    if not math.isfinite(args.tolerance) or args.tolerance < 0:
        raise _UsageError(f"--tolerance must be a finite number >= 0, got {args.tolerance:g}")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    from dwc.driver import TARGETS

    if not targets:
        raise _UsageError(f"--targets names no target (choose from {', '.join(TARGETS)})")
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise _UsageError(f"unknown verify target(s): {', '.join(unknown)} (choose from "
                          f"{', '.join(TARGETS)})")
    on_pass, report_passes = _pass_hooks(args)
    source = _load(args.file)
    report = _with_pass_errors(lambda: verify_spec(
        source, targets, batches, export, args.level, args.passes, args.verify_each, on_pass))
    report_passes()
    width = max(len(r.target) for r in report)
    failed = False
    for row in report:
        ok = row.max_error <= args.tolerance
        failed |= not ok
        print(f"{row.target:<{width}}  batch {row.batch:>5}  {row.output:<16} max abs error "
              f"{row.max_error:.3e}  {'ok' if ok else 'FAIL'}")
    if failed:
        print(render_text(Diagnostic.file_level(
            "DW409", f"outputs differ from torch by more than {args.tolerance:g}",
            help="please report this with the spec"), source),
            file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK


def _with_pass_errors(thunk):
    from dwc.passes import PassError

    try:
        return thunk()
    except PassError as error:
        raise _UsageError(str(error)) from None


_CONFIG_HELP = "fix the [tool.dwc] table of that pyproject.toml (docs/lint.md lists its keys)"


class _UsageError(Exception):
    """A usage error (DW413); `help` replaces the default hint (the command's --help)."""

    def __init__(self, message: str, help: str | None = None) -> None:
        super().__init__(message)
        self.help = help


COMMANDS = {"compile": cmd_compile, "check": cmd_check, "fmt": cmd_fmt, "explain": cmd_explain,
            "passes": cmd_passes, "verify": cmd_verify, "lint": cmd_lint, "data": cmd_data,
            "train": cmd_train}


_GRAPH_EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".html": "html", ".htm": "html"}


def cmd_graph(args) -> int:
    """`dwc graph`: the picture is rendered whole before anything is written (DW420-DW423)."""
    from dwc.driver import atomic_file
    from dwc.graph import build
    from dwc.graph_render import FORMATS, render

    suffix = os.path.splitext(args.output)[1].lower() if args.output != "-" else ""
    implied = _GRAPH_EXTENSIONS.get(suffix)
    fmt = args.format.lower() if args.format is not None else implied
    if fmt not in FORMATS:
        what = f"unknown --format '{args.format}'" if args.format is not None else (
            "-o - (stdout) needs --format" if args.output == "-" else
            f"cannot tell the picture format of '{args.output}'")
        raise DiagnosticError([Diagnostic.file_level(
            "DW420", what, help="use --format dot, svg or html, or an -o ending in .dot, .gv, "
            ".svg, .html or .htm; nothing was written")])
    if implied is not None and implied != fmt:
        raise DiagnosticError([Diagnostic.file_level(
            "DW423", f"--format {fmt} does not match '{args.output}' (a .{implied} name)",
            help=f"drop --format, or write to a name ending in .{fmt}; nothing was written")])
    source = _load(args.file)
    on_pass, report = _pass_hooks(args)
    picture = _with_pass_errors(lambda: build(source, args.level, args.passes, args.inference,
                                              args.verify_each, on_pass))
    report()
    text = render(picture, fmt)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with atomic_file(args.output, "output file with -o") as handle:
            handle.write(text.encode("utf-8"))
    print(f"dwc: drew {picture.model} ({picture.form} form, {len(picture.nodes)} nodes, "
          f"{len(picture.edges)} edges) -> {'stdout' if args.output == '-' else args.output}",
          file=sys.stderr)
    return EXIT_OK


COMMANDS["graph"] = cmd_graph


def cmd_lsp(args) -> int:
    import logging

    try:
        from dwc.lsp.server import serve
    except ImportError as error:
        print(render_text(Diagnostic.file_level(
            "DW408", f"the language server needs pygls: {error}",
            help="pip install 'dwc[lsp]'"), SourceFile("dwc lsp", "")), file=sys.stderr)
        return EXIT_USAGE
    from dwc.lsp.analysis import DEFAULT_DOCS_URL

    handler = logging.FileHandler(args.log_file) if args.log_file else logging.StreamHandler()
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not serve(args.docs_url or DEFAULT_DOCS_URL):
        print(render_text(Diagnostic.file_level(
            "DW430", "the language server stopped: a message header on stdin was corrupt "
            "(its Content-Length is beyond any message)",
            help="the editor's client wrote a bad frame; restart the server"),
            SourceFile("dwc lsp", "")), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


COMMANDS["lsp"] = cmd_lsp


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader that closed the pipe shows up here, not at exit
        return status
    except BrokenPipeError as error:
        if not _stdout_is_closed():
            return _internal_error(error)  # a pipe other than stdout: a real failure
        _discard_stdout()
        return EXIT_PIPE
    except DiagnosticError as error:
        path = getattr(args, "file", None) or (args.files[0] if getattr(args, "files", None)
                                                else "<spec>")
        return _report(error, _source_for(path), getattr(args, "format", "text"))
    except _UsageError as error:
        print(render_text(Diagnostic.file_level(
            "DW413", str(error),
            help=error.help or f"`dwc {args.command} --help` lists the options"),
            SourceFile(f"dwc {args.command}", "")), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the one place internal errors are caught
        return _internal_error(error)


def _internal_error(error: BaseException) -> int:
    if os.environ.get("DWC_DEBUG"):
        traceback.print_exception(error)
    message = escape_controls(f"{type(error).__name__}: {error}")
    print(f"error[DW900]: internal error: {message}\n"
          "  = help: this is a bug in dwc; please report it with the spec and the command "
          "(set DWC_DEBUG=1 for a traceback)", file=sys.stderr)
    return EXIT_USAGE


def _stdout_is_closed() -> bool:
    """Whether the reader of stdout went away (and a BrokenPipeError came from printing, not
    from some other pipe): poll reports an error condition on a pipe without a reader."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (embedded use)
        return False


def _discard_stdout() -> None:
    """After the reader of stdout went away (`dwc passes | head -1`): point stdout at /dev/null
    so that the interpreter's final flush does not fail again; then exit quietly, like cat."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (embedded use)
        pass


def _source_for(path: str) -> SourceFile:
    """The spec a diagnostic points into, or an empty one when it cannot be read (DW401)."""
    try:
        return _load(path)
    except DiagnosticError:
        return SourceFile(path, "")
