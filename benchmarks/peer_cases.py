"""The cases of benchmarks/peers.py: for each, the spec dwc compiles, a reference written the
way the public code computes its forward (from the equations in docs/models.md, not from dwc's
runtime), and how its parameters are moved off their neutral start before timing.

- FuxiCTR-style APG MLP: over-parameterised factors U_l U_r, V_l V_r multiplied on every forward
  (also at inference), hypernet per layer, bmm with the K x K core; `apg_user` with a condition
  that reads a user id (no scenario fold: every sample generates its cores).
- FuxiCTR-style PPNet: Linear -> ReLU, times a GateNU on [sg(x), priors] per layer.
- STAR as the public ports run it: all D domain towers on every sample, then a mask picks one.
- AdaSparse as the public port runs it: every pruner scored per sample from [e ; v] (one
  (d_z + n) x n product per layer), sign()-thresholded; dwc's pruners read the domain alone
  (`adasparse`, folded into per-domain factor tables) or [e ; v] like the port
  (`adasparse_hidden`, the condition's share of the scores tabulated).
- HMoE as MMLRec runs it: expert, gate, tower, fusion net and head modules in Python loops, every
  scenario's fused head on the whole batch ([B, T]), then each sample's own column picked.
- NextRec-style POSO: a loop over separately built expert MLPs, and every expert's and every
  layer's gate MLP recomputed on each sample's personalisation code (dwc serves the gates of a
  discrete code from per-group tables).
- HAMUR as its public code runs it: every domain's backbone and the hyper-network on the whole
  batch for each domain, the adapter's W_down, W_up materialised per sample (einsum), then
  `where(domain == d)`.
- MLoRA as its TF port computes a layer (shared x W + b, then a domain's (x A) B + c), for mixed
  batches: every domain's adapter on the whole batch, a mask keeping each sample's own (the port
  looks up sample 0's domain for the whole batch, which a mixed batch cannot; gathering each
  sample's A, B, c instead measured 2.4x slower at B >= 1024).
- M3oE as its public code runs it: every domain's STAR slot on the whole batch (W_d * W_s formed
  on every forward, the sample's picked by a mask), each expert its own Linear -> LayerNorm ->
  ReLU module, every (domain, task) gate and tower on every sample, then a mask.
"""

from __future__ import annotations

import torch
from torch import nn

D = 8  # STAR domains
T = 3  # HMoE scenarios

APG = """
model apg_bench
feature x : numeric(width = 256)
feature s : categorical(vocab = 16, dim = 16) scenario
scenarios s
condition z = concat(s)
h = mlp(x, [256, 256]) dynamic(by = z) apg(rank = 32, overparam = 4x)
output y = sigmoid(linear(h, 1)) loss = bce
"""

APG_USER = """
model apg_user_bench
feature x       : numeric(width = 64)
feature country : categorical(vocab = 16, dim = 8) scenario
feature page    : categorical(vocab = 4, dim = 4) scenario
feature user_id : categorical(vocab = 10_000, dim = 16)
scenarios country * page
condition z = concat(country, page, user_id)
h = mlp(x, [256, 128, 64]) dynamic(by = z) apg(rank = [32, 16, 8], overparam = 4x)
output y = sigmoid(linear(h, 1)) loss = bce
"""
"""APG whose condition reads a user feature: no scenario fold applies, every sample generates its
cores (issue 17's regression case against FuxiCTR's APG_MLP, B = 8192 above all)."""

PPNET = """
model ppnet_bench
feature x : numeric(width = 256)
feature p : categorical(vocab = 1000, dim = 32) scenario
condition prior = concat(stop_gradient(x), p)
h = ppnet(x, [256, 128, 64], by = prior, gate_hidden = 64, placement = post_activation)
output y = sigmoid(linear(h, 1)) loss = bce
"""

