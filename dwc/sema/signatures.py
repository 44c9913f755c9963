"""Signatures of everything a spec can call: feature kinds, network operations, heads, modifiers.

One table drives argument checking (sema), the resolved-spec printer (`dwc fmt --resolved`) and the
language reference (docs/language.md is generated from it by `python -m dwc.docgen`).
"""

from __future__ import annotations

from dwc import layers
from dwc.sema.params import ACTIVATIONS, REQUIRED, Param, Signature
from dwc.sema.params import param as _p

__all__ = ["ACTIVATIONS", "LOSSES", "REQUIRED", "SIGNATURES", "Param", "Signature"]

_ACT = _p("act", "enum", "activation after each layer", "relu", choices=ACTIVATIONS)
_COLUMN = _p("column", "string", "data: the raw-data column `dwc data prepare` reads "
             "(unset: the feature's name)", None)
"""Data options (`column`, `encoding`, `min_count`, `fill`, `splitter`) tell `dwc data prepare`
how to read raw logs (docs/data.md); they never change the compiled model."""

SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in [
        # --- feature kinds ---
        Signature("categorical", "feature", (
            _p("vocab", "int", "number of distinct ids (ids are 0 .. vocab-1)", None, min=1),
            _p("dim", "int", "embedding width", None, min=1),
            _p("share", "feature", "reuse the embedding table of this categorical feature", None),
            _p("frozen", "bool", "keep the table fixed during training (pre-trained embeddings)",
               False),
            _COLUMN,
            _p("encoding", "enum", "data: how `dwc data prepare` maps raw values to ids: a "
               "vocabulary counted on the train split (most frequent first) or a hash into "
               "1 .. vocab-1; id 0 is null / unknown", "vocabulary", choices=("vocabulary", "hash")),
            _p("min_count", "int", "data: values seen fewer times in the train split map to id 0 "
               "(encoding = vocabulary)", 1, min=1),
        ), "An id feature with its own embedding table (or another feature's, with `share`).",
            "feature user_id : categorical(vocab = 1_000_000, dim = 16)"),
        Signature("numeric", "feature", (
            _p("width", "int", "number of floats per sample", 1, min=1),
            _p("norm", "enum", "input normaliser: none, log1p (sign(x)·log(1+|x|)) or batch (BatchNorm)",
               "none", choices=("none", "log1p", "batch")),
            _COLUMN,
            _p("fill", "float", "data: the value `dwc data prepare` writes for a null or NaN", 0.0),
        ), "Dense float input(s).", "feature price : numeric(norm = log1p)"),
        Signature("sequence", "feature", (
            _p("of", "feature", "the categorical feature whose ids and table the sequence uses",
               positional=True),
            _p("max_len", "int", "padded length T of the id sequence", min=1),
            _p("pool", "enum", "how the valid positions are pooled; attention is PTUPCDR's "
               "characteristic encoder (a_j = w2 . relu(W1 v_j + b1), masked softmax)", "mean",
               choices=("mean", "sum", "max", "attention")),
            _COLUMN,
            _p("splitter", "string", "data: the separator of a column holding joined strings "
               "(`a^b^c`); list columns are read as lists", "^"),
        ), "A padded id sequence (multi-hot / behaviour history) embedded with another feature's "
           "table and pooled; inputs are `name` (B x T ids) and `name_len` (B lengths).",
            "feature clicked : sequence(item_id, max_len = 50, pool = mean)"),
        # --- network operations ---
        Signature("fields", "network", (
            _p("inputs", "values", "features or values, one field each", positional=True),
        ), "Field-structured concatenation: keeps each input as a field (for field-wise gates).",
            "x = fields(user_id, item_id, price)"),
        Signature("concat", "network", (
            _p("inputs", "values", "features or values", positional=True),
        ), "Concatenation into one flat vector.", "z = concat(country, page)"),
        Signature("slice", "network", (
            _p("input", "value", "the value to take columns from", positional=True),
            _p("start", "int", "the first column (0-based)", positional=True, min=0),
            _p("width", "int", "the number of columns", 1, min=1),
        ), "Columns `start` .. `start + width - 1` of a value, e.g. one task's logit of a "
           "multi-task layer.", "click = slice(m, 0)"),
        Signature("linear", "network", (
            _p("input", "value", "the input value", positional=True),
            _p("out", "int", "output width", positional=True, min=1),
            _p("bias", "bool", "learn a bias", True),
            _p("per", "domain", "one weight set per id of this scenario feature (or `scenario` "
               "for the scenario cell): per-scenario heads", None),
        ), "An affine layer `x W + b`.", "logit = linear(h, 1)", dynamic=True),
        Signature("mlp", "network", (
            _p("input", "value", "the input value", positional=True),
            _p("widths", "int_list", "output width of each layer", positional=True, min=1),
            _ACT,
            _p("last_act", "bool", "apply the activation after the last layer too", True),
            _p("norm", "enum", "normalisation after each linear layer (before the activation)",
               "none", choices=("none", "batch", "layer")),
            _p("dropout", "float", "dropout rate after each activation", 0.0, min=0.0, max=1.0,
               max_exclusive=True),
        ), "A stack of linear layers: linear -> norm -> activation -> dropout per layer "
           "(FuxiCTR's order).", "h = mlp(x, [256, 128], act = relu, dropout = 0.1)", dynamic=True),
        Signature("add", "network", (
            _p("inputs", "values", "values of equal width", positional=True),
        ), "Element-wise sum, for residual connections.", "r = add(x, mlp(x, [32]))"),
        Signature("activation", "network", (
            _p("input", "value", "the input value", positional=True),
            _p("fn", "enum", "the activation", positional=True, choices=ACTIVATIONS[:-1]),
        ), "An element-wise activation.", "a = activation(h, tanh)"),
        Signature("layer_norm", "network", (
            _p("input", "value", "the input value", positional=True),
        ), "Layer normalisation with a learned scale and shift.", "n = layer_norm(h)"),
        Signature("batch_norm", "network", (
            _p("input", "value", "the input value", positional=True),
        ), "Batch normalisation (running statistics at inference).", "n = batch_norm(h)"),
        Signature("dropout", "network", (
            _p("input", "value", "the input value", positional=True),
            _p("p", "float", "drop probability", positional=True, min=0.0, max=1.0,
               max_exclusive=True),
        ), "Dropout (identity at inference).", "d = dropout(h, 0.2)"),
        Signature("dot", "network", (
            _p("inputs", "values", "two values of equal width", positional=True),
        ), "Row-wise inner product (B x 1), e.g. PTUPCDR's rating.", "r = dot(u_t, item)"),
        Signature("stop_gradient", "network", (
            _p("input", "value", "the input value", positional=True),
        ), "Identity forward, no gradient backward (PEPNet's sg).",
            "condition g = concat(user_id, stop_gradient(x))"),
        # --- heads ---
        Signature("sigmoid", "head", (_p("input", "value", "the logit", positional=True),),
                  "Probability head for binary targets (loss bce).",
                  "output ctr = sigmoid(linear(h, 1)) loss = bce"),
        Signature("softmax", "head", (_p("input", "value", "the logits", positional=True),),
                  "Class-probability head (loss ce).",
                  "output cls = softmax(linear(h, 5)) loss = ce"),
        Signature("identity", "head", (_p("input", "value", "the prediction", positional=True),),
                  "Regression head (loss mse).", "output rating = identity(linear(h, 1)) loss = mse"),
        Signature("exp", "head", (_p("input", "value", "the log-rate", positional=True),),
                  "Poisson rate head (loss poisson).",
                  "output clicks = exp(linear(h, 1)) loss = poisson"),
        # --- modifiers ---
        Signature("dynamic", "modifier", (
            _p("by", "condition", "the condition z (a `condition` name), or `self` for the "
               "layer's own input"),
            _p("hidden", "int_list", "hidden widths of the generator MLP ([] = linear generator)",
               (), min=1),
            _p("act", "enum", "activation between generator layers", "relu",
               choices=ACTIVATIONS[:-1]),
            _p("bias", "enum", "bias of each generated layer: generated per sample, static "
               "(trained, shared) or none", "generated", choices=("generated", "static", "none")),
            _p("init", "enum", "initialisation of the generator's last layer: PyTorch default; "
               "hyperfan (generated weights start at each target layer's fan-in scale); or "
               "residual (zero weights, and a bias holding each target layer's fan-in init: the "
               "layer starts as a static one). Unset: residual when `by` reads `self`, else "
               "default", None, choices=("default", "hyperfan", "residual")),
        ), "Makes a `linear`/`mlp` dynamic: its weights are generated per sample from a condition, "
           "W = reshape(G(z)) (docs/models.md, 'Generic dynamic-weight MLP'). "
           "`by = concat(self, z)` is mix-wise.",
            "h = mlp(x, [16, 8]) dynamic(by = z)"),
        *layers.signatures(),  # every layer kind's own (dwc/layers/<kind>/)
    ]
}

LOSSES = {"bce": "sigmoid", "ce": "softmax", "mse": "identity", "poisson": "exp"}
"""Loss hints and the head each expects."""
