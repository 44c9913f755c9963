"""What M2M's meta attention adds to the generated torch module: a `_DwcMetaAttention`
(runtime.py) reading its generator's slots, or in the inference form a
`_DwcScenarioMetaAttention` (runtime_scenario.py) whose per-cell layers `for_inference()`
computes from the generator's per-cell table."""

from __future__ import annotations

from dwc.layers.meta_attention.op import MetaAttention, ScenarioMetaAttention


def emit_meta_attention(b, op: MetaAttention) -> None:
    """`b` is the torch backend's builder (dwc.backends.torch.builder)."""
    base = op.slots[0].offset  # the meta unit's slots are contiguous from here
    slots = []
    for w, bias in zip(op.slots[::2], op.slots[1::2], strict=True):
        slots.append(f"({w.offset - base}, {bias.offset - base}, {bias.end - base}, "
                     f"{w.shape[0]}, {w.shape[1]})")
    attr = b.module_line(op, "meta_attention", "_DwcMetaAttention",
                         [str(op.task_dim), str(op.widths[-1]), slots, f'"{op.act}"'])
    first = b.slot_index[op.inputs[1]][op.slots[0].name]
    pieces = f"{b.var(op.inputs[1] + '.slots')}[{first}:{first + len(op.slots)}]"
    b.fwd(op, f"self.{attr}", [b.var(op.inputs[0]), f"torch.cat({pieces}, dim=1)"])


def emit_scenario_meta_attention(b, op: ScenarioMetaAttention) -> None:
    dims = [str(op.type.width), *map(str, op.folded.widths)]
    attr = b.module_line(op, "scenario_meta_attention", "_DwcScenarioMetaAttention",
                         [str(op.cells), dims, f'"{op.folded.act}"'])
    b.per_domain(op, attr)


def fold_scenario_meta_attention(ctx, op: ScenarioMetaAttention) -> None:
    """for_inference(): each cell's meta-unit layers from the generator's per-cell table (`ctx`:
    the backend's FoldContext); the task rows of the first layer become bias."""
    a, table = ctx.attr(op.module), ctx.table(op.generator)
    width, cells = op.type.width, op.cells
    slots = op.folded.slots
    for i, (w, b) in enumerate(zip(slots[::2], slots[1::2], strict=True)):
        ctx.lines.append(f"weight = {ctx.cell_slot(table, w, cells)}")
        ctx.lines.append(f"bias = {ctx.cell_slot(table, b, cells)}")
        if i == 0:
            ctx.lines.append(f'bias = bias + torch.einsum("t,cto->co", self.{a}.task, '
                             f"weight[:, {width}:])")
            ctx.lines.append(f"weight = weight[:, :{width}]")
        ctx.copy(f"{a}.weights[{i}]", "weight")
        ctx.copy(f"{a}.biases[{i}]", "bias")