STAR = f"""
model star_bench
feature x : numeric(width = 256)
feature d : categorical(vocab = {D}, dim = 8) scenario
h = star(x, [256, 128], by = d)
output y = sigmoid(star(h, [1], by = d, last_act = false)) loss = bce
"""

ADASPARSE = f"""
model adasparse_bench
feature x : numeric(width = 256)
feature d : categorical(vocab = {D}, dim = 16) scenario
scenarios d
condition e = concat(d)
h = adasparse(x, [256, 128, 64, 32, 16, 8], by = e, eps = 0.5, {{reads}})
output y = sigmoid(linear(h, 1)) loss = bce
"""
"""The public Ali-CCP script's widths, domain embedding and fusion pruner; eps = 0.5 so that
units are pruned at the start (the script's 0.01 prunes none of them before training)."""

HAMUR_D = 3  # HAMUR domains (Ali-CCP's)
HAMUR = f"""
model hamur_bench
feature x : numeric(width = 64)
feature d : categorical(vocab = {HAMUR_D}, dim = 16) scenario
scenarios d
e = concat(x, d)
condition z = e
h1 = activation(partitioned_norm(linear(e, 256, per = d), by = d), relu)
h2 = activation(partitioned_norm(linear(h1, 128, per = d), by = d), relu)
core = hamur_hypernet(by = z, rank = 35, hidden = [64])
a = hamur(h2, by = core, domain = d, bottleneck = 32)
output y = sigmoid(linear(a, 1, per = d)) loss = bce
"""

HMOE = f"""
model hmoe_bench
feature x : numeric(width = 64)
feature d : categorical(vocab = {T}, dim = 8) scenario
h = hmoe(concat(x, d), by = d, fuse = tower)
output y = sigmoid(h) loss = bce
"""

POSO = f"""
model poso_bench
feature x : numeric(width = 256)
feature group : categorical(vocab = {D}, dim = 8) scenario
scenarios group
condition pc = concat(group)
e = poso_experts(x, 4, [128, 64], by = pc)
h = poso(mix(e, x), [128, 64], by = pc)
output y = sigmoid(linear(h, 1)) loss = bce
"""

M3OE_D = 3  # M3oE domains (two tasks, the public code's widths and experts)
M3OE = f"""
model m3oe_bench
feature x : numeric(width = 100)
feature d : categorical(vocab = {M3OE_D}, dim = 8) scenario
m = m3oe(x, by = d, tasks = 2, widths = [512, 256, 256, 64], experts = 4)
output y = sigmoid(slice(m, 0)) loss = bce
output y2 = sigmoid(slice(m, 1)) loss = bce
"""


class FuxiAPG(nn.Module):
    """FuxiCTR's APG_MLP structure (group-wise, over-parameterised, generated bias first)."""

    CONDITION = ("s",)
    """The features the condition concatenates, in its order."""

    def __init__(self, dwc_model):
        super().__init__()
        self.condition = nn.ModuleList(getattr(dwc_model, f"{f}_embedding") for f in self.CONDITION)
        self.layers = nn.ModuleList()
        i = 0
        while hasattr(dwc_model, f"h_fc{i}"):
            f, g = getattr(dwc_model, f"h_fc{i}"), getattr(dwc_model, f"h_generator{i}")
            layer = nn.Module()
            layer.u_l, layer.u_r = nn.Parameter(f.u_left.detach().clone()), \
                nn.Parameter(f.u_right.detach().clone())
            layer.v_l, layer.v_r = nn.Parameter(f.v_left.detach().clone()), \
                nn.Parameter(f.v_right.detach().clone())
            k = f.u_right.shape[1]
            order = torch.cat([torch.arange(k * k, g[0].out_features), torch.arange(0, k * k)])
            layer.hyper = nn.Linear(g[0].in_features, g[0].out_features)
            with torch.no_grad():
                layer.hyper.weight.copy_(g[0].weight[order])
                layer.hyper.bias.copy_(g[0].bias[order])
            layer.k, layer.m = k, f.v_right.shape[1]
            self.layers.append(layer)
            i += 1
        self.head = dwc_model.y

    def forward(self, inputs):
        h = inputs["x"]
        z = torch.cat([e(inputs[f]) for e, f in zip(self.condition, self.CONDITION, strict=True)],
                      dim=1)
        for layer in self.layers:
            w = layer.hyper(z)
            bias, s = w[:, : layer.m], w[:, layer.m:].reshape(-1, layer.k, layer.k)
            u, v = layer.u_l @ layer.u_r, layer.v_l @ layer.v_r  # every forward, as FuxiCTR
            h = torch.relu(torch.bmm((h @ u).unsqueeze(1), s).squeeze(1) @ v + bias)
        return {"y": torch.sigmoid(self.head(h))}


