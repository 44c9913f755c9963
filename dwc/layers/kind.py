"""What one layer kind contributes to the compiler: the record every `dwc/layers/<kind>/`
package exports as `KIND` (docs/architecture.md, 'Adding a layer kind')."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dwc.diagnostics.codes import Code
    from dwc.ir.ops import Op
    from dwc.lint.rules.base import Rule
    from dwc.sema.params import Signature


@dataclass(frozen=True)
class Kind:
    """One layer kind, everything it means in one place.

    - `signatures`: the spec constructs it adds (checked by sema, documented in docs/language.md);
    - `lower`: signature name -> `fn(elaborator, call, signature, binding) -> Value`, the checked
      lowering of one call to IR ops (`dwc.sema.elaborate` passes itself in);
    - `modifiers`: modifier name -> `fn(elaborator, modifier, signature, layer) -> make_fc`, for a
      modifier that re-parameterises a dynamic `linear`/`mlp` (`dynamic(by = z) apg(...)`):
      `layer` is the `DynamicLayer` being lowered (dwc.sema.values) and `make_fc(i, h, n_in,
      n_out, ssa)` emits its layer i;
    - `ops`: its IR op classes (each with its own costs and `verify`);
    - `torch`: op class -> `fn(builder, op)`, what the op adds to the generated module's
      `__init__` and `forward` (`dwc.backends.torch.builder`'s API);
    - `folds`: op class -> `fn(fold_context, op)`, how `for_inference()` computes the
      parameters of an op an inference fold produced from the training module's (the op's type
      is the marker);
    - `helpers`: runtime helper name -> the module holding it as real Python (importable and
      unit-testable), whose source the torch backend inlines into model.py;
    - `codes`: the kind's own diagnostic codes (`codes.py`), merged into `dwc.diagnostics.CODES`
      and docs/diagnostics.md;
    - `lint_rules`: the kind's lint rules (`lint.py`, `Rule` subclasses documented like
      dwc/lint/rules/*.py), run by `dwc lint` and documented in docs/lint.md.
    """

    name: str
    signatures: tuple[Signature, ...] = ()
    lower: Mapping[str, Callable] = field(default_factory=dict)
    modifiers: Mapping[str, Callable] = field(default_factory=dict)
    ops: tuple[type[Op], ...] = ()
    torch: Mapping[type[Op], Callable] = field(default_factory=dict)
    folds: Mapping[type[Op], Callable] = field(default_factory=dict)
    helpers: Mapping[str, str] = field(default_factory=dict)
    codes: tuple[Code, ...] = ()
    lint_rules: tuple[type[Rule], ...] = ()
