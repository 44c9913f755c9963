"""SENet (FiBiNET): field gating conditioned on the fields themselves. Squeeze each field to its
mean, excite through a bias-free bottleneck `a = act(W2 relu(W1 z))`, re-weight field i by a_i.

    e = senet(fields(user_id, item_id, category), reduction = 3)
"""

from dwc.layers.kind import Kind
from dwc.layers.senet.lower import SIGNATURE, lower
from dwc.layers.senet.op import SeNet
from dwc.layers.senet.torch import emit

KIND = Kind(
    name="senet",
    signatures=(SIGNATURE,),
    lower={"senet": lower},
    ops=(SeNet,),
    torch={SeNet: emit},
    helpers={"senet": "dwc.layers.senet.runtime"},
)
