"""STAR (star topology adaptive recommender): every layer's weights are the shared ones times a
domain's, `x (W * W_p[d]) + (b + b_p[d])`, with W_p = 1 and b_p = 0 at the start (the shared
model), and a partitioned normalisation with per-domain statistics. fold-star (passes.py) merges
each domain's weights once for inference, into a FoldedStarLinear that runs as an IndexedLinear;
fold-partitioned-norm turns each partitioned norm into one scale and shift per domain.

    n = partitioned_norm(x, by = scenario)
    h = star(n, [64, 32], by = scenario)
"""

from dwc.layers.kind import Kind
from dwc.layers.star.lower import PARTITIONED_NORM, STAR, lower_partitioned_norm, lower_star
from dwc.layers.star.op import FoldedPartitionedNorm, FoldedStarLinear, PartitionedNorm, StarLinear
from dwc.layers.star.torch import (
    emit_folded_star_linear,
    emit_partitioned_norm,
    emit_star_linear,
    fold_partitioned_norm,
    fold_star,
)

KIND = Kind(
    name="star",
    signatures=(STAR, PARTITIONED_NORM),
    lower={"star": lower_star, "partitioned_norm": lower_partitioned_norm},
    ops=(StarLinear, PartitionedNorm, FoldedStarLinear, FoldedPartitionedNorm),
    torch={StarLinear: emit_star_linear, PartitionedNorm: emit_partitioned_norm,
           FoldedStarLinear: emit_folded_star_linear,
           FoldedPartitionedNorm: emit_partitioned_norm},
    folds={FoldedStarLinear: fold_star, FoldedPartitionedNorm: fold_partitioned_norm},
    helpers={"star": "dwc.layers.star.runtime",
             "partitioned_norm": "dwc.layers.star.runtime_partitioned_norm"},
)
