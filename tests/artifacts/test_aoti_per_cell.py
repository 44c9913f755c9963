"""The AOTInductor build's per-cell rewrite (dwc.backends.aoti_per_cell): every side-by-side
per-cell matmul + gather of an exported model becomes one gather-and-reduce over each row's own
cell's weights, computing what the side-by-side form computes; a gather that is not a row's own
slice is left alone. (Runs the exported programs, no C++ build; test_aoti builds the packages.)"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dwc.backends.aoti_per_cell import gather_reduce_per_cell
from dwc.backends.export import example_args, export_program, inference_model
from dwc.driver import compile_source, load_source
from tests.conftest import ROOT

pytestmark = [pytest.mark.filterwarnings("ignore")]

aten = torch.ops.aten


def _targets(program) -> list:
    return [n.target for n in program.graph_module.graph.nodes if n.op == "call_function"]


def _program(example: str):
    result = compile_source(load_source(ROOT / "examples" / f"{example}.dw"), "torch")
    im = inference_model(result.files["model.py"], result.inference.model, None)
    return im, export_program(im, 8192)


@pytest.mark.parametrize(("example", "layers"), [("star", 2), ("apg", 2), ("mlora", 3)])
def test_every_per_cell_layer_of_an_example_is_rewritten_and_computes_the_same(example, layers):
    im, program = _program(example)
    before = copy.deepcopy(program)
    matmuls = _targets(program).count(aten.matmul.default)
    assert gather_reduce_per_cell(program) == layers
    assert _targets(program).count(aten.matmul.default) == matmuls - layers
    assert _targets(program).count(aten.sum.dim_IntList) >= layers
    assert gather_reduce_per_cell(program) == 0  # nothing of the pattern is left
    for batch in (1, 7, 300):  # 300 rows: every cell present
        args = example_args(im, batch)
        with torch.no_grad():
            expected, got = before.module()(*args), program.module()(*args)
        for e, g in zip(expected, got, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


class _SideBySide(nn.Module):
    """x (B x 6) times 3 cells' 6 x `width` weights side by side, each row's slice gathered;
    the variants change the index's scale, shift its rows, broadcast one cell to every row, or
    narrow the cells below MIN_WIDTH."""

    def __init__(self, scale: int = 3, shift: int = 0, width: int = 16) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 3 * width,
                                               generator=torch.Generator().manual_seed(0)))
        self.scale, self.shift, self.width = scale, shift, width

    def forward(self, x, cell):
        every = x @ self.weight
        rows = torch.arange(x.shape[0]) if not self.shift else torch.arange(
            self.shift, x.shape[0] + self.shift)
        # + 1: a gather that is itself the program's output is never rewritten
        return every.reshape(-1, self.width).index_select(0, rows * self.scale + cell) + 1


def _exported(module, cells: int | None = None):
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    cell = torch.tensor([2, 0, 1, 2, 2]) if cells is None else torch.zeros(cells, dtype=torch.long)
    batch = torch.export.Dim("batch", min=2, max=64)
    shapes = ({0: batch}, {0: batch} if cells is None else None)
    return torch.export.export(module, (x, cell), dynamic_shapes=shapes), x, cell


def test_the_rewrite_computes_each_rows_slice():
    module = _SideBySide().eval()
    program, x, cell = _exported(module)
    assert gather_reduce_per_cell(program) == 1
    assert aten.matmul.default not in _targets(program)
    expected = torch.stack([x[b] @ module.weight[:, 16 * c:16 * c + 16] + 1
                            for b, c in enumerate(cell)])
    torch.testing.assert_close(program.module()(x, cell), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("variant", "cells"), [
    ({"scale": 2}, None),  # arange * 2: not the 3 cells the weight holds
    ({"shift": 1}, None),  # rows shifted by one: not each row's own slice
    ({}, 1),  # one cell broadcast to every row: cell[b] would read past it
    ({"width": 8}, None),  # narrower than MIN_WIDTH: Inductor splits such sums badly
])
def test_a_gather_that_is_not_a_per_cell_slice_is_left_alone(variant, cells):
    program, _, _ = _exported(_SideBySide(**variant).eval(), cells)
    assert gather_reduce_per_cell(program) == 0
    assert aten.matmul.default in _targets(program)
