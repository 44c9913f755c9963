"""HMoE's diagnostic codes (errors DW320-DW323, lint DW516-DW517), merged into
`dwc.diagnostics.CODES` through the kind's `codes`."""

from dwc.diagnostics.codes import Code, Severity

CODES = (
    Code("DW320", "hmoe-single-scenario", Severity.ERROR,
         "`hmoe(by = ...)` over a domain with fewer than two ids",
         "HMoE has one gate, tower and head per id of `by` and fuses the heads: with one id "
         "there is nothing to fuse (its fusion weight is always 1). Use a domain with two or "
         "more ids, or `mix(experts(x, ...), x)` for a single task."),
    Code("DW321", "hmoe-experts-input", Severity.ERROR,
         "`hmoe` given an experts value as its input",
         "`hmoe` builds its own shared experts (`experts =`, `expert =`) from the input, which "
         "its gates and fusion nets read too: pass the shared input (`hmoe(x, ...)`), not the "
         "output of `experts(...)`."),
    Code("DW322", "hmoe-by-not-a-domain", Severity.ERROR,
         "`hmoe(by = ...)` names a condition or a value instead of a domain",
         "`by` picks each sample's scenario head, so it must be discrete ids: a categorical "
         "feature marked `scenario`, or `scenario` for the scenario cell. The gates and fusion "
         "weights already read the input."),
    Code("DW516", "hmoe-many-scenarios", Severity.WARNING,
         "an `hmoe` whose per-scenario gates and towers cost more than its shared experts",
         "Every sample runs the gate and tower of every scenario (each scenario's tower output "
         "enters the fusion), so that part grows with the number of ids of `by`. When it costs "
         "more per sample than the experts, group the scenarios into fewer ids, narrow the "
         "gates and towers, or use a layer that computes only the sample's own domain "
         "(`star`, `linear(..., per = ...)`). The message gives both FLOP counts."),
    Code("DW517", "hmoe-single-expert", Severity.WARNING,
         "an `hmoe` with `experts = 1`",
         "The softmax over one expert is always 1: every gate's output is constant, its "
         "parameters get no gradient, and the model is a shared bottom under the towers. Use "
         "several experts (the default is 4)."),
)
