"""Pass infrastructure: the Pass contract, the registry, pipeline strings and the pass manager.

A pass is a frozen dataclass with a `name` and its options as fields; `run(graph)` returns a
`PassResult(graph, changed)` and never mutates its input (graphs are immutable). Passes may assume
a verified graph and must return one: the manager verifies after every pass when asked
(`--verify-each`; always in the tests).

Every pass belongs to one of three stages:
- "model": carries out what the spec asked for (APG's lowrank / share / overparam knobs). These
  define the model's parameters, so they run at every optimisation level.
- "train": rewrites that keep the function and the parameters (decompose, DCE); they apply to
  both the training and the inference graph.
- "inference": folds and fusions that are only valid, or only pay, once training is over
  (fuse-generators, fold-overparam, fold-star, fold-scenario-table, fold-scenario-layers,
  fuse-gates, strip-training); they produce the inference graph.

Pipelines are written like `lowrank{rank=8},share,dce` (xdsl style).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from dwc.ir.graph import Graph
from dwc.ir.ops import Op
from dwc.ir.verify import verify
from dwc.source import NO_SPAN


class PassError(ValueError):
    """A malformed pipeline string or pass option (a usage error)."""


@dataclass(frozen=True)
class PassResult:
    graph: Graph
    changed: bool


class Rewriter:
    """Edits one graph's ops during a pass run (xdsl's `PatternRewriter`, reduced to what dwc's
    passes do), then hands back the `PassResult`.

    `replace(old, NewOp, **fields)` builds the replacement with `old`'s result, inputs, type, span,
    binding and module carried over unless `fields` sets them, so a pass names only what it
    changes; an op inserted without a span takes the span of the op it is placed before (the
    generated code's `# line N:` comments then point at the statement it came from).
    """

    CARRIED = ("result", "inputs", "type", "span", "binding", "module")

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ops: list[Op] = list(graph.ops)
        self.changed = False

    def current(self) -> Graph:
        """The graph as edited so far."""
        return self.graph.with_ops(self.ops)

    def op(self, result: str) -> Op:
        """The op that now produces `result`."""
        return next(op for op in self.ops if op.result == result)

    def replace(self, old: Op, new: type[Op] | Op, **fields: object) -> Op:
        """Put `new` where `old` is: an op (with `fields` changed), or an op class built from
        `fields` and what `old` carries over."""
        if isinstance(new, type):
            carried = {name: getattr(old, name) for name in self.CARRIED}
            new = new(**{**carried, **fields})
        elif fields:
            new = dataclasses.replace(new, **fields)
        self.ops[self._index(old)] = new
        self.changed = True
        return new

    def update(self, old: Op, **fields: object) -> Op:
        """`old` with some fields changed, in its place."""
        return self.replace(old, old, **fields)

    def insert_before(self, anchor: Op, *new: Op) -> None:
        """Insert ops ahead of `anchor`; those without a span take `anchor`'s."""
        at = self._index(anchor)
        self.ops[at:at] = [op if op.span != NO_SPAN else dataclasses.replace(op, span=anchor.span)
                           for op in new]
        self.changed = True

    def erase(self, op: Op) -> None:
        del self.ops[self._index(op)]
        self.changed = True

    def fresh_module(self, hint: str) -> str:
        """A module name no op of the graph (as edited so far) uses: `hint`, else `hint_2` ..."""
        return fresh_module(self.ops, hint)

    def result(self) -> PassResult:
        return PassResult(self.current() if self.changed else self.graph, self.changed)

    def _index(self, op: Op) -> int:
        for i, candidate in enumerate(self.ops):
            if candidate is op:
                return i
        return next(i for i, candidate in enumerate(self.ops) if candidate.result == op.result)


def fresh_module(ops: Iterable[Op], hint: str) -> str:
    """A parameter owner's name that none of `ops` declares: `hint`, else `hint_2`, `hint_3` ..."""
    used = {name for op in ops for name in op.modules()}
    name, n = hint, 1
    while name in used:
        n += 1
        name = f"{hint}_{n}"
    return name


def rewrite_ops(graph: Graph, rewrite: Callable[[Op], Op | None]) -> PassResult:
    """A pass that replaces ops one by one: `rewrite` returns an op's replacement, or None to
    keep it. One walk over the graph (for rewrites that need no other op changed with them)."""
    ops, changed = [], False
    for op in graph.ops:
        new = rewrite(op)
        changed |= new is not None
        ops.append(op if new is None else new)
    return PassResult(graph.with_ops(ops) if changed else graph, changed)


def mark_ops(graph: Graph, source: type[Op], marker: type[Op]) -> PassResult:
    """An inference fold that marks ops: every op of exactly type `source` becomes the marker
    subclass `marker` with the same fields (`Op.retyped`); the backends emit the marker's form
    and `for_inference()` computes its parameters."""
    return rewrite_ops(graph, lambda op: op.retyped(marker) if type(op) is source else None)


@dataclass(frozen=True)
class Pass:
    """Base class. Subclasses set `name`, `stage` and `summary`, and implement `run`.

    A layer kind's pass may set `after` to the -O2 pass it runs right after: it then joins that
    pipeline when it is registered, without an entry in `PIPELINES`."""

    name: ClassVar[str] = ""
    stage: ClassVar[str] = "train"
    summary: ClassVar[str] = ""
    after: ClassVar[str | None] = None

    def run(self, graph: Graph) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def spelling(self) -> str:
        """The pass as written in a pipeline string, with non-default options."""
        opts = [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default]
        return self.name + ("{" + ",".join(opts) + "}" if opts else "")


PASSES: dict[str, type[Pass]] = {}


def register(cls: type[Pass]) -> type[Pass]:
    assert cls.name and cls.name not in PASSES, cls
    PASSES[cls.name] = cls
    if cls.after is not None:
        _WAITING.append(cls)
        _place_waiting()
    return cls


_WAITING: list[type[Pass]] = []
"""Passes whose `after` is not in -O2 yet: another kind's pass, registered later (kinds are
imported in name order, so fold-mlora's fold-star comes after it). Each is placed as soon as
its pass is; `pipeline_for` fails on one still waiting."""


def _place_waiting() -> None:
    while ready := [c for c in _WAITING if c.after in PIPELINES[2].split(",")]:
        for cls in ready:
            _WAITING.remove(cls)
            _place(cls)


def _place(cls: type[Pass]) -> None:
    """Insert a pass into -O2 right after `cls.after` (after passes placed there before it, so
    the order follows registration: kinds are imported in name order)."""
    names = PIPELINES[2].split(",")
    i = names.index(cls.after) + 1
    while i < len(names) and getattr(PASSES.get(names[i]), "after", None) == cls.after:
        i += 1
    names.insert(i, cls.name)
    PIPELINES[2] = ",".join(names)


_ITEM = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(?:\{([^}]*)\})?\s*(?:,|$)")


