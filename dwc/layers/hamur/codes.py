"""HAMUR's diagnostic codes (merged into `dwc.diagnostics.CODES` through `Kind.codes`)."""

from __future__ import annotations

from dwc.diagnostics.codes import Code, Severity

CODES = (
    Code("DW328", "hamur-not-a-hypernetwork", Severity.ERROR,
         "a hamur cell's `by` names a value that is not a hyper-network",
         "A cell's `by` is a condition (the cell then has a hyper-network of its own: give it "
         "`rank`) or the value of a `hamur_hypernet(by = z, rank = K)`, whose core the cell "
         "shares. `hamur_hypernet` itself reads a condition, never `self`."),
    Code("DW329", "hamur-option-of-shared-hypernetwork", Severity.ERROR,
         "`rank` or `hidden` set on a cell that shares a hyper-network",
         "A shared hyper-network's rank and hidden widths are set once, in its "
         "`hamur_hypernet(...)`; every cell reading it uses its K x K core."),
    Code("DW520", "hamur-rank-not-low", Severity.INFO,
         "a HAMUR rank that does not bound the rank of the adapter's maps",
         "With K >= min(N, M) the N x M map U H V can have any rank: the factorisation only "
         "shrinks what the hyper-network generates per sample (K² numbers instead of N M)."),
    Code("DW521", "hamur-core-larger-than-map", Severity.WARNING,
         "a HAMUR core H with at least as many numbers as the map it factors",
         "With K² >= N M the hyper-network generates more numbers per sample than the down map "
         "itself has (and its last layer costs K² x its input multiply-adds), so the factored "
         "form saves nothing over generating W directly; use a rank below sqrt(N M)."),
)
