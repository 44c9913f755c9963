"""Arguments of the checked walk: a call's arguments matched to its signature
(dwc/sema/signatures.py), literal options checked and converted, names resolved or reported.

`Arguments` is a part of the elaborator (`dwc.sema.elaborate._Elaborator`); layer kinds call these
methods on the elaborator they are given (`el.bind_args`, `el.literals`, `el.no_modifiers` ...).
"""

from __future__ import annotations

from dwc.diagnostics import Label, did_you_mean
from dwc.parse import ast
from dwc.sema.signatures import SIGNATURES, Param, Signature
from dwc.sema.state import Skip, State
from dwc.sema.values import Value
from dwc.source import Span


class Arguments:
    """Argument binding and checking, mixed into the elaborator (its state is `self.s`)."""

    s: State

    # ------------------------------------------------------------------ arguments
    def bind_args(self, call: ast.Call | ast.Modifier, sig: Signature,
                  defaults: dict[str, ast.Kwarg] | None = None) -> dict[str, object]:
        """Match a call's arguments to its signature; returns name -> AST node (or default)."""
        bound: dict[str, object] = {}
        positional = sig.positional
        args = list(call.args)
        if positional and positional[-1].kind == "values":
            if not args:
                self.fail("DW302", f"'{sig.name}' needs at least one input", call.span,
                          help=f"e.g. {sig.example}")
            bound[positional[-1].name] = tuple(args)
            args = []
        for param, arg in zip(positional, args, strict=False):
            bound[param.name] = arg
        if len(args) > len(positional):
            extra = args[len(positional)]
            self.fail("DW303", f"'{sig.name}' takes {len(positional)} positional "
                      f"argument{'s' if len(positional) != 1 else ''}", extra.span,
                      "unexpected argument", help=f"e.g. {sig.example}")
        seen: dict[str, Span] = {}
        for kw in call.kwargs:
            key = kw.name.text
            param = sig.param(key)
            if param is None:
                names = [p.name for p in sig.params if p.kind != "values"]
                self.fail("DW206", f"'{sig.name}' has no option '{key}'", kw.name.span,
                          "unknown option",
                          help=did_you_mean(key, names) or f"options: {', '.join(names)}")
            if key in seen or key in bound:
                self.fail("DW312", f"option '{key}' is given twice", kw.span, "again here",
                          help="keep one of them")
            seen[key] = kw.span
            bound[key] = kw.value
        for key, kw in (defaults or {}).items():
            bound.setdefault(key, kw.value)
        for param in sig.params:
            if param.name not in bound:
                if param.required:
                    self.fail("DW302", f"'{sig.name}' needs '{param.name}' ({param.doc})",
                              call.span, "missing argument", help=f"e.g. {sig.example}")
                bound[param.name] = param.default
        return bound

    def literal(self, node: object, param: Param, sig: Signature) -> object:
        """Check and convert a literal option value; defaults pass through unchanged."""
        if not isinstance(node, ast.Ref | ast.Number | ast.String | ast.Factor | ast.Fraction
                          | ast.ListExpr | ast.Call):
            return node
        want = {"int": "an integer", "float": "a number", "bool": "true or false",
                "enum": "one of " + ", ".join(param.choices), "int_list": "a list of integers",
                "feature": "a feature name", "string": 'a string in double quotes ("...")'
                }[param.kind]
        bad = f"'{param.name}' of '{sig.name}' must be {want}"
        if param.kind == "string":
            if not isinstance(node, ast.String):
                self.fail("DW301", bad, node.span, help='e.g. column = "uid"' if param.name == "column"
                          else f'e.g. {param.name} = "|"')
            if not node.value:
                self.fail("DW342", f"'{param.name}' of '{sig.name}' is empty", node.span,
                          "empty string", help="leave 'column' out to read the column named like "
                          "the feature" if param.name == "column" else
                          f'the default is {param.name} = "^"')
            return node.value
        if param.kind == "int":
            if not isinstance(node, ast.Number) or not isinstance(node.value, int):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            return self.ranged(node.value, node, param, sig)
        if param.kind == "float":
            if not isinstance(node, ast.Number):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            return self.ranged(float(node.value), node, param, sig)
        if param.kind == "bool":
            if not isinstance(node, ast.Ref) or node.name not in ("true", "false"):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            return node.name == "true"
        if param.kind == "enum":
            if not isinstance(node, ast.Ref):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            if node.name not in param.choices:
                self.fail("DW305", f"'{node.name}' is not a valid '{param.name}' for "
                          f"'{sig.name}'", node.span, "not a choice",
                          help=did_you_mean(node.name, param.choices)
                          or f"choose one of: {', '.join(param.choices)}")
            return node.name
        if param.kind == "int_list":
            if not isinstance(node, ast.ListExpr):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            if not node.items and param.default != ():  # only a generator may be linear ([])
                self.fail("DW304", f"'{param.name}' of '{sig.name}' needs at least one width",
                          node.span, "empty list", help=f"e.g. {sig.example}")
            items = []
            for item in node.items:
                if not isinstance(item, ast.Number) or not isinstance(item.value, int):
                    self.fail("DW301", bad, item.span, help=f"e.g. {sig.example}")
                items.append(self.ranged(item.value, item, param, sig))
            return tuple(items)
        if param.kind == "feature":
            if not isinstance(node, ast.Ref):
                self.fail("DW301", bad, node.span, help=f"e.g. {sig.example}")
            feature = self.s.features.get(node.name)
            if feature is None:
                self.unknown(node.name, node.span, self.s.features)
            return feature
        raise AssertionError(param.kind)

    def ranged(self, value, node, param: Param, sig: Signature):
        low_ok = param.min is None or value >= param.min
        high_ok = param.max is None or (value < param.max if param.max_exclusive
                                        else value <= param.max)
        if not (low_ok and high_ok):
            lo = "" if param.min is None else f">= {param.min:g}"
            hi = "" if param.max is None else f"{'<' if param.max_exclusive else '<='} {param.max:g}"
            self.fail("DW304", f"'{param.name}' of '{sig.name}' must be "
                      f"{' and '.join(x for x in (lo, hi) if x)}", node.span,
                      f"is {value}", help=f"e.g. {sig.example}")
        return value

    def literals(self, args: dict[str, object], sig: Signature) -> dict[str, object]:
        return {p.name: self.literal(args[p.name], p, sig) for p in sig.params
                if p.kind in ("int", "float", "bool", "enum", "int_list", "feature", "string")}

    def unknown(self, name: str, span: Span, candidates) -> None:
        if name in self.s.poisoned:
            raise Skip  # its own statement was already reported
        later = self.s.forward_names.get(name)
        if later is not None and later.start > span.start:
            line = self.s.source.location(later.start)[0]
            self.fail("DW203", f"'{name}' is used before it is defined", span, "used here",
                      help=f"move the definition on line {line} above this use",
                      secondary=(Label(later, "defined here"),))
        self.fail("DW201", f"unknown name '{name}'", span, "not defined",
                  help=did_you_mean(name, candidates)
                  or f"declare it above this line ('feature {name} : ...' or '{name} = ...')")

    def signature(self, call: ast.Call, context: str) -> Signature:
        sig = SIGNATURES.get(call.func.text)
        if sig is None or sig.context != context:
            options = [s.name for s in SIGNATURES.values() if s.context == context]
            what, article = {"feature": ("feature kind", "a"), "network": ("operation", "an"),
                             "head": ("output head", "an")}[context]
            hint = did_you_mean(call.func.text, options) or f"valid: {', '.join(options)}"
            if sig is not None and sig.context == "head":
                hint = "heads are only valid in 'output' statements"
            self.fail("DW205", f"unknown {what} '{call.func.text}'", call.func.span,
                      f"not {article} {what}", help=hint)
        return sig

    # ------------------------------------------------------------------ calls
    def inputs(self, args: dict[str, object], key: str, binding: str) -> list[Value]:
        return [self.value_of(node, binding) for node in args[key]]  # type: ignore[union-attr]

    def no_modifiers(self, call: ast.Call, sig: Signature) -> None:
        if call.modifiers:
            mod = call.modifiers[0]
            self.fail("DW311", f"'{mod.name.text}' cannot modify '{sig.name}'", mod.span,
                      help="'dynamic(...)' applies to linear and mlp")

    def simple(self, call, sig, binding):
        """Bind a one-input op's arguments; returns (literals, the input value)."""
        self.no_modifiers(call, sig)
        args = self.bind_args(call, sig)
        x = self.value_of(args["input"], binding)
        lits = {p.name: self.literal(args[p.name], p, sig) for p in sig.params
                if p.kind not in ("value", "values")}
        return lits, x
