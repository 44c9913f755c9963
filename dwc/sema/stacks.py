"""Layer stacks in the checked walk: `linear` and `mlp` with their modifiers, lowered into a stack
of layers (fc -> norm -> act -> dropout, gates where placed).

A layer is static, per domain (`per = ...`), generic dynamic (one generator emits every layer's
weights; self-wise and mix-wise conditions give each layer its own), or re-parameterised by a
layer kind's modifier after `dynamic(...)` (APG's `apg(...)`, dwc/layers/apg/lower.py), which gets
a `DynamicLayer` and makes each layer itself. `stack` and `condition` are what such kinds call
back (`el.stack`, `el.condition`, `el.modifier_args`); `defaults` declarations fill in modifiers'
options.

`Layers` is a part of the elaborator (`dwc.sema.elaborate._Elaborator`).
"""

from __future__ import annotations

from dataclasses import replace

from dwc import layers
from dwc.diagnostics import did_you_mean
from dwc.ir import ops as ir
from dwc.ir.types import VecType
from dwc.parse import ast
from dwc.sema.signatures import SIGNATURES, Signature
from dwc.sema.state import State
from dwc.sema.values import DynamicLayer, Value


def _reads_self(node: object) -> bool:
    """Whether a `by` reads the layer's own input: `self`, or `self` inside concat(...)."""
    if isinstance(node, ast.Ref):
        return node.name == "self"
    return isinstance(node, ast.Call) and any(_reads_self(a) for a in node.args)


def generator_init(init: str | None, by: object) -> str:
    """A generator's init: the spec's, else `residual` for a condition that reads `self` (the
    generated weights are then a polynomial in the layer's input: a stack of such layers with
    PyTorch's default init overflows) and PyTorch's `default` otherwise."""
    if init is not None:
        return init
    return "residual" if _reads_self(by) else "default"