def _convert(cls: type[Pass], key: str, text: str) -> object:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        names = ", ".join(fields) or "none"
        raise PassError(f"pass '{cls.name}' has no option '{key}' (options: {names})")
    kind = fields[key].type
    try:
        if "bool" in str(kind):
            if text not in ("true", "false"):
                raise ValueError
            return text == "true"
        value = int(text) if "int" in str(kind) else text
    except ValueError:
        raise PassError(f"option '{key}' of pass '{cls.name}' expects {kind}, got {text!r}") \
            from None
    if isinstance(value, int) and value < 0:  # counts and limits: 0 at most switches one off
        raise PassError(f"option '{key}' of pass '{cls.name}' must be 0 or more, got {value}")
    return value


def parse_pipeline(text: str) -> list[Pass]:
    """`'lowrank{rank=8},share,dce'` -> pass instances. Raises PassError on bad input."""
    passes: list[Pass] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PassError(f"cannot parse the pipeline at {text[pos:]!r}")
        name, opts = m.group(1), m.group(2)
        cls = PASSES.get(name)
        if cls is None:
            raise PassError(f"unknown pass '{name}' (passes: {', '.join(sorted(PASSES))})")
        kwargs = {}
        for item in filter(None, (o.strip() for o in (opts or "").split(","))):
            if "=" not in item:
                raise PassError(f"pass option {item!r} must be written key=value")
            key, value = (x.strip() for x in item.split("=", 1))
            kwargs[key] = _convert(cls, key, value)
        passes.append(cls(**kwargs))
        pos = m.end()
    return passes


@dataclass(frozen=True)
class Pipeline:
    """The passes of one compilation: model passes, then the train and inference stages."""

    model: list[Pass]
    train: list[Pass]
    inference: list[Pass]


PIPELINES: dict[int, str] = {
    0: "",
    1: "decompose,dce,strip-training,dce",
    2: "decompose,dce,fuse-generators,fold-overparam,fold-scenario-table,fold-scenario-layers,"
       "strip-training,fold-batch-norm,dce",
}
"""Optimisation levels (after the model passes, which always run). A kind's pass that sets
`after` is inserted into -O2 when it is registered (fold-star, fuse-gates, ...)."""

MODEL_PASSES = "lowrank,share,overparam"


def pipeline_for(level: int = 2, passes: str | None = None) -> Pipeline:
    """The pipeline for `-O<level>`, or for an explicit `--passes` string (model passes first)."""
    if _WAITING:
        lost = _WAITING[0]
        raise AssertionError(f"{lost.name}: 'after = {lost.after}' is not an -O2 pass")
    chosen = parse_pipeline(PIPELINES[level] if passes is None else passes)
    # Model passes a `--passes` string names (`lowrank{rank=8}`) change parameters: they join
    # the model stage, after the spec's own, so the training form declares what its forward reads.
    model = parse_pipeline(MODEL_PASSES) + [p for p in chosen if p.stage == "model"]
    chosen = [p for p in chosen if p.stage != "model"]
    # Everything from the first inference-only pass on builds the inference graph (a `dce` after
    # the folds cleans up the inference graph); what comes before it applies to both.
    first = next((i for i, p in enumerate(chosen) if p.stage == "inference"), len(chosen))
    return Pipeline(model=model, train=chosen[:first], inference=chosen[first:])


@dataclass
class PassRecord:
    """What one pass did: for timing, `--print-after` and the per-pass cost report."""

    name: str
    stage: str
    changed: bool
    seconds: float
    graph: Graph


@dataclass
class PassManager:
    """Runs passes in order, verifying after each when `verify_each`, recording what happened."""

    verify_each: bool = False
    on_pass: Callable[[PassRecord], None] | None = None
    records: list[PassRecord] = dataclasses.field(default_factory=list)

    def run(self, graph: Graph, passes: list[Pass], stage: str) -> Graph:
        for p in passes:
            start = time.perf_counter()
            result = p.run(graph)
            seconds = time.perf_counter() - start
            if self.verify_each:
                try:
                    verify(result.graph)
                except Exception as error:
                    raise type(error)(f"after pass '{p.spelling()}': {error}") from error
            record = PassRecord(p.spelling(), stage, result.changed, seconds, result.graph)
            self.records.append(record)
            if self.on_pass:
                self.on_pass(record)
            graph = result.graph
        return graph

