"""MLoRA's diagnostic codes, its errors and its lint rules' (merged into `dwc.diagnostics.CODES`
through `Kind.codes`)."""

from __future__ import annotations

from dwc.diagnostics.codes import Code, Severity

CODES = (
    Code("DW332", "mlora-rank-out-of-range", Severity.ERROR,
         "an mlora rank that does not fit its layer",
         "A layer n -> m takes a rank r with 1 <= r <= min(n, m): A[d] B[d] has rank at most "
         "min(n, m), so a larger r only adds parameters. Give a smaller `rank`, or leave it out "
         "for MLoRA's rule r = max(m // reduce, 1)."),
    Code("DW333", "mlora-rank-count", Severity.ERROR,
         "an mlora rank list whose length is not the number of layers",
         "`rank = [16, 8, 4]` gives one rank per layer of `mlora(x, [256, 128, 64], ...)`; a "
         "single integer applies to every layer."),
    Code("DW334", "mlora-rank-and-reduce", Severity.ERROR,
         "an mlora layer given both `rank` and `reduce`",
         "`reduce` sets each layer's rank to max(out // reduce, 1); `rank` sets it directly, so "
         "the two are alternatives. Keep one of them."),
    Code("DW522", "mlora-rank-saves-nothing", Severity.WARNING,
         "an mlora rank so large that the low-rank adapters save nothing",
         "With r (n + m) >= n m each domain's A[d] and B[d] hold at least as many numbers as a "
         "full per-domain matrix."),
    Code("DW523", "mlora-single-domain", Severity.WARNING,
         "an mlora layer over a domain with a single id",
         "One domain means one adapter for every sample: W + A B is one matrix, so the layer is "
         "a plain mlp layer with extra parameters."),
)
