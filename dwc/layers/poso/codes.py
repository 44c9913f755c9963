"""POSO's diagnostic codes: misuse of `poso`/`poso_experts` (DW336-DW339, errors) and its lint
rules' (DW524-DW525, lint.py)."""

from dwc.diagnostics.codes import Code, Severity

CODES = (
    Code("DW336", "poso-code-not-a-condition", Severity.ERROR,
         "a POSO gate given a scenario id or a feature instead of a condition",
         "POSO's gates are networks on a personalisation code, a `condition` value (user-group "
         "features such as new or regular user, activity level). `by = scenario` or a feature "
         "name is the per-id form of LHUC and STAR: declare `condition pc = concat(...)` and "
         "write `by = pc`."),
    Code("DW337", "poso-gamma-not-positive", Severity.ERROR,
         "a POSO gate range `gamma` that is zero or negative",
         "The gates are gamma * sigmoid(...) in (0, gamma): with gamma <= 0 every gated unit is "
         "zero or flips sign. POSO's C is 2, so a gate starts at about 1."),
    Code("DW338", "poso-code-reads-input", Severity.ERROR,
         "a POSO gate conditioned on the layer's own input (`self`)",
         "A personalisation code is a condition of user-group features, the same for every "
         "layer; `self` is the self-wise form of `dynamic(...)`. Declare the code as a "
         "condition and write `by = pc`."),
    Code("DW339", "poso-input-is-experts", Severity.ERROR,
         "`poso` or `poso_experts` applied to an experts value",
         "`poso` and `poso_experts` read a vector. Gate an MMoE's experts with "
         "`poso_experts(x, count, [widths], by = pc)` on the shared input, and mix them with "
         "`mix(e, x)`."),
    Code("DW524", "poso-code-on-huge-vocabulary", Severity.WARNING,
         "a POSO personalisation code that reads a very high-cardinality id",
         "The code is meant to describe user groups (new or regular, activity); an id with a huge "
         "vocabulary makes each gate a per-id embedding that cold-start users have not trained, "
         "and the gates cannot be served from a per-group table."),
    Code("DW525", "poso-gate-cannot-amplify", Severity.WARNING,
         "POSO gates with `gamma <= 1`, which can only damp",
         "The gates lie in (0, gamma) and start near gamma / 2: with gamma <= 1 every layer "
         "starts at half its scale or less and no group can be amplified. POSO's C is 2."),
)
