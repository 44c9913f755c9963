"""Per-cell linear layers in the AOTInductor build: one fused gather-and-reduce kernel each.

The TVM build's rewrite (`dwc.backends.tvm_per_cell`, whose docstring shows the exported
pattern), on the torch.export graph: what `_dwc_per_domain_linear` traces to, the side-by-side
product of x (B x K) with every cell's weights W (K x cells*N) followed by an `index_select` of
row b's slice at arange(B) * cells + cell, becomes

    y[b, n] = sum_k x[b, k] * W.reshape(K, cells, N)[k, cell[b], n]

which TorchInductor compiles into one loop nest reading each row's own weights where they lie:
no B x cells*N intermediate, no `cells` times the work. Layers narrower than MIN_WIDTH keep the
side-by-side form.
"""

from __future__ import annotations

import torch
from torch import fx

from dwc.backends.aoti_graph import called, example_value, rewrite_matches, same_size

aten = torch.ops.aten


MIN_WIDTH = 16
"""The narrowest per-cell layer rewritten. For narrower ones (APG's rank-8 core) TorchInductor
split the 8-term sum of each row across threads, one parallel region per row: 1.8 ms at
B = 1024, where the side-by-side matmul takes about 0.1 ms."""


def _every_row(node, rows) -> tuple[int, fx.Node] | None:
    """(cells, cell) when `node` is arange(rows) * cells + cell (either order of the add), with
    `cell` one integer id per row; else None."""
    add = called(node, aten.add.Tensor)
    if add is None or len(add.args) != 2 or add.kwargs:
        return None
    for scaled, cell in (add.args, add.args[::-1]):
        multiply = called(scaled, aten.mul.Tensor)
        if multiply is None or not isinstance(multiply.args[1], int):
            continue
        arange = called(multiply.args[0], aten.arange.default)
        ids = example_value(cell)
        if arange is None or len(arange.args) != 1 or not isinstance(ids, torch.Tensor):
            continue
        if same_size(arange.args[0] if isinstance(arange.args[0], int)
                      else example_value(arange.args[0]), rows) \
                and ids.dim() == 1 and same_size(ids.shape[0], rows) \
                and ids.dtype in (torch.int32, torch.int64):
            return multiply.args[1], cell
    return None


def _match(select: fx.Node):
    """(x, weight, cell, cells, width) of a side-by-side per-cell matmul's gather, or None.

    Exactly the exported form: index_select(reshape(matmul(x, W), [-1, N]), 0,
    arange(B) * cells + cell) with x float32 B x K, W float32 K x (cells * N), one cell per row
    of x, N at least MIN_WIDTH, the matmul and reshape used by nothing else, and the gather not
    itself an output of the program."""
    if called(select, aten.index_select.default) is None or select.args[1] != 0:
        return None
    reshape = called(select.args[0], aten.reshape.default, aten.view.default)
    matmul = called(reshape.args[0] if reshape else None, aten.matmul.default, aten.mm.default)
    if matmul is None or len(reshape.users) != 1 or len(matmul.users) != 1:
        return None
    x, weight = matmul.args
    xv, wv = example_value(x), example_value(weight)
    if not all(isinstance(v, torch.Tensor) and v.dim() == 2 and v.dtype == torch.float32
               for v in (xv, wv)) or not all(isinstance(d, int) for d in wv.shape):
        return None
    if any(user.op == "output" for user in select.users):  # its name is in the signature
        return None
    shape = reshape.args[1]
    if len(shape) != 2 or shape[0] != -1 or not isinstance(shape[1], int):
        return None
    found = _every_row(select.args[2], xv.shape[0])
    if found is None:
        return None
    cells, cell = found
    width = shape[1]
    if cells * width != wv.shape[1] or width < MIN_WIDTH:
        return None
    return x, weight, cell, cells, width


def gather_reduce_per_cell(program: torch.export.ExportedProgram) -> int:
    """Rewrites, in place, every side-by-side per-cell matmul + gather of `program`'s graph (see
    the module docstring) into the gather-and-reduce form; returns how many it rewrote. Anything
    else is left as it is; the side-by-side matmul and its index, once unused, are removed."""
    return rewrite_matches(program, _match, _gather_reduce)


def _gather_reduce(graph: fx.Graph, select: fx.Node, found) -> None:
    """Replaces one matched gather (`_match`'s `found`) by the gather-and-reduce form."""
    x, weight, cell, cells, width = found
    k = example_value(weight).shape[0]
    with graph.inserting_before(select):
        # cells x K x N view of the weights, each row's own cell picked, summed over K
        cube = graph.call_function(aten.reshape.default, (weight, [k, cells, width]))
        own = graph.call_function(aten.index_select.default, (cube, 1, cell))
        own = graph.call_function(aten.permute.default, (own, [1, 0, 2]))
        column = graph.call_function(aten.unsqueeze.default, (x, -1))
        terms = graph.call_function(aten.mul.Tensor, (column, own))
        y = graph.call_function(aten.sum.dim_IntList, (terms, [1]))
    y.meta["val"] = example_value(select)
    select.replace_all_uses_with(y)
    index = select.args[2]
    for dead in (select, select.args[0], select.args[0].args[0]):
        graph.erase_node(dead)
    _erase_unused(graph, index)


def _erase_unused(graph: fx.Graph, node: fx.Node) -> None:
    """Erases `node` and, transitively, the producers it alone used (the arange * cells index)."""
    if not isinstance(node, fx.Node) or node.users or node.op != "call_function":
        return
    inputs = list(node.all_input_nodes)
    graph.erase_node(node)
    for producer in inputs:
        _erase_unused(graph, producer)