class FuxiAPGUser(FuxiAPG):
    """FuxiAPG with the condition concat(country, page, user_id)."""

    CONDITION = ("country", "page", "user_id")


class FuxiPPNet(nn.Module):
    def __init__(self, dwc_model):
        super().__init__()
        self.emb = dwc_model.p_embedding
        self.linears = nn.ModuleList(getattr(dwc_model, f"h_fc{i}") for i in range(3))
        self.gates = nn.ModuleList(nn.Sequential(g.hidden, nn.ReLU(), g.out) for g in (
            getattr(dwc_model, f"h_gate{i}") for i in range(3)))
        self.head = dwc_model.y

    def forward(self, inputs):
        x = inputs["x"]
        u = torch.cat([x.detach(), self.emb(inputs["p"])], dim=1)
        h = x
        for linear, gate in zip(self.linears, self.gates, strict=True):
            h = torch.relu(linear(h)) * (2 * torch.sigmoid(gate(u)))
        return {"y": torch.sigmoid(self.head(h))}


class MaskAllStar(nn.Module):
    """STAR as the public ports run it: every domain's tower on every sample, then a mask."""

    def __init__(self, dwc_model):
        super().__init__()
        self.layers = [dwc_model.h_fc0, dwc_model.h_fc1, dwc_model.y_fc0]
        self.model = dwc_model

    def forward(self, inputs):
        x, d = inputs["x"], inputs["d"]
        out = torch.zeros(x.shape[0], 1)
        for domain in range(D):
            h = x
            for i, layer in enumerate(self.layers):
                w = layer.weight * layer.domain_weight[domain]
                h = h @ w + layer.bias + layer.domain_bias[domain]
                if i < 2:
                    h = torch.relu(h)
            out = out + h * (d == domain).unsqueeze(1)
        return {"y": torch.sigmoid(out)}


class PortAdaSparse(nn.Module):
    """AdaSparse's forward as the public port writes it: h_0 = [e ; P_0 x], a_l = ReLU(BN(h W_l
    + b_l)), h_l = P_l a_l, each pruner scoring s = [e ; v] W_p per sample and thresholding with
    sign(). The port's q * sign(q - eps) negates a pruned unit; (sign(q - eps) + 1) / 2 keeps its
    cost and gives the paper's zero, so dwc's weights copied in (W_v = 0 for dwc's domain-only
    pruners) compute the same function."""

    def __init__(self, dwc_model):
        super().__init__()
        self.emb, self.head = dwc_model.d_embedding, dwc_model.y
        self.linears = nn.ModuleList(getattr(dwc_model, f"h_fc{i}") for i in range(6))
        self.norms = nn.ModuleList(getattr(dwc_model, f"h_norm{i}") for i in range(6))
        self.pruners = nn.ParameterList()
        for i in range(7):
            pruner = getattr(dwc_model, f"h_pruner{i}")
            w_e = pruner.domain_weight.detach()
            w_v = (pruner.hidden_weight.detach() if pruner.hidden_weight is not None
                   else torch.zeros(w_e.shape[1], w_e.shape[1]))
            self.pruners.append(nn.Parameter(torch.cat([w_e, w_v])))
        self.alpha, self.eps, self.beta = dwc_model.h_pruner0.alpha.item(), 0.5, 2.0

    def prune(self, i, e, v):
        q = self.beta * torch.sigmoid(self.alpha * (torch.cat([e, v], dim=1) @ self.pruners[i]))
        return q * (torch.sign(q - self.eps) + 1) / 2

    def forward(self, inputs):
        x, e = inputs["x"], self.emb(inputs["d"])
        h = torch.cat([e, self.prune(0, e, x) * x], dim=1)
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms, strict=True)):
            a = torch.relu(norm(linear(h)))
            h = self.prune(i + 1, e, a) * a
        return {"y": torch.sigmoid(self.head(h))}


