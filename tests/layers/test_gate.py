"""The Gate NU's runtime helper against PEPNet's equation, weights set by hand:
x * gamma * sigmoid(W2 relu(W1 z + b1) + b2), one gate per element or per field."""

from __future__ import annotations

import math

import pytest
import torch

from dwc.backends.torch.inline import helper_source
from dwc.layers.gate.runtime import _DwcGateNU

S1 = 1.0 / (1.0 + math.exp(-1.0))  # sigmoid(1)


def _set(gate: _DwcGateNU, w2, b2) -> None:
    with torch.no_grad():
        if gate.hidden is not None:
            gate.hidden.weight.copy_(torch.tensor([[1.0, -1.0]]))  # W1 z + b1 = 1 - 2 + 2 = 1
            gate.hidden.bias.copy_(torch.tensor([2.0]))
        gate.out.weight.copy_(torch.tensor(w2))
        gate.out.bias.copy_(torch.tensor(b2))


@pytest.mark.parametrize("grad", [True, False])  # the helper has an autograd and a no-grad path
def test_element_gates_scale_each_coordinate(grad):
    gate = _DwcGateNU(n_in=2, hidden=1, width=3, gamma=2.0)
    _set(gate, [[0.0], [1.0], [-1.0]], [0.0, 0.0, 1.0])  # logits (0, 1, 0)
    x, z = torch.tensor([[3.0, 4.0, 5.0]]), torch.tensor([[1.0, 2.0]])
    with torch.set_grad_enabled(grad):
        out = gate(x, z)
    torch.testing.assert_close(out, torch.tensor([[3.0 * 2 * 0.5, 4.0 * 2 * S1, 5.0 * 2 * 0.5]]))


def test_field_gates_scale_every_element_of_their_field():
    gate = _DwcGateNU(n_in=2, hidden=1, width=3, gamma=2.0, fields=[1, 2])
    _set(gate, [[0.0], [1.0]], [0.0, 0.0])  # logits (0, 1): field 1 by 2 sigmoid(0), field 2 ...
    out = gate(torch.tensor([[3.0, 4.0, 5.0]]), torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(out, torch.tensor([[3.0, 4.0 * 2 * S1, 5.0 * 2 * S1]]))


def test_without_its_first_layer_z_is_already_the_hidden_units():
    """fuse-gates: relu(W1 z + b1) of every gate ran as one GEMM before the gate."""
    gate = _DwcGateNU(n_in=2, hidden=1, width=3, gamma=2.0, first_layer=False)
    assert gate.hidden is None
    _set(gate, [[0.0], [1.0], [-1.0]], [0.0, 0.0, 1.0])
    out = gate(torch.tensor([[3.0, 4.0, 5.0]]), torch.tensor([[1.0]]))  # hidden unit = 1
    torch.testing.assert_close(out, torch.tensor([[3.0, 8.0 * S1, 5.0]]))


def test_gate_helper_inlines_without_its_imports():
    code, needs = helper_source("dwc.layers.gate.runtime")
    assert code.startswith("class _DwcGateNU(nn.Module):") and "import" not in code
    assert needs == ()


def test_a_gate_names_its_condition_and_its_per_cell_form():
    from dwc.ir.types import IdsType, VecType
    from dwc.layers.gate.op import Gate, ScenarioGate

    gate = Gate(result="h", inputs=("x", "z"), type=VecType(3), in_features=2, hidden=1,
                module="h_gate", binding="h")
    assert gate.table_condition() == "z" == gate.conditioning_inputs()[0]
    table = gate.as_table("scenario.cell", 6, "h_gate_table")
    assert isinstance(table, ScenarioGate) and table.inputs == ("x", "scenario.cell")
    assert (table.result, table.module, table.generator, table.folded) == (
        "h", "h_gate_table", "z", gate)
    table.verify((VecType(3), IdsType(6)), {})
    fused = Gate(result="h", inputs=("x", "z.gate_hidden"), type=VecType(3), in_features=2,
                 hidden=1, hidden_offset=0, module="h_gate", binding="h")
    assert fused.table_condition() is None  # its first layer is another op's


def test_gate_verify_rejects_a_field_gate_on_other_fields():
    from dwc.ir.ops import VerificationError
    from dwc.ir.types import FieldsType, VecType
    from dwc.layers.gate.op import Gate

    gate = Gate(result="h", inputs=("x", "z"), type=FieldsType((1, 2)), in_features=2, hidden=1,
                granularity="field", fields=(1, 2), module="h_gate", binding="h")
    gate.verify((FieldsType((1, 2)), VecType(2)), {})
    with pytest.raises(VerificationError, match="field gates"):
        gate.verify((FieldsType((2, 1)), VecType(2)), {})
    with pytest.raises(VerificationError, match="condition width"):
        gate.verify((FieldsType((1, 2)), VecType(5)), {})
