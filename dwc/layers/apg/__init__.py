"""APG (Adaptive Parameter Generation): a dynamic layer re-parameterised as W = U S(z) V at
rank K, each layer with its own generator of the K x K core S (and of U, V unless shared);
shared static factors may be trained over-parameterised, U = U_l U_r and V = V_l V_r.

    h = mlp(x, [256, 128]) dynamic(by = z) apg(rank = [32, 16], overparam = 4x)

lower.py lowers `apg(...)` to full-rank dynamic linears carrying their `ApgKnobs`; passes.py
(lowrank, share, overparam, decompose, fold-overparam) carries the knobs out.
"""

from dwc.layers.apg.lower import SIGNATURE, make_fc
from dwc.layers.apg.op import FoldedLowRankDynamicLinear, LowRankDynamicLinear
from dwc.layers.apg.torch import emit, fold_overparam
from dwc.layers.kind import Kind

KIND = Kind(
    name="apg",
    signatures=(SIGNATURE,),
    modifiers={"apg": make_fc},
    ops=(LowRankDynamicLinear, FoldedLowRankDynamicLinear),
    torch={LowRankDynamicLinear: emit, FoldedLowRankDynamicLinear: emit},
    folds={FoldedLowRankDynamicLinear: fold_overparam},
    helpers={"lowrank": "dwc.layers.apg.runtime"},
)