def _linear(weight, bias=None):
    """An nn.Linear holding a copy of dwc's in x out `weight` (and `bias`)."""
    layer = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight.t())
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _mlp(weights, biases, k, last=None):
    """Sub-network k of dwc's stacked MLP (Linear -> ReLU per layer), then a bias-free `last`."""
    layers = []
    for weight, bias in zip(weights, biases, strict=True):
        layers += [_linear(weight[k], bias[k]), nn.ReLU()]
    if last is not None:
        layers.append(_linear(last[k]))
    return nn.Sequential(*layers)


class PortHmoe(nn.Module):
    """HMoE as MMLRec's forward computes it: one module per expert, gate, tower, fusion net and
    head, looped over in Python; every scenario's fused head on the whole batch, the other
    towers behind detach() in training; then each sample's own head picked from the B x T."""

    def __init__(self, dwc_model):
        super().__init__()
        self.emb = dwc_model.d_embedding
        e, h = dwc_model.h_experts, dwc_model.h_hmoe
        self.experts = nn.ModuleList(_mlp(e.weights, e.biases, k)
                                     for k in range(e.weights[0].shape[0]))
        self.gates = nn.ModuleList(_mlp(h.gates.weights, h.gates.biases, t, h.gate_out)
                                   for t in range(T))
        self.towers = nn.ModuleList(_mlp(h.tower_weights, h.tower_biases, t) for t in range(T))
        self.fusions = nn.ModuleList(_mlp(h.fusion_weights, h.fusion_biases, t, h.fusion_out)
                                     for t in range(T))
        self.heads = nn.ModuleList(_linear(h.head_weight[t].unsqueeze(1), h.head_bias[t:t + 1])
                                   for t in range(T))

    def forward(self, inputs):
        d = inputs["d"]
        x = torch.cat([inputs["x"], self.emb(d)], dim=1)
        experts = torch.stack([expert(x) for expert in self.experts], dim=1)
        towers = [tower((torch.softmax(gate(x), dim=1).unsqueeze(2) * experts).sum(dim=1))
                  for gate, tower in zip(self.gates, self.towers, strict=True)]
        heads = []
        for t, (fusion, head) in enumerate(zip(self.fusions, self.heads, strict=True)):
            a = torch.softmax(fusion(x), dim=1)
            fused = sum(a[:, j:j + 1] * (h if j == t or not self.training else h.detach())
                        for j, h in enumerate(towers))
            heads.append(torch.sigmoid(head(fused)))
        return {"y": torch.cat(heads, dim=1).gather(1, d.unsqueeze(1))}


