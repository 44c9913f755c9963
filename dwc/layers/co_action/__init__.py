"""CAN's co-action unit: the induction id's embedding row (the target item's) is reshaped into a
micro-MLP that the feed side (a user feature or behaviour sequence) runs through, raised to the
powers 1..orders; sequences are masked and sum-pooled (docs/models.md, 'CAN').

    ca = co_action(item_id, history, widths = [16, 8, 4], orders = 3)
"""

from dwc.layers.co_action.lower import SIGNATURE, lower
from dwc.layers.co_action.op import CoAction
from dwc.layers.co_action.torch import emit
from dwc.layers.kind import Kind

KIND = Kind(
    name="co_action",
    signatures=(SIGNATURE,),
    lower={"co_action": lower},
    ops=(CoAction,),
    torch={CoAction: emit},
    helpers={"co_action": "dwc.layers.co_action.runtime"},
)
