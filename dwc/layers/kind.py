"""What one layer kind contributes to the compiler: the record every `dwc/layers/<kind>/`
package exports as `KIND` (docs/architecture.md, 'Adding a layer kind')."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dwc.ir.ops import Op
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
      unit-testable), whose source the torch backend inlines into model.py.
    """

    name: str
    signatures: tuple[Signature, ...] = ()
    lower: Mapping[str, Callable] = field(default_factory=dict)
    modifiers: Mapping[str, Callable] = field(default_factory=dict)
    ops: tuple[type[Op], ...] = ()
    torch: Mapping[type[Op], Callable] = field(default_factory=dict)
    folds: Mapping[type[Op], Callable] = field(default_factory=dict)
    helpers: Mapping[str, str] = field(default_factory=dict)