class NextRecPOSO(nn.Module):
    """POSO(MMoE) experts and a POSO-MLP tower as NextRec's port computes them: one MLP per
    expert, called in a loop, each expert's and each layer's gate C sigmoid(W2 relu(W1 pc + b1)
    + b2) run on every sample's code."""

    def __init__(self, dwc_model):
        super().__init__()
        m = dwc_model
        self.emb = m.group_embedding
        w, b = m.e_experts.weights, m.e_experts.biases
        g = m.e_gates
        self.experts = nn.ModuleList(
            nn.Sequential(_linear(w[0][k], b[0][k]), nn.ReLU(), _linear(w[1][k], b[1][k]),
                          nn.ReLU()) for k in range(4))
        self.expert_gates = nn.ModuleList(
            nn.Sequential(_linear(g.hidden_weight[k], g.hidden_bias[k]), nn.ReLU(),
                          _linear(g.out_weight[k], g.out_bias[k])) for k in range(4))
        self.task_gate = m.h_gate.gate
        self.linears = nn.ModuleList([m.h_fc0, m.h_fc1])
        self.gates = nn.ModuleList(nn.Sequential(gate.hidden, nn.ReLU(), gate.out)
                                   for gate in (m.h_gate0, m.h_gate1))
        self.head = m.y

    def forward(self, inputs):
        x, pc = inputs["x"], self.emb(inputs["group"])
        outs = [2.0 * torch.sigmoid(gate(pc)) * expert(x)
                for expert, gate in zip(self.experts, self.expert_gates, strict=True)]
        weights = torch.softmax(self.task_gate(x), dim=1).unsqueeze(-1)
        h = torch.sum(weights * torch.stack(outs, dim=1), dim=1)
        for linear, gate in zip(self.linears, self.gates, strict=True):
            h = 2.0 * torch.sigmoid(gate(pc)) * torch.relu(linear(h))
        return {"y": torch.sigmoid(self.head(h))}
class PortHamur(nn.Module):
    """HAMUR's public `MLP_adap_2_layer_1_adp` forward: for every domain d, the hyper-network on
    the whole batch, backbone d (Linear -> norm -> ReLU) on the whole batch, the adapter with
    W_down = U1 H V1 and W_up = U2 H V2 materialised per sample by einsum, the domain norm and
    backbone d's head; then each sample keeps its domain's output. Its norms use domain d's
    statistics: running ones in eval (where the public code's whole-batch statistics would
    disagree with dwc, and are NaN at B = 1), whole-batch ones in training, as the public code."""

    def __init__(self, dwc_model):
        super().__init__()
        self.emb, self.hyper, self.cell = dwc_model.d_embedding, dwc_model.core_hypernet, \
            dwc_model.a_adapter
        self.linears = [dwc_model.h1, dwc_model.h2]
        self.norms = [dwc_model.h1_norm, dwc_model.h2_norm]
        self.head = dwc_model.y
        self.k = self.cell.u_down.shape[1]

    def norm(self, x, mean, var, weight, bias):
        if self.training:
            mean, var = x.mean(0), x.var(0, unbiased=False)
        return (x - mean) * torch.rsqrt(var + 1e-5) * weight + bias

    def forward(self, inputs):
        domain = inputs["d"]
        e = torch.cat([inputs["x"], self.emb(domain)], dim=1)
        out = torch.zeros(e.shape[0], 1)
        c = self.cell
        for d in range(HAMUR_D):
            core = self.hyper(e).reshape(-1, self.k, self.k)  # recomputed per domain
            h = e
            for linear, pn in zip(self.linears, self.norms, strict=True):
                h = h @ linear.weight[d] + linear.bias[d]
                scale, shift = pn.weight * pn.domain_weight[d], pn.bias + pn.domain_bias[d]
                h = torch.relu(self.norm(h, pn.running_mean[d], pn.running_var[d], scale, shift))
            w1 = torch.einsum("mi,bij,jn->bmn", c.u_down, core, c.v_down)
            s = torch.sigmoid(torch.einsum("bf,bfj->bj", h, w1) + c.bias_down)
            w2 = torch.einsum("mi,bij,jn->bmn", c.u_up, core, c.v_up)
            u = torch.einsum("bf,bfj->bj", s, w2) + c.bias_up
            h = h + self.norm(u, c.running_mean[d], c.running_var[d], c.norm_weight, c.norm_bias)
            logit = h @ self.head.weight[d] + self.head.bias[d]
            out = torch.where((domain == d).unsqueeze(1), logit, out)
        return {"y": torch.sigmoid(out)}
