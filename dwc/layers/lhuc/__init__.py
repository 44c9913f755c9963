"""LHUC (Learning Hidden Unit Contributions): `h * 2 sigmoid(r[id])`, one free vector r per id of
a scenario feature (or per scenario cell), initialised to 0 so every gate starts at exactly 1.

    h2 = lhuc(h, by = country)
"""

from dwc.layers.kind import Kind
from dwc.layers.lhuc.lower import SIGNATURE, lower
from dwc.layers.lhuc.op import Lhuc
from dwc.layers.lhuc.torch import emit

KIND = Kind(
    name="lhuc",
    signatures=(SIGNATURE,),
    lower={"lhuc": lower},
    ops=(Lhuc,),
    torch={Lhuc: emit},
    helpers={"lhuc": "dwc.layers.lhuc.runtime"},
)
