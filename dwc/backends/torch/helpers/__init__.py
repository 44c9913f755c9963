"""The core runtime helpers as real Python: every module here is inlined, after its imports,
into the generated model.py files that call it (dwc/backends/torch/inline.py). Layer kinds keep
theirs in dwc/layers/<kind>/runtime.py."""

CORE = {
    "activation": "dwc.backends.torch.helpers.activation",
    "attention_pool": "dwc.backends.torch.helpers.attention_pool",
    "dynamic_linear": "dwc.backends.torch.helpers.dynamic_linear",
    "hyperfan": "dwc.backends.torch.helpers.hyperfan",
    "indexed_linear": "dwc.backends.torch.helpers.indexed_linear",
    "per_domain": "dwc.backends.torch.helpers.per_domain",
    "residual_init": "dwc.backends.torch.helpers.residual_init",
    "scenario_linear": "dwc.backends.torch.helpers.scenario_linear",
    "seq_pool": "dwc.backends.torch.helpers.seq_pool",
    "softmax": "dwc.backends.torch.helpers.softmax",
    "static": "dwc.backends.torch.helpers.static",
}
"""Helper name -> its module."""