MLORA = f"""
model mlora_bench
feature x : numeric(width = 256)
feature d : categorical(vocab = {D}, dim = 8) scenario
h = mlora(x, [256, 128, 64], by = d)
output y = sigmoid(linear(h, 1)) loss = bce
"""


class PortMlora(nn.Module):
    """MLoRA's MLoRAFCN layer as the TF port computes it, Dropout(x W + b) + (x A) B + c, with
    each domain's adapter run on the whole batch and masked to that domain's samples; ReLU; a
    shared Dense(1) on top."""

    def __init__(self, dwc_model):
        super().__init__()
        self.layers = nn.ModuleList()
        for i in range(3):
            fc, layer = getattr(dwc_model, f"h_fc{i}"), nn.Module()
            for name in ("weight", "bias", "domain_a", "domain_b", "domain_bias"):
                setattr(layer, name, nn.Parameter(getattr(fc, name).detach().clone()))
            self.layers.append(layer)
        self.head = nn.Linear(64, 1)
        self.head.load_state_dict(dwc_model.y.state_dict())

    def forward(self, inputs):
        h, d = inputs["x"], inputs["d"]
        for layer in self.layers:
            out = nn.functional.dropout(h @ layer.weight + layer.bias, 0.5, self.training)
            for domain in range(D):
                adapted = (h @ layer.domain_a[domain]) @ layer.domain_b[domain]
                out = out + (d == domain).unsqueeze(1) * (adapted + layer.domain_bias[domain])
            h = torch.relu(out)
        return {"y": torch.sigmoid(self.head(h))}


def _norm_mlp(weights, biases, norm_weights, norm_biases, k):
    """Expert k of dwc's _DwcNormExperts as the public code builds each: its own modules."""
    layers = []
    for w, b, nw, nb in zip(weights, biases, norm_weights, norm_biases, strict=True):
        linear, norm = nn.Linear(w.shape[1], w.shape[2]), nn.LayerNorm(w.shape[2])
        with torch.no_grad():
            linear.weight.copy_(w[k].T)
            linear.bias.copy_(b[k])
            norm.weight.copy_(nw[k])
            norm.bias.copy_(nb[k])
        layers += [linear, norm, nn.ReLU()]
    return nn.Sequential(*layers)


