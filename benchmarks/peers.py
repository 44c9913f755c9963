"""dwc's generated modules against hand-written references in the peers' style, same weights.

    python benchmarks/peers.py              # writes the "peers" section of docs/benchmarks.md
    python benchmarks/peers.py --only star  # one case's rows, printed only

References: benchmarks/peer_cases.py (one per case, with the spec dwc compiles).
Each reference gets dwc's weights copied in and is checked to agree (max abs error printed).
Forward latency (eval, no autograd) at B in {1, 64, 1024, 8192}; one training step (forward +
backward + Adam) at B = 1024. Reference and dwc run alternately, call by call, and the speed-up is
the median of the per-pair ratios (the 2-core machine drifts by up to 2x between runs). dwc runs
its training form for training and its folded inference form (`for_inference()`) for serving, as
a user would.
"""

from __future__ import annotations

import argparse

import torch
from common import (
    fmt_ms,
    forward_fn,
    load_model,
    machine,
    paired_seconds,
    table,
    write_section,
)
from peer_cases import CASES, HAMUR_D, M3OE_D, D, T
from torch import nn

BATCHES = (1, 64, 1024, 8192)


def serve_fn(model, cls, batch):
    return forward_fn(model, cls.example_inputs(batch, torch.Generator().manual_seed(batch)))


def train_fn(model, cls, batch=1024):
    torch.manual_seed(0)
    inputs = cls.example_inputs(batch, torch.Generator().manual_seed(3))
    targets = cls.example_targets(batch, torch.Generator().manual_seed(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        y = model(inputs)["y"]
        loss = nn.functional.binary_cross_entropy(y.clamp(1e-6, 1 - 1e-6), targets["y"])
        loss.backward()
        optimizer.step()

    return step


def compare(label, spec, reference_cls, prepare=None):
    cls = load_model(spec, label)
    torch.manual_seed(0)
    model = cls(validate_inputs=False)
    if prepare is not None:  # move parameters off their neutral start
        with torch.no_grad():
            prepare(model, cls)
    model.eval()
    served = model.for_inference()
    reference = reference_cls(model).eval()
    check = cls.example_inputs(64, torch.Generator().manual_seed(7))
    with torch.no_grad():
        error = (served(check)["y"] - reference(check)["y"]).abs().max().item()
    rows = []
    for batch in BATCHES:
        t_ref, t_dwc, ratio = paired_seconds(serve_fn(reference, cls, batch),
                                             serve_fn(served, cls, batch),
                                             repeats=40 if batch < 8192 else 12)
        rows.append([f"{label} forward, B = {batch}", fmt_ms(t_ref), fmt_ms(t_dwc),
                     f"{ratio:.2f}x"])
    model.train()
    reference.train()
    t_ref, t_dwc, ratio = paired_seconds(train_fn(reference, cls), train_fn(model, cls))
    rows.append([f"{label} training step, B = 1024", fmt_ms(t_ref), fmt_ms(t_dwc),
                 f"{ratio:.2f}x"])
    return rows, error



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=[c[0] for c in CASES], metavar="CASE",
                        help="run these cases only and print their rows (docs/benchmarks.md "
                        f"is left as it is); cases: {', '.join(c[0] for c in CASES)}")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows, errors = [], {}
    for label, spec, ref, prepare in CASES:
        if args.only and label not in args.only:
            continue
        r, errors[label] = compare(label, spec, ref, prepare)
        rows += r
        for row in r:
            print(" | ".join(row), flush=True)
    if args.only:
        print("agreement: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
        return
    md = [
        "## Against the peers (`python benchmarks/peers.py`)", "",
        f"Machine: {machine()}.", "",
        "Hand-written references in the peers' style with dwc's weights copied in (agreement: "
        + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()) + " max abs error). Forward: "
        "eval, no autograd, median; dwc serves its folded inference form. Training step: forward "
        "+ backward + Adam at B = 1024, dwc's training form. Speed-up = reference / dwc (higher "
        f"is better). STAR and MLoRA run D = {D} domains, HMoE T = {T} scenarios (MMLRec's widths), "
        f"HAMUR {HAMUR_D} domains, M3oE {M3OE_D} domains and two tasks.", "",
        table(["case", "reference (ms)", "dwc (ms)", "speed-up"], rows), "",
        "Targets: >= 1.0x everywhere; >= 1.5x at inference where folds apply (APG with "
        "over-parameterisation, STAR) and, for the newer kinds, at B >= 1024 where a fold applies "
        "(AdaSparse's domain-only pruners, POSO's gate tables, MLoRA's merged weights, M3oE's "
        "STAR slot); >= 3x against mask-all STAR at D >= 8. Their GEMMs' share of the machine's "
        "peak: `benchmarks/efficiency.py` (rows `peers:`).",
    ]
    write_section("peers", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
