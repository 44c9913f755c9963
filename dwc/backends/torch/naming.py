"""The one namespace helper that makes every identifier in generated code.

Spec names are validated by the grammar (`[A-Za-z_][A-Za-z0-9_]*`) but may still collide with
Python keywords, builtins, names the generated file uses (`torch`, `nn`, `F`, `inputs` ...) or
attributes of `nn.Module` (`forward`, `training`, `to` ...). Nothing else in the backend makes an
identifier: it asks a `Namespace`, which returns a deterministic, collision-free name derived from
the hint (a trailing `_` or a number is added on collision, never anything random).
"""

from __future__ import annotations

import builtins
import keyword
import re

# Every attribute of torch.nn.Module (torch 2.13), so parameter owners never shadow one. A test
# checks this list still covers dir(nn.Module()) of the installed torch; it is spelled out here so
# that generating code never needs to import torch.
NN_MODULE_ATTRIBUTES = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule
half ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters
parameters register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict
to to_empty train training type xpu zero_grad
""".split())

GENERATED_CLASS_ATTRIBUTES = frozenset(
    {"INPUTS", "OUTPUTS", "SPEC", "loss", "example_inputs", "example_targets", "check_inputs",
     "validate_inputs", "for_inference", "trainable_parameters", "parameter_groups"}
)
"""Members the generated model class defines itself."""

GENERATED_GLOBALS = frozenset(
    {"torch", "nn", "F", "self", "inputs", "outputs", "logits", "targets", "total", "generator",
     "batch_size", "annotations", "Tensor", "model", "DWC_VERSION", "SPEC_SHA256",
     "l", "O", "I"}  # the last three: names PEP 8 (E741) calls ambiguous
)
"""Names with a fixed meaning in generated code (helpers all start with `_dwc`)."""

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


class Namespace:
    """Allocates unique identifiers for one scope (the module's attributes, or forward's locals)."""

    def __init__(self, reserved: frozenset[str] | set[str] = frozenset()) -> None:
        self._reserved = set(reserved) | set(keyword.kwlist) | set(keyword.softkwlist)
        self._reserved |= set(dir(builtins)) | GENERATED_GLOBALS
        self._by_key: dict[str, str] = {}
        self._used: set[str] = set()

    def create(self, hint: str, key: str | None = None) -> str:
        """A fresh identifier for `hint`; the same `key` always gets the same identifier."""
        key = hint if key is None else key
        if key in self._by_key:
            return self._by_key[key]
        base = _NOT_IDENT.sub("_", hint) or "v"
        if base[0].isdigit() or base.startswith("_"):
            base = f"v{base}" if base.startswith("_") else f"v_{base}"
        name = base
        if name in self._reserved or name in self._used:
            name = f"{base}_"
        n = 2
        while name in self._reserved or name in self._used:
            name = f"{base}_{n}"
            n += 1
        self._used.add(name)
        self._by_key[key] = name
        return name

    def __getitem__(self, key: str) -> str:
        return self._by_key[key]


def attribute_namespace() -> Namespace:
    return Namespace(NN_MODULE_ATTRIBUTES | GENERATED_CLASS_ATTRIBUTES)


def class_name(model: str) -> str:
    """`dw_mlp` -> `DwMlp` (a valid, non-reserved class name)."""
    parts = [p for p in _NOT_IDENT.sub("_", model).split("_") if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Model"
    if name[0].isdigit():
        name = f"Model{name}"
    return name if name not in GENERATED_GLOBALS and not keyword.iskeyword(name) else f"{name}Model"
