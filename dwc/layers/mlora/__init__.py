"""MLoRA (multi-domain low-rank adaptation): every layer is a shared linear plus a low-rank
adapter of the sample's own domain, `act(Dropout(x W + b) + (x A[d]) B[d] + c[d])`, with B and c
zero at the start (the shared model). fold-mlora (passes.py) merges each domain's W + A[d] B[d]
for inference where the merged weights fit a memory ceiling, into a MergedMloraLinear that runs
as an IndexedLinear; elsewhere the factors serve as trained. The runtime names the adapters as
scenario parts for `dwc train --two-stage`.

    h = mlora(x, [256, 128, 64], by = scenario)
"""

from dwc.layers.kind import Kind
from dwc.layers.mlora.codes import CODES
from dwc.layers.mlora.lint import MloraRankSavesNothing, MloraSingleDomain
from dwc.layers.mlora.lower import MLORA, lower_mlora
from dwc.layers.mlora.op import MergedMloraLinear, MloraLinear
from dwc.layers.mlora.torch import emit_merged_mlora_linear, emit_mlora_linear, fold_mlora

KIND = Kind(
    name="mlora",
    signatures=(MLORA,),
    lower={"mlora": lower_mlora},
    ops=(MloraLinear, MergedMloraLinear),
    torch={MloraLinear: emit_mlora_linear, MergedMloraLinear: emit_merged_mlora_linear},
    folds={MergedMloraLinear: fold_mlora},
    helpers={"mlora": "dwc.layers.mlora.runtime"},
    codes=CODES,
    lint_rules=(MloraRankSavesNothing, MloraSingleDomain),
)
