"""Per-domain execution: grouping a batch by domain or cell, gathers for small batches, ungrouping.

Inlined into every generated model.py that needs it (dwc/backends/torch/inline.py)."""

from __future__ import annotations

import torch

from dwc.backends.torch.helpers.static import _dwc_is_static

_DwcRows = tuple[torch.Tensor | None, list[int], list[int]]
"""A batch grouped by domain: (order, domains present, their row counts); see _dwc_domain_rows."""


def _dwc_gathers(batch: int, cell_floats: int, present: int) -> bool:
    """Whether a batch gathers each sample's weights rather than running one matmul per domain
    present: when the B x in x out gathered floats stay within 32K per domain present (a matmul
    call costs about what gathering that many does) and 1 MiB in all (beyond it, fresh pages
    dominate)."""
    return batch * cell_floats <= min(32768 * present, 262144)


_DWC_LISTED_ROWS = 64
"""Up to this many rows (on the CPU) _dwc_domain_rows first reads the domain ids as Python
integers: a batch of one domain (every single-sample call) then needs no sort."""


def _dwc_domain_rows(domain: torch.Tensor) -> _DwcRows | None:
    """The batch's rows grouped by domain, computed once per forward for every per-domain layer.

    Returns (order, domains present, their row counts): `x[order]` holds each present domain's
    rows contiguously, in the order of the domain ids (order None: the batch is already grouped,
    see _dwc_group_batch). None when traced or compiled: the layers then use static control flow.
    """
    if _dwc_is_static():
        return None
    if domain.shape[0] <= _DWC_LISTED_ROWS and domain.device.type == "cpu":
        ids = domain.tolist()
        if ids and min(ids) == max(ids):  # one domain: the batch is grouped as it stands
            return None, [ids[0]], [len(ids)]
    order = torch.argsort(domain)
    counts = torch.bincount(domain).tolist()
    present = [d for d, n in enumerate(counts) if n]
    return order, present, [counts[d] for d in present]


def _dwc_group_batch(
    inputs: dict[str, torch.Tensor], domain: torch.Tensor, keys: list[str], cell_floats: int
) -> tuple[dict[str, torch.Tensor], _DwcRows | None, torch.Tensor | None]:
    """The batch reordered once per forward so that each domain's samples are contiguous.

    Every per-domain layer downstream then reads a domain's rows as a slice and writes its output
    rows in place: no gather, concatenation and scatter per layer. `_dwc_ungroup` restores the
    caller's order. Returns (inputs, rows, order), rows as _dwc_domain_rows' with order None;
    order None when nothing was reordered: traced, one domain present, or too few rows per domain
    for grouped matmuls (`cell_floats`: the most weight floats a layer would gather per sample).
    """
    rows = _dwc_domain_rows(domain)
    if rows is None or len(rows[1]) == 1:
        return inputs, rows, None
    order, present, counts = rows
    if _dwc_gathers(domain.shape[0], cell_floats, len(present)):
        return inputs, rows, None
    grouped = {key: inputs[key].index_select(0, order) for key in keys}
    return grouped, (None, present, counts), order


def _dwc_ungroup(
    tensors: dict[str, torch.Tensor], order: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Undo _dwc_group_batch: row i of a result goes back to the caller's row order[i]."""
    if order is None:
        return tensors
    return {key: torch.empty_like(t).index_copy_(0, order, t) for key, t in tensors.items()}


def _dwc_per_domain_linear(
    x: torch.Tensor,
    domain: torch.Tensor,
    rows: _DwcRows | None,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """y[b] = x[b] @ weight[domain[b]] (+ bias[domain[b]]), weight: domains x in x out.

    Eager (`rows` from _dwc_domain_rows): one dense matmul per domain present, or, when the batch
    has few rows per domain and the weights are small, each sample's weights gathered
    (_dwc_gathers). A batch already grouped by domain (order None) is read slice by slice and,
    without autograd, each domain's rows are written straight into the output. Traced or
    compiled: one matmul against all domains' weights side by side, then each sample's slice.
    """
    domains, n_in, n_out = weight.shape
    if rows is None:
        every = x @ weight.permute(1, 0, 2).reshape(n_in, domains * n_out)
        picked = torch.arange(x.shape[0], device=x.device) * domains + domain
        y = every.reshape(-1, n_out).index_select(0, picked)
        return y if bias is None else y + bias.index_select(0, domain)
    order, present, counts = rows
    if len(present) == 1:
        d = present[0]
        return x @ weight[d] if bias is None else torch.addmm(bias[d], x, weight[d])
    if _dwc_gathers(x.shape[0], n_in * n_out, len(present)):
        y = torch.bmm(x.unsqueeze(1), weight.index_select(0, domain)).squeeze(1)
        return y if bias is None else y.add_(bias.index_select(0, domain))
    parts = (x if order is None else x.index_select(0, order)).split(counts)
    if order is None and not torch.is_grad_enabled():
        out = x.new_empty(x.shape[0], n_out)
        for d, part, rows_out in zip(present, parts, out.split(counts), strict=True):
            if bias is None:
                torch.mm(part, weight[d], out=rows_out)
            else:
                torch.addmm(bias[d], part, weight[d], out=rows_out)
        return out
    if bias is None:
        grouped = [part @ weight[d] for d, part in zip(present, parts, strict=True)]
    else:
        grouped = [
            torch.addmm(bias[d], part, weight[d]) for d, part in zip(present, parts, strict=True)
        ]
    out = torch.cat(grouped)
    return out if order is None else torch.empty_like(out).index_copy_(0, order, out)
