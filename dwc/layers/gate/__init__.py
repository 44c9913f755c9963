"""PEPNet's Gate NU and PPNet: `x * gamma * sigmoid(W2 relu(W1 z + b1) + b2)`, a gate per element
(or per field) computed from a condition z; with domain features and stop_gradient(x) in z it is
EPNet, and a PPNet tower scales every layer of an MLP by one on the personalised prior.

    ep = gate(e, by = domain_z)
    t = ppnet(ep, [128, 64], by = prior)

Inference folds make two other forms of it, their op types the marker: fuse-gates (passes.py)
stacks the first layers of the gates on one condition into a GateHidden, and fold-scenario-table
turns a gate whose condition depends on the scenario cell alone into a ScenarioGate (a per-cell
table of gate values; the gate says which input is that condition, `Gate.table_condition`).
"""

from dwc.layers.gate.lower import GATE, PPNET, lower_gate, lower_ppnet
from dwc.layers.gate.op import Gate, GateHidden, ScenarioGate
from dwc.layers.gate.torch import (
    emit_gate,
    emit_gate_hidden,
    emit_scenario_gate,
    fold_gate_hidden,
    fold_scenario_gate,
)
from dwc.layers.kind import Kind

KIND = Kind(
    name="gate",
    signatures=(GATE, PPNET),
    lower={"gate": lower_gate, "ppnet": lower_ppnet},
    ops=(Gate, GateHidden, ScenarioGate),
    torch={Gate: emit_gate, GateHidden: emit_gate_hidden, ScenarioGate: emit_scenario_gate},
    folds={GateHidden: fold_gate_hidden, ScenarioGate: fold_scenario_gate},
    helpers={"gate": "dwc.layers.gate.runtime"},
)
