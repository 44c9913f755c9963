"""M3oE's diagnostic codes (merged into dwc.diagnostics.CODES and docs/diagnostics.md)."""

from dwc.diagnostics.codes import Code, Severity

CODES = (
    Code("DW340", "m3oe-widths", Severity.ERROR, "an `m3oe` with fewer than three widths",
         "`widths` lists the STAR slot's width, the shared representation's, then each expert "
         "layer's (at least one); the towers keep the last: e.g. `widths = [512, 256, 256, 64]`."),
    Code("DW341", "m3oe-input", Severity.ERROR, "an `m3oe` over a value that is not one flat "
         "vector per sample",
         "M3oE's STAR slot and skip path read the flattened embeddings (a feature, `concat(...)` "
         "or a layer's output), not an experts value."),
    Code("DW526", "m3oe-single-task", Severity.WARNING, "an `m3oe` with one task",
         "With `tasks = 1` the task expert has no other task to balance against: it is one more "
         "shared expert behind a scalar weight, and the task level of the fusion balances nothing."),
    Code("DW527", "m3oe-single-domain", Severity.WARNING, "an `m3oe` whose domain has one id",
         "With one domain the STAR slot is a linear layer with two factors, the domain expert "
         "is one more shared expert and the domain level of the fusion balances nothing."),
)