class PortM3oE(nn.Module):
    """M3oE as its public code runs the forward (D domains, T tasks, E shared experts)."""

    def __init__(self, dwc_model, tasks=2, shared=4):
        super().__init__()
        self.dwc, self.tasks, self.shared = dwc_model, tasks, shared
        self.star = nn.Sequential(dwc_model.m_star_fc, dwc_model.m_star_norm, nn.ReLU())
        self.skip = nn.Sequential(dwc_model.m_skip_fc, dwc_model.m_skip_norm, nn.ReLU())
        e = dwc_model.m_experts
        self.experts = nn.ModuleList(
            _norm_mlp(e.weights, e.biases, e.norm_weights, e.norm_biases, k)
            for k in range(shared + M3OE_D + tasks))
        g, t = dwc_model.m_gates, dwc_model.m_towers
        self.gates, self.towers = nn.ModuleList(), nn.ModuleList()
        width = t.weight.shape[-1]
        for d in range(M3OE_D):
            for task in range(tasks):
                cols = slice(task * shared, (task + 1) * shared)
                gate = nn.Linear(g.weight.shape[1], shared)
                tower = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.ReLU(),
                                      nn.Linear(width, 1))
                with torch.no_grad():
                    gate.weight.copy_(g.weight[d][:, cols].T)
                    gate.bias.copy_(g.bias[d][cols])
                    tower[0].weight.copy_(t.weight[d, task].T)
                    tower[0].bias.copy_(t.bias[d, task])
                    tower[1].weight.copy_(t.norm_weight[d, task])
                    tower[1].bias.copy_(t.norm_bias[d, task])
                    tower[3].weight.copy_(t.out_weight[d, task].unsqueeze(0))
                    tower[3].bias.copy_(t.out_bias[d, task].unsqueeze(0))
                self.gates.append(gate)
                self.towers.append(tower)

    def forward(self, inputs):
        x, d = inputs["x"], inputs["d"]
        slot, fusion = self.dwc.m_slot, self.dwc.m_fusion
        masks = [(d == domain).unsqueeze(1).to(x.dtype) for domain in range(M3OE_D)]
        s = 0
        for domain, mask in enumerate(masks):  # every domain's slot, W_d * W_s each forward
            w = slot.domain_weight[domain] * slot.weight
            s = s + mask * (x @ w + slot.domain_bias[domain] + slot.bias)
        h = self.star(s) + self.skip(x)
        out = [expert(h) for expert in self.experts]
        shared = torch.stack(out[:self.shared], dim=1)
        dom, task = out[self.shared:self.shared + M3OE_D], out[self.shared + M3OE_D:]
        a_d, a_t = torch.sigmoid(fusion.alpha_domain), torch.sigmoid(fusion.alpha_task)
        b_d, b_t = torch.sigmoid(fusion.beta_domain), torch.sigmoid(fusion.beta_task)
        y = x.new_zeros(x.shape[0], self.tasks)
        for domain, mask in enumerate(masks):
            u = b_d * dom[domain] + (1 - b_d) / (M3OE_D - 1) * sum(
                dom[j] for j in range(M3OE_D) if j != domain)
            for t in range(self.tasks):
                v = b_t * task[t] + (1 - b_t) / (self.tasks - 1) * sum(
                    task[j] for j in range(self.tasks) if j != t)
                i = domain * self.tasks + t
                gate = torch.softmax(self.gates[i](h.detach()), dim=1)
                f = torch.einsum("be,beh->bh", gate, shared) + a_d * u + a_t * v
                y[:, t:t + 1] += mask * self.towers[i](f)
        return {"y": torch.sigmoid(y[:, :1]), "y2": torch.sigmoid(y[:, 1:])}


def _prepare_star(model, cls):
    for layer in (model.h_fc0, model.h_fc1, model.y_fc0):
        layer.domain_weight.uniform_(0.5, 1.5)
        layer.domain_bias.normal_(0, 0.1)


def _prepare_hmoe(model, cls):  # the heads' biases start at zero
    model.h_hmoe.head_bias.normal_(0, 1)


def _prepare_hamur(model, cls):  # running statistics of a few training batches
    for seed in range(3):
        model(cls.example_inputs(256, torch.Generator().manual_seed(seed)))


def _prepare_mlora(model, cls):  # B and c start at zero
    for layer in (model.h_fc0, model.h_fc1, model.h_fc2):
        layer.domain_b.normal_(0, 0.1)
        layer.domain_bias.normal_(0, 0.1)


CASES = [
    ("apg", APG, FuxiAPG, None),
    ("apg_user", APG_USER, FuxiAPGUser, None),
    ("ppnet", PPNET, FuxiPPNet, None),
    ("star", STAR, MaskAllStar, _prepare_star),
    ("adasparse", ADASPARSE.format(reads="reads = domain"), PortAdaSparse, None),
    ("adasparse_hidden", ADASPARSE.format(reads="reads = domain_and_hidden"), PortAdaSparse, None),
    ("hmoe", HMOE, PortHmoe, _prepare_hmoe),
    ("poso", POSO, NextRecPOSO, None),
    ("hamur", HAMUR, PortHamur, _prepare_hamur),
    ("mlora", MLORA, PortMlora, _prepare_mlora),
    ("m3oe", M3OE, PortM3oE, None),
]
"""(label, spec, reference class, prepare(model, cls) or None): one block of rows each, in this
order."""
