"""The registry of diagnostic codes: the single source of truth for every code dwc emits.

Codes are grouped by stage: DW1xx syntax, DW2xx names, DW3xx types, widths and options, DW4xx files
and backends, DW5xx lint rules, DW6xx training data, DW9xx internal errors. A layer kind keeps
its own codes in its folder (`Kind.codes`, `dwc/layers/<kind>/codes.py`); `CODES` merges them. A
code is never reused; docs/diagnostics.md is generated from `CODES` (`python -m dwc.docgen`) and a
test checks that every emitted code is registered.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from dwc.layers import MergedOnFirstUse


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Code:
    """One registered diagnostic code."""

    code: str
    name: str
    severity: Severity
    summary: str
    """One line: what the diagnostic means."""
    explanation: str
    """What triggers it and how to fix it (rendered into docs/diagnostics.md)."""


_E = Severity.ERROR

_TABLE = [
    # --- DW1xx: syntax -------------------------------------------------------------------------
    Code("DW100", "syntax-error", _E, "the text is not valid .dw syntax",
         "The parser met a token it did not expect. The message lists what it expected instead."),
    Code("DW101", "invalid-character", _E, "a character that no .dw token starts with",
         "Only ASCII names, numbers, the punctuation `( ) [ ] , = : * /` and `#` comments are valid."),
    Code("DW102", "unexpected-end-of-file", _E, "the spec ends in the middle of a statement",
         "Usually an unclosed `(` or `[`, or a statement cut short (`feature x :`)."),
    Code("DW103", "missing-comma", _E, "two arguments or list items without a comma between them",
         "Separate arguments and list items with `,`: `mlp(x, [64, 32])`."),
    Code("DW104", "unbalanced-bracket", _E, "a closing bracket that does not match an open one",
         "Every `(` closes with `)` and every `[` with `]`."),
    Code("DW105", "missing-equals", _E, "a binding or option without `=`",
         "Values are bound with `name = expression`; options are written `key = value`."),
    Code("DW106", "reserved-word", _E, "a reserved word used as a name",
         "`model feature scenario condition output defaults dynamic apg loss weight column` are keywords "
         "of the language and cannot name features, values or outputs."),
    Code("DW107", "statement-expected", _E, "a line that does not start a statement",
         "A statement starts with `model`, `feature`, `scenario`, `condition`, `output`, "
         "`defaults` or `name =`."),
    # --- DW2xx: names ---------------------------------------------------------------------------
    Code("DW201", "unknown-name", _E, "a reference to a name that is not defined",
         "Every feature, condition and value must be declared before it is used."),
    Code("DW202", "duplicate-name", _E, "a name defined twice",
         "Features, conditions, values and outputs share one namespace; names are bound once "
         "(no rebinding), so every value has one meaning."),
    Code("DW203", "use-before-definition", _E, "a value used above the line that defines it",
         "The network is a dataflow read top to bottom: define a value before using it."),
    Code("DW204", "missing-model", _E, "the spec has no `model NAME` line, or more than one",
         "Start every spec with exactly one `model NAME` declaration."),
    Code("DW205", "unknown-layer", _E, "a call to an operation dwc does not know",
         "See docs/language.md for the operations and feature kinds."),
    Code("DW206", "unknown-option", _E, "an option the operation does not take",
         "See the operation's entry in docs/language.md for its options."),
    Code("DW207", "no-outputs", _E, "the spec declares no `output`",
         "A model needs at least one `output NAME = head(...)`."),
    Code("DW208", "input-name-collision", _E, "two model inputs would have the same name",
         "A sequence feature `s` also takes a lengths input `s_len`; no other feature may use it."),
    Code("DW209", "no-parameters", _E, "the model has no parameters to train",
         "Every output is a fixed function of the inputs (a head straight over a feature), so "
         "there is nothing for `dwc train` or an optimizer to fit. Put a layer before the head."),
    # --- DW3xx: types, widths, options ----------------------------------------------------------
    Code("DW301", "wrong-argument-type", _E, "an argument of the wrong kind",
         "E.g. a name where a number is expected, or a list where a single value is expected."),
    Code("DW302", "missing-argument", _E, "a required argument or option is missing",
         "The message names the argument; docs/language.md lists each operation's signature."),
    Code("DW303", "too-many-arguments", _E, "more positional arguments than the operation takes",
         "Pass the extra values as named options (`key = value`)."),
    Code("DW304", "value-out-of-range", _E, "a number outside the range the option allows",
         "E.g. `vocab = 0`, `dropout = 1.5`, or an empty list of widths."),
    Code("DW305", "invalid-choice", _E, "an option value that is not one of its choices",
         "The help line lists the valid choices."),
    Code("DW306", "width-mismatch", _E, "values whose widths cannot meet",
         "`add` needs equal widths; field-wise operations need fields of equal dimension."),
    Code("DW307", "wrong-value-kind", _E, "a value of the wrong kind for this place",
         "E.g. a sequence feature where a categorical one is required, or a feature id where "
         "a network value is expected."),
    Code("DW308", "invalid-scenario", _E, "a `scenario` declaration that cannot define scenario cells",
         "Scenario features must be categorical features marked `scenario`; declare one "
         "`scenario a * b` line."),
    Code("DW309", "not-a-condition", _E, "`dynamic(by = ...)` names something that is not a condition",
         "Declare the condition with `condition z = ...` and pass `by = z`."),
    Code("DW310", "invalid-output", _E, "an output that is not a head over a network value",
         "Write `output name = sigmoid(linear(h, 1)) loss = bce`; heads are sigmoid, softmax, "
         "identity and exp, losses bce, ce, mse and poisson."),
    Code("DW311", "modifier-not-applicable", _E,
         "a modifier (`dynamic`, `apg`) on an operation that cannot take it",
         "`dynamic(...)` applies to `linear` and `mlp`; `apg(...)` only to a dynamic layer."),
    Code("DW312", "duplicate-option", _E, "the same option given twice",
         "Give each option once."),
    Code("DW313", "invalid-shared-table", _E, "`share =` or a sequence refers to an unsuitable feature",
         "Tables are shared with a categorical feature that has its own table (no chains)."),
    Code("DW314", "condition-without-scenario", _E, "a condition that reads no scenario-sensitive feature",
         "Mark the features that define scenarios with `scenario` after their kind, or use them "
         "in the condition."),
    # --- DW342-DW349: data options of features and outputs (`dwc data prepare`, docs/data.md) ---
    Code("DW342", "empty-data-string", _E, "an empty `column` name or `splitter`",
         "`column = \"...\"` names the raw-data column a feature or target is read from, and "
         "`splitter = \"...\"` the separator of a joined sequence string: neither can be empty. "
         "Leave `column` out to read the column named like the feature."),
    Code("DW343", "data-option-of-shared-table", _E,
         "`encoding` or `min_count` on a feature that shares another feature's table",
         "A vocabulary belongs to the embedding table: features with `share = f` and sequences of "
         "`f` map their values through `f`'s vocabulary. Write the option on `f`."),
    Code("DW344", "hash-vocab-too-small", _E, "`encoding = hash` with `vocab` below 2",
         "Id 0 is reserved for null values, so hashing needs at least one more id: values hash "
         "into 1 .. vocab - 1."),
    Code("DW345", "min-count-with-hash", _E, "`min_count` on a feature with `encoding = hash`",
         "Hashing keeps every value (it has no vocabulary to prune); remove `min_count`, or use "
         "`encoding = vocabulary`."),
    Code("DW346", "target-column-is-input", _E, "an output reads its target from a feature's column",
         "The label would be an input of the model (target leakage). Name the target's own "
         "column with `column = \"...\"` on the output or on the feature."),
    # --- DW4xx: files and backends --------------------------------------------------------------
    Code("DW401", "cannot-read-file", _E, "the spec file cannot be read",
         "Check the path and its permissions; specs are UTF-8 text."),
    Code("DW402", "cannot-write-output", _E, "the output directory cannot be written",
         "Check that the parent directory exists and is writable; nothing was written."),
    Code("DW403", "not-formatted", _E, "`dwc fmt --check`: the file is not canonically formatted",
         "Run `dwc fmt FILE` to rewrite it."),
    Code("DW404", "unknown-target", _E, "a compile target this build of dwc does not provide",
         "The available targets are listed by `dwc compile --help`."),
    Code("DW405", "weights-mismatch", _E, "a --weights state_dict does not fit the model",
         "The message names the missing, unexpected and mis-shaped parameters. Save the state_dict "
         "of the training module compiled from the same spec (`torch.save(model.state_dict(), "
         "path)`)."),
    Code("DW406", "no-weights", Severity.WARNING, "an artifact exported without trained weights",
         "Without --weights the artifact carries the module's seeded initialisation (useful for "
         "tests, not for serving)."),
    Code("DW407", "export-failed", _E, "a backend could not build the artifact",
         "The message carries the backend's own error; please report it with the spec, since every "
         "example spec exports (this is tested)."),
    Code("DW408", "missing-backend", _E, "the Python package a target needs is not installed",
         "Install the export extra: `pip install -e '.[export]'` in a dwc checkout, "
         "`pip install 'dwc[export]'` where dwc was installed from a wheel."),
    Code("DW409", "verification-failed", _E, "a backend's outputs differ from the torch reference",
         "`dwc verify` exits 3 when any output's max abs error exceeds the tolerance."),
    Code("DW410", "bad-tune-trials", _E, "`--tune` was given a trial count below one",
         "TRIALS is the total number of MetaSchedule measurements, e.g. `--tune 64`."),
    Code("DW411", "bad-tune-batches", _E, "`--tune-batches` is not a list of distinct batch sizes "
         "within 1 .. --max-batch",
         "Each size gets its own statically shaped, tuned function, e.g. "
         "`--tune-batches 1,64,1024,8192`."),
    Code("DW412", "tuning-cache-unusable", _E, "the tuning database directory cannot be used",
         "The directory (`--tune-cache`, default `$XDG_CACHE_HOME/dwc/tvm-tuning`) must be "
         "writable and hold MetaSchedule JSON databases; remove a damaged one to start afresh."),
    Code("DW413", "bad-option", _E, "a command-line option outside the values it accepts",
         "A count below its minimum, a number that is not finite, an option the chosen target "
         "does not use, a name that is not a pass: `dwc COMMAND --help` lists every option and "
         "what it accepts."),
    # `dwc graph` (docs/graph.md)
    Code("DW420", "unknown-picture-format", _E, "`dwc graph` cannot tell which format to write",
         "The format comes from --format (dot, svg or html) or, without it, from the extension of "
         "-o (.dot or .gv, .svg, .html or .htm). Name one of them; nothing was written."),
    Code("DW421", "missing-layout-engine", _E, "the SVG layout engine is not installed",
         "SVG and HTML pictures are laid out by graphviz-pure, a dependency of dwc that installs "
         "with it (`pip install -e .` in a checkout). `--format dot` needs no layout engine."),
    Code("DW422", "layout-failed", _E, "the SVG layout engine failed on the picture",
         "The message carries the engine's own error; nothing was written. `--format dot` writes "
         "the picture's DOT text, which needs no engine; please report the failure with the spec."),
    Code("DW423", "format-extension-mismatch", _E,
         "--format names another format than the extension of -o",
         "`dwc graph --format svg -o model.html` would write SVG into an .html file. Drop "
         "--format (the extension decides) or give -o the format's extension."),
    # `dwc lsp` (docs/editors.md)
    Code("DW430", "lsp-stream-corrupt", _E, "the language server's input stream cannot be read",
         "A message header on stdin claimed a body larger than any message (over 1 GiB), so "
         "the next header could only be read from inside a body: the server stops (exit 2) "
         "rather than hang. Editors start it again; a client that keeps doing this writes "
         "broken frames."),
    # --- DW5xx: lint rules (configurable; docs/lint.md has What / Why / Example / Use instead) ---
    Code("DW501", "unused-feature", Severity.WARNING, "a feature no value, condition or output reads",
         "Remove it, or use it; it still costs an input (and a table) in every artifact."),
    Code("DW502", "scenario-feature-without-condition", Severity.WARNING,
         "a scenario-sensitive feature that no condition or domain reads",
         "Marking a feature `scenario` only matters where a dynamic layer, gate or STAR layer reads "
         "it, or where `scenarios` names it to define the scenario cells."),
    Code("DW503", "condition-without-scenario", Severity.INFO,
         "a dynamic layer conditioned on its own input only (self-wise)",
         "Self-wise layers adapt per sample, not per scenario; fine for APG self-wise, a mistake if "
         "scenario adaptation was intended."),
    Code("DW504", "condition-on-huge-vocabulary", Severity.WARNING,
         "a generator conditioned on a very high-cardinality id",
         "Generation then runs per sample and cannot be folded into a per-scenario table."),
    Code("DW505", "high-cardinality-scenario", Severity.WARNING,
         "a feature with a huge vocabulary marked scenario-sensitive",
         "Scenario features should have few values (countries, surfaces); ids are priors."),
    Code("DW506", "rank-saves-nothing", Severity.WARNING, "an APG rank so large that low rank saves nothing",
         "With K (N + M) >= N M the factors hold more numbers than the full matrix."),
    Code("DW507", "overparam-below-rank", Severity.WARNING, "over-parameterisation narrower than the rank",
         "P < K makes U_l U_r rank-deficient: it restricts the factors instead of widening them."),
    Code("DW508", "generated-tensor-too-large", Severity.WARNING,
         "a full-rank dynamic layer whose generated weights exceed the memory budget",
         "B x N x M generated floats must be kept for backward; APG's rewrites shrink it to K^2."),
    Code("DW509", "self-wise-generation-too-costly", Severity.WARNING,
         "a self-wise generator that costs more FLOPs than a dense layer",
         "With d_z = N the generator costs N K^2 (or N M) MACs per sample (docs/models.md, 'APG')."),
    Code("DW510", "gate-placement-differs-from-paper", Severity.INFO,
         "a PPNet tower gated somewhere else than the paper (pre-linear)",
         "The placements of the public implementations differ; this one is not the paper's."),
    Code("DW511", "gate-without-stop-gradient", Severity.INFO,
         "a gate whose condition reads the gated value without stop_gradient",
         "PEPNet stops gradients from the gate path into the gated embeddings (anti-seesaw)."),
    Code("DW512", "head-loss-mismatch", Severity.WARNING, "an output head that does not fit its loss",
         "bce expects sigmoid, ce softmax, mse identity and poisson exp."),
    Code("DW513", "unused-value", Severity.WARNING, "a value that no output depends on",
         "It is computed (and its parameters trained) for nothing."),
    Code("DW514", "condition-outside-scenario-cells", Severity.WARNING,
         "a condition reads a scenario feature missing from `scenarios`, so it cannot fold",
         "The scenario folds precompute only conditions that read nothing but the features of "
         "`scenarios`; add the feature there (or drop its `scenario` mark). The message gives "
         "the inference FLOPs per sample with and without the fold."),
    Code("DW515", "self-wise-stack-without-residual-init", Severity.WARNING,
         "stacked self-wise layers whose generators start with init = default or hyperfan",
         "A self-wise layer multiplies its input by weights generated from it, so stacked ones "
         "compound the scale: at the start of training the model overflows (5 layers on inputs of "
         "scale 100 give NaN) or vanishes. Drop the `init` option (self-wise generators default to "
         "`init = residual`, which starts each layer as a static one) or write `init = residual`; "
         "a `norm` between the layers also ends the stack."),
    # --- DW6xx: training data (docs/data.md); checked whole before the first training step -----
    Code("DW601", "unreadable-data", _E, "the data file cannot be read as a .npz archive",
         "`dwc train --data` reads a NumPy .npz archive (`numpy.savez`); the message says what the "
         "file is instead. Pickled object arrays are refused."),
    Code("DW602", "missing-split", _E, "a required split of the data is absent or empty",
         "Columns are keyed `SPLIT/NAME`; `train/` and `valid/` are required, `test/` is optional."),
    Code("DW603", "missing-column", _E, "a split lacks a column the model reads",
         "Every input of the model (each feature, each sequence's `NAME_len`) and every output's "
         "target must be a column of every split."),
    Code("DW604", "data-dtype", _E, "a column whose dtype cannot hold what the model reads",
         "Ids, sequences and lengths are integers (read as int64), numerics and targets numbers "
         "(read as float32; `ce` targets are integer class ids). Strings must first be encoded "
         "as ids."),
    Code("DW605", "data-shape", _E, "a column whose shape does not match its feature or output",
         "ids and lengths are [N], numerics [N, width], sequences [N, max_len], targets [N, width] "
         "(`ce`: [N]); every column of a split has the same N."),
    Code("DW606", "id-out-of-range", _E, "an id outside [0, vocab) of its feature",
         "The message names the first offending row. Id 0 is a valid id; map unknown values to a "
         "reserved id inside the vocabulary."),
    Code("DW607", "length-out-of-range", _E, "a sequence length outside 0..max_len",
         "`NAME_len` counts the valid ids at the start of each row of `NAME`."),
    Code("DW608", "target-out-of-range", _E, "a target value its loss cannot take",
         "bce targets lie in [0, 1], poisson targets are >= 0, ce targets are class ids in "
         "[0, classes); every target and numeric is finite."),
    Code("DW609", "data-cast", Severity.INFO, "a column converted to the dtype the model reads",
         "float64 numerics and targets (the pandas default) are read as float32 with this note. "
         "Lossless conversions are silent: integer ids of any width to int64, integer or boolean "
         "numerics and targets to float32."),
    # --- DW610-DW639: raw logs (`dwc data prepare`, `dwc compile --vocab`; docs/data.md) -------
    Code("DW610", "unreadable-log", _E, "a raw log file cannot be read as CSV or Parquet",
         "The message names the file and what went wrong (no such file, a directory, not "
         "Parquet, a malformed CSV line). The format comes from the extension (`.csv`, "
         "`.parquet`, `.pq`); `--format` forces it."),
    Code("DW611", "log-missing-column", _E, "a log file lacks a column the spec reads",
         "Every feature reads the column named like it (or its `column = \"...\"`), every output "
         "its target's column. The help line names the closest column the file has."),
    Code("DW612", "not-a-number", _E, "a numeric or target value that does not parse as a number",
         "The message names the file, column and row. Numerics and targets are numbers; nulls "
         "of numerics are filled (`fill`), nulls of targets are errors (DW613)."),
    Code("DW613", "label-out-of-range", _E, "a target its loss cannot take, or a missing target",
         "bce targets are 0/1 or probabilities in [0, 1], poisson targets counts >= 0, ce targets "
         "integer class ids in [0, classes), mse targets finite; a row without a target is an "
         "error (drop such rows first)."),
    Code("DW614", "list-where-scalar", _E, "a list column where one value per row is expected, "
         "or the reverse",
         "Categorical features, width-1 numerics and width-1 targets read one value per row; "
         "sequences read a list column or a joined string; numerics and targets of width w > 1 "
         "read a list column of w numbers."),
    Code("DW615", "bad-split", _E, "a `--split` that cannot be used, or a split left without rows",
         "`--split` is TRAIN/VALID/TEST percentages summing to 100 (e.g. 80/10/10, or 90/10 "
         "without a test split), given only when no `--valid` files are; train and valid need "
         "at least one row."),
    Code("DW616", "non-finite-value", _E, "a numeric value that is infinite",
         "Nulls and NaN are filled with the feature's `fill`; infinities are errors (rescale or "
         "clip the column)."),
    Code("DW617", "not-an-id", _E, "a categorical value that cannot be a token",
         "Categorical and sequence values are strings, integers or booleans (a float column is "
         "read when every value is integral, as pandas writes integer columns with nulls); "
         "1.5 is no id, nor is a float of magnitude 2**53 or more (no longer exact)."),
    Code("DW618", "wrong-list-width", _E, "a list of numbers whose length is not the width",
         "A numeric of width w (or a target of an output of width w) reads lists of exactly w "
         "numbers; a null row is filled whole."),
    Code("DW619", "cannot-write-prepared", _E, "the prepared directory cannot be written",
         "`--out DIR` must be a new path or a directory `dwc data prepare` wrote before (it is "
         "replaced); the message says why it cannot be written. Nothing was written."),
    Code("DW620", "bad-vocabulary", _E, "`--vocab` names no vocabularies that fit the spec",
         "`dwc compile --vocab DIR` takes a prepared directory (or its vocab/ folder) written "
         "for a spec with the same categorical features: each vocabulary's size and encoding "
         "must match the feature's `vocab` and `encoding`."),
    Code("DW621", "vocab-from-other-spec", Severity.WARNING,
         "the prepared directory of `--vocab` was written for another spec",
         "Its manifest's spec_sha256 differs from the compiled spec's; the vocabularies fit its "
         "features (checked) but were counted for the other spec's data options."),
    Code("DW622", "log-given-twice", _E, "one log file named twice among --train, --valid, --test",
         "Each file is read once: the same file twice in --train would count its rows twice, "
         "and a file in two splits (--train X --valid X) leaks its rows from one split into the "
         "other. Paths are compared after resolving links and `..`."),
    # --- DW640-DW659: dwc train on a prepared directory, resume, schedules (docs/data.md) -------
    Code("DW640", "not-prepared-data", _E, "a --data directory that is not a prepared directory",
         "A directory given to `dwc train --data` must hold the manifest.json that `dwc data "
         "prepare` writes (format dwc-prepared, version 1, with inputs, outputs, splits and "
         "vocabularies); the message says what is missing. A .npz file is read as before."),
    Code("DW641", "prepared-schema-mismatch", _E,
         "prepared data whose columns differ from what the model reads",
         "Every input and output of the compiled model must be listed in the manifest and be a "
         "column of every shard with the dtype and per-row shape of docs/data.md (ids int64, "
         "numerics float32, sequences fixed_size_list<int64>[max_len]). Prepare the data again "
         "from the spec you train."),
    Code("DW642", "prepared-spec-changed", Severity.WARNING,
         "prepared data made from another version of the spec",
         "The manifest's spec_sha256 differs from the spec being trained. Training goes on when "
         "the inputs match, but a changed vocabulary, hashing or column mapping means the ids "
         "no longer mean what the spec says: run `dwc data prepare` again."),
    Code("DW643", "missing-shard", _E, "a shard of prepared data is missing or unreadable",
         "Every shard the manifest lists must exist and be Parquet, and the shards of a split "
         "must hold the rows the manifest counts. The directory is incomplete or was changed "
         "after `dwc data prepare`."),
    Code("DW644", "prepared-missing-split", _E, "prepared data without a train or valid split",
         "`dwc train` needs the train and valid splits of the manifest, each with rows; test is "
         "optional."),
    Code("DW645", "unreadable-vocabulary", _E, "a scenario feature's vocabulary cannot be read",
         "The per-scenario metrics are named from the vocabularies (`country=US, page=feed`); "
         "the manifest's vocabulary file of a scenario feature must be the JSON prepare wrote."),
    Code("DW646", "prepared-value-out-of-range", _E,
         "prepared data with an id, length or value the model cannot read",
         "An id at or above its feature's vocab, a sequence length above max_len (found from the "
         "Parquet statistics before the first step, or while reading) or a null. The spec's vocab "
         "or max_len is smaller than when the data was prepared: prepare it again."),
    Code("DW647", "resume-unavailable", _E, "--resume without a training checkpoint to resume",
         "`--resume [DIR]` continues from DIR/last.pt (DIR defaults to --out), the checkpoint "
         "`dwc train` writes after every epoch; the message says why it cannot be read."),
    Code("DW648", "resume-mismatch", _E, "--resume with another spec, data or settings",
         "A resumed run continues exactly where the checkpoint stopped only with the same spec, "
         "data, process count and settings; only --epochs, --patience and --max-steps may "
         "change (not --epochs under the cosine schedule, whose length it is). The notes list "
         "every difference."),
    Code("DW649", "bad-schedule", _E, "learning-rate schedule options that do not fit together",
         "`--lr-schedule step` needs `--step-size` (epochs between decays) and a `--gamma` in "
         "(0, 1]; `--step-size` and `--gamma` apply to the step schedule only; "
         "`--warmup-steps` is >= 0; `--shuffle-buffer` is at least 1 row."),
    # --- DW9xx: internal ------------------------------------------------------------------------
    Code("DW900", "internal-error", _E, "dwc itself failed: this is a bug",
         "Please file an issue with the spec and the command; rerun with DWC_DEBUG=1 for a traceback."),
]

_CORE: dict[str, Code] = {c.code: c for c in _TABLE}
assert len(_CORE) == len(_TABLE), "duplicate diagnostic code in the registry"


def _with_the_kinds_codes() -> dict[str, Code]:
    """The table above plus every layer kind's own codes (`Kind.codes`, in
    `dwc/layers/<kind>/codes.py`), in code order."""
    from dwc.layers import kinds

    merged = dict(_CORE)
    for kind in kinds().values():
        for c in kind.codes:
            assert c.code not in merged, f"{kind.name} re-registers {c.code}"
            merged[c.code] = c
    return dict(sorted(merged.items()))


CODES: Mapping[str, Code] = MergedOnFirstUse(_with_the_kinds_codes, partial=_CORE)
"""Every registered code (core and the layer kinds'), in code order, merged on first use."""
