"""AdaSparse's diagnostic codes (merged into `dwc.diagnostics.CODES` through `Kind.codes`)."""

from dwc.diagnostics.codes import Code, Severity

CODES = (
    Code("DW324", "adasparse-threshold-out-of-range", Severity.ERROR,
         "an AdaSparse threshold that prunes every unit or none",
         "A unit is zeroed where its factor is at most `eps`. Binarization's factor is "
         "sigmoid(alpha s), in (0, 1); scaling's and fusion's is beta sigmoid(.), in (0, beta): "
         "`eps` must lie inside that range (and `beta` be positive), or every unit is pruned "
         "(or none ever is). The public code uses eps = 0.01, beta = 2."),
    Code("DW325", "adasparse-condition-reads-self", Severity.ERROR,
         "`by` of adasparse is `self` or reads it",
         "`by` names the domain condition (`condition e = concat(domain)`), which every pruner "
         "reads and the first layer takes as its domain-aware input. Pruners that also read the "
         "activations they gate are written `reads = domain_and_hidden`."),
    Code("DW326", "adasparse-option-without-effect", Severity.ERROR,
         "an adasparse option that the chosen pruner or regulariser setting never reads",
         "Binarization has no `beta`, scaling no `alpha` or `alpha_step`, and `sparsity` (the "
         "target pruned fraction) needs a positive `sparsity_weight`. Remove the option or choose "
         "the form that reads it."),
    Code("DW518", "adasparse-condition-not-per-domain", Severity.WARNING,
         "adasparse pruners whose condition reads features that are not scenario features",
         "With `reads = domain` a pruner is a function of its condition; when that reads only "
         "scenario features, serving looks every domain's factors up in a table. Per-sample "
         "features in the condition give each sample its own sparse structure and keep every "
         "pruner running at serving time."),
    Code("DW519", "adasparse-pruner-reads-activations", Severity.INFO,
         "adasparse pruners that read the activations they gate (`reads = domain_and_hidden`)",
         "The public port scores each pruner from [e ; activations], so its factors vary per "
         "sample; the paper describes one sparse structure per domain (`reads = domain`, the "
         "default), which folds into a per-domain table. The message gives both forms' "
         "inference FLOPs."),
)
