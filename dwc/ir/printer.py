"""The textual form of the IR, for `--dump-ir`, golden files and pass tests.

    model dw_mlp
    %z: vec[8] = concat(%country, %page)
    %h.generated: vec[664] = generator(%z) {hidden=[], act=relu, ...} @h_generator
"""

from __future__ import annotations

from dwc.ir.graph import Graph


def _value(v: object) -> str:
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def print_graph(graph: Graph) -> str:
    lines = [f"model {graph.model}"]
    for spec in graph.inputs:
        shape = ", ".join(["B", *map(str, spec.shape)])
        lines.append(f"input {spec.name}: {spec.dtype}[{shape}] ({spec.role})")
    for op in graph.ops:
        args = ", ".join(f"%{i}" for i in op.inputs)
        attrs = op.attrs()
        text = f"%{op.result}: {op.type} = {op.kind}({args})"
        if attrs:
            text += " {" + ", ".join(f"{k}={_value(v)}" for k, v in attrs.items()) + "}"
        if op.module:
            text += f" @{op.module}"
        lines.append(text)
    for out in graph.outputs:
        lines.append(f"output {out.name} = %{out.value} (logit %{out.logit}, loss {out.loss}, "
                     f"weight {out.weight:g})")
    return "\n".join(lines) + "\n"