class Layers:
    """Lowering of layer stacks, mixed into the elaborator (its state is `self.s`)."""

    s: State

    # ------------------------------------------------------------------ linear and mlp
    def op_linear(self, call, sig, binding):
        return self.layers(call, sig, binding, single=True)

    def op_mlp(self, call, sig, binding):
        return self.layers(call, sig, binding, single=False)

    def layers(self, call: ast.Call, sig: Signature, binding: str, single: bool) -> Value:
        args = self.bind_args(call, sig)
        x = self.value_of(args["input"], binding)
        lits = self.literals(args, sig)
        if single:
            widths, act, last_act, norm, dropout = (lits["out"],), "none", False, "none", 0.0
        else:
            widths, act = lits["widths"], lits["act"]
            last_act, norm, dropout = lits["last_act"], lits["norm"], lits["dropout"]
            if not widths:
                self.fail("DW304", "'mlp' needs at least one layer width", args["widths"].span,
                          "empty list", help=f"e.g. {sig.example}")
        mods = self.modifiers(call, sig)
        dims = (x.type.width, *widths)
        deps = set(x.deps)
        bias = lits["bias"] if single else True

        if single and args["per"] is not None:
            if mods:
                self.fail("DW311", "per-domain weights and dynamic weights are alternatives",
                          next(iter(mods.values())).span, help="remove 'per' or the modifier")
            ids, domains = self.domain(args["per"], sig)

            def make_fc(i, h, n_in, n_out, ssa):
                self.emit(ir.IndexedLinear(result=ssa, inputs=(h.ssa, ids), type=VecType(n_out),
                                           in_features=n_in, out_features=n_out, domains=domains,
                                           span=call.span, module=self.module(binding),
                                           binding=binding))
        elif "dynamic" not in mods:
            def make_fc(i, h, n_in, n_out, ssa):
                module = self.module(binding if single else f"{binding}_fc{i}")
                self.emit(ir.Linear(result=ssa, inputs=(h.ssa,), type=VecType(n_out),
                                    in_features=n_in, out_features=n_out, bias=bias,
                                    span=call.span, module=module, binding=binding))
        else:
            dyn = mods["dynamic"]
            dsig = SIGNATURES["dynamic"]
            dargs = self.modifier_args(dyn, dsig)
            dl = self.literals(dargs, dsig)
            bias_mode = dl["bias"] if bias else "none"
            # a modifier after dynamic(...) re-parameterises it: its layer kind makes the layers
            reparam = [name for name in mods if name != "dynamic"]
            layer = DynamicLayer(call, binding, dims, dargs["by"], dl, bias_mode,
                                 generator_init(dl["init"], dargs["by"]), deps)
            if reparam:
                name = reparam[0]
                make_fc = layers.layer_modifiers()[name](self, mods[name], SIGNATURES[name],
                                                         layer)
            else:
                make_fc = self.generic_dynamic(layer, x, dyn)
        h = self.stack(call, binding, x, dims, make_fc, act=act, last_act=last_act, norm=norm,
                       dropout=dropout, single=single)
        return Value(h.ssa, h.type, frozenset(deps), call.span)

    # ------------------------------------------------------------------ modifiers
    def modifiers(self, call: ast.Call, sig: Signature) -> dict[str, ast.Modifier]:
        found: dict[str, ast.Modifier] = {}
        for mod in call.modifiers:
            name = mod.name.text
            if name in found:
                self.fail("DW312", f"'{name}' is given twice", mod.span, "again here",
                          help="merge the options into one modifier")
            if not sig.dynamic:
                self.fail("DW311", f"'{name}' cannot modify '{sig.name}'", mod.span,
                          help="'dynamic(...)' applies to linear and mlp")
            if name != "dynamic" and "dynamic" not in found:
                self.fail("DW311", f"'{name}(...)' re-parameterises a dynamic layer", mod.span,
                          "no dynamic(...) before it",
                          help=f"write 'dynamic(by = z) {name}(...)'")
            found[name] = mod
        return found

    def modifier_args(self, mod: ast.Modifier, sig: Signature) -> dict[str, object]:
        """A modifier's arguments bound to its signature, the spec's `defaults` filling in."""
        return self.bind_args(mod, sig, self.s.defaults.get(sig.name))

    def defaults_decl(self, stmt: ast.DefaultsDecl) -> None:
        for mod in stmt.modifiers:
            sig = SIGNATURES[mod.name.text]
            if mod.args:
                self.fail("DW303", f"'defaults {sig.name}(...)' takes only named options",
                          mod.args[0].span, help=f"e.g. defaults {sig.name}(hidden = [64])"
                          if sig.name == "dynamic" else "e.g. defaults apg(rank = 8)")
            for kw in mod.kwargs:
                param = sig.param(kw.name.text)
                if param is None or param.name == "by":
                    names = [p.name for p in sig.params if p.name != "by"]
                    self.fail("DW206", f"'{sig.name}' has no default option '{kw.name.text}'",
                              kw.name.span, help=did_you_mean(kw.name.text, names)
                              or f"options: {', '.join(names)}")
                if param.kind not in ("rank", "overparam"):  # those are checked per layer
                    self.literal(kw.value, param, sig)
                self.s.defaults.setdefault(sig.name, {})[kw.name.text] = kw

    # ------------------------------------------------------------------ dynamic weights
    def generic_dynamic(self, layer: DynamicLayer, x: Value, dyn):
        """The generic dynamic-weight MLP (docs/models.md): one generator emits every layer's weight
        (then bias), in order. A condition that reads `self` (self-wise, or mix-wise with
        `concat(self, z)`) is each layer's own input, so every layer of an mlp gets its own
        generator reading that layer's input (FuxiCTR's self-wise mode)."""
        dims, binding, bias_mode = layer.dims, layer.binding, layer.bias
        if len(dims) > 2 and _reads_self(layer.by):
            def self_wise(i, h, n_in, n_out, ssa):
                bias_module = f"{binding}_bias{i}" if bias_mode == "static" else None
                self.own_generator_layer(layer, str(i), h, n_in, n_out, ssa, dyn.span,
                                         bias_module)
            return self_wise
        z = self.condition(layer.by, x, binding)
        layer.deps |= z.deps
        offset = 0
        slots: list[tuple[ir.Slot, ir.Slot | None]] = []
        for i, (n_in, n_out) in enumerate(zip(dims, dims[1:], strict=False)):
            w = ir.Slot(f"w{i}", offset, (n_in, n_out))
            b = ir.Slot(f"b{i}", w.end, (n_out,)) if bias_mode == "generated" else None
            offset = (b or w).end
            slots.append((w, b))
        gen = self.ssa(f"{binding}.generated")
        self.emit(ir.Generator(result=gen, inputs=(z.ssa,), type=VecType(offset),
                               in_features=z.type.width, hidden=layer.generator["hidden"],
                               act=layer.generator["act"], init=layer.init,
                               slots=tuple(t for pair in slots for t in pair if t is not None),
                               span=dyn.span, module=self.module(f"{binding}_generator"),
                               binding=binding))
        single = len(dims) == 2

        def make_fc(i, h, n_in, n_out, ssa):
            w, b = slots[i]
            module = None
            if bias_mode == "static":
                module = self.module(f"{binding}_bias" if single else f"{binding}_bias{i}")
            self.emit(ir.DynamicLinear(result=ssa, inputs=(h.ssa, gen), type=VecType(n_out),
                                       in_features=n_in, out_features=n_out, weight=w,
                                       bias=bias_mode, bias_slot=b, span=layer.call.span,
                                       module=module, binding=binding,
                                       layer="" if single else str(i)))
        return make_fc

    def own_generator_layer(self, layer: DynamicLayer, tag: str, h: Value, n_in: int, n_out: int,
                            ssa: str, span, bias_module: str | None, apg: object = None) -> None:
        """One dynamic layer of `layer` with a generator of its own: `by` resolved against this
        layer's input `h` (its condition named with `tag`), the generator emitting this layer's
        weight (then bias), the dynamic linear reading it. Self-wise layers and APG's layers are
        made this way; `bias_module` names the owner of a static bias, `apg` carries APG's knobs."""
        binding, bias_mode = layer.binding, layer.bias
        z = self.condition(layer.by, h, binding, tag=tag)
        layer.deps.update(z.deps)
        w = ir.Slot("w", 0, (n_in, n_out))
        b = ir.Slot("b", w.end, (n_out,)) if bias_mode == "generated" else None
        gen = self.ssa(f"{binding}.generated{tag}")
        self.emit(ir.Generator(result=gen, inputs=(z.ssa,), type=VecType((b or w).end),
                               in_features=z.type.width, hidden=layer.generator["hidden"],
                               act=layer.generator["act"], init=layer.init,
                               slots=(w, b) if b else (w,), span=span,
                               module=self.module(f"{binding}_generator{tag}"), binding=binding))
        module = self.module(bias_module) if bias_module is not None else None
        self.emit(ir.DynamicLinear(
            result=ssa, inputs=(h.ssa, gen), type=VecType(n_out), in_features=n_in,
            out_features=n_out, weight=w, bias=bias_mode, bias_slot=b, span=layer.call.span,
            module=module, binding=binding, apg=apg, layer=tag))

    def condition(self, node: object, x: Value, binding: str, tag: str = "") -> Value:
        """Resolve `by`: a condition, `self` (the layer's input) or concat(...) of them (mix-wise).

        `tag` is the layer index for a per-layer condition (its SSA name `binding.condition<i>`)."""
        if isinstance(node, ast.Ref) and node.name == "self":
            return x
        if isinstance(node, ast.Call) and node.func.text == "concat" and node.args \
                and not node.kwargs and not node.modifiers:
            parts = [self.condition(a, x, binding, tag) for a in node.args]
            ssa = self.ssa(f"{binding}.condition{tag}")
            width = sum(p.type.width for p in parts)
            self.emit(ir.Concat(result=ssa, inputs=tuple(p.ssa for p in parts),
                                type=VecType(width), span=node.span, binding=binding))
            return Value(ssa, VecType(width), frozenset().union(*(p.deps for p in parts)),
                         node.span)
        if not isinstance(node, ast.Ref):
            self.fail("DW309", "'by' must name a condition, 'self', or concat(...) of them",
                      node.span,  # type: ignore[attr-defined]
                      help="declare 'condition z = ...' and write 'by = z' (or "
                      "'by = concat(self, z)' for mix-wise)")
        if node.name not in self.s.conditions:
            if node.name in self.s.values or node.name in self.s.features:
                self.fail("DW309", f"'{node.name}' is not a condition", node.span,
                          "declared as a value" if node.name in self.s.values else "a feature",
                          help=f"declare it with 'condition {node.name}_z = ...'")
            self.unknown(node.name, node.span, self.s.conditions)
        v = self.s.values[node.name]
        return Value(v.ssa, v.type, v.deps, node.span)

    # ------------------------------------------------------------------ stacks
    def stack(self, call, binding, x: Value, dims, make_fc, *, act, last_act, norm, dropout,
              single=False, gate=None, gate_at="pre_linear") -> Value:
        """Emit a layer stack: fc -> norm -> act -> dropout per layer, gates where placed.

        `make_fc(i, h, n_in, n_out, ssa)` emits layer i's linear op (static, dynamic, star ...);
        `gate(i, h, width)` emits a gate and returns the gated value. The last op gets the
        binding's name.
        """
        h = x
        n_layers = len(dims) - 1
        tag_of = (lambda i: "") if single else str

        def then(op_cls, what, i, width, **attrs):
            nonlocal h
            ssa = self.ssa(f"{binding}.{what}{tag_of(i)}")
            self.emit(op_cls(result=ssa, inputs=(h.ssa,), type=VecType(width), span=call.span,
                             binding=binding, **attrs))
            h = Value(ssa, VecType(width), h.deps, call.span)

        def gated(place, i, width):
            nonlocal h
            if gate is not None and gate_at == place:
                h = gate(i, h, width)

        for i, (n_in, n_out) in enumerate(zip(dims, dims[1:], strict=False)):
            last = i == n_layers - 1
            gated("pre_linear", i, n_in)
            ssa = self.ssa(f"{binding}.fc{tag_of(i)}")
            make_fc(i, h, n_in, n_out, ssa)
            h = Value(ssa, VecType(n_out), h.deps, call.span)
            gated("post_linear", i, n_out)
            if norm != "none":
                then(ir.Norm, "norm", i, n_out, mode=norm,
                     module=self.module(f"{binding}_norm{tag_of(i)}"))
            gated("post_norm", i, n_out)
            if act != "none" and (last_act or not last):
                then(ir.Activation, "act", i, n_out, fn=act)
            gated("post_activation", i, n_out)
            if dropout > 0:
                then(ir.Dropout, "drop", i, n_out, p=dropout)
            gated("post_dropout", i, n_out)
        return self.rename_last(binding, call, h)

    def rename_last(self, binding: str, call: ast.Call, h: Value) -> Value:
        """Give the value a statement computes the statement's own name (for readable code)."""
        last = self.s.ops[-1]
        assert last.result == h.ssa
        final = self.final(binding, call.func.text)
        self.s.ops[-1] = replace(last, result=final)
        self.s.ssa_names.discard(h.ssa)
        return Value(final, h.type, h.deps, h.span)
