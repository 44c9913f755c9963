"""LHUC (Learning Hidden Unit Contributions): `h * 2 sigmoid(r[id])`, one free vector r per id of
a scenario feature (or per scenario cell), initialised to 0 so every gate starts at exactly 1.

    h2 = lhuc(h, by = country)

Inference fold: fold-lhuc (passes.py) tabulates the gates 2 sigmoid(r) once per id.
"""

from dwc.layers.kind import Kind
from dwc.layers.lhuc.lower import SIGNATURE, lower
from dwc.layers.lhuc.op import FoldedLhuc, Lhuc
from dwc.layers.lhuc.torch import emit, fold

KIND = Kind(
    name="lhuc",
    signatures=(SIGNATURE,),
    lower={"lhuc": lower},
    ops=(Lhuc, FoldedLhuc),
    torch={Lhuc: emit, FoldedLhuc: emit},
    folds={FoldedLhuc: fold},
    helpers={"lhuc": "dwc.layers.lhuc.runtime"},
)
