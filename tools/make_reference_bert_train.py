#!/usr/bin/python3
"""make_reference_bert_train.py - golden losses and gradients for preft's BERT training.

What it is
    The independent PyTorch (float64, autograd) reference for the encoder's
    training pass (src/train/bert_fwd_bwd.c, bert_heads.c, bert_smart.c):
    a tiny BERT with every head preft trains (MLM head with the decoder tied
    to the word embeddings, the three task heads, early-exit heads, the
    bi-encoder's paraphrase head), one padded batch, and per case the loss
    and the gradient of every tensor. The C test (tests/unit/test_bert_train.c)
    reads these files; it never needs Python. No `transformers`: the model is
    written here from the BERT definition (as tools/make_reference_bert.py).

How to run
    /usr/bin/python3 tools/make_reference_bert_train.py tests/data/bert_train

    Debian's python3-torch and numpy. Deterministic.

Files under <out>/
    cross/    config.json, model.safetensors (F32): encoder, pooler, MLM head,
              heads.{sst,para,sts}, exits.<l>.{pooler,sst,para,sts}
    siamese/  the same encoder, heads.sst and heads.para [1, 4D] (bi-encoder)
    delta.f64 [N, D] the SMART perturbation of the smart_* cases
    golden.json {"batch": {B, T, ids, types, lengths}, "cases": [{name, model,
              kind, task, labels, ..., loss, tensors: [names], grads: file,
              (smart) delta_grad, delta_step}]}
    <case>.f64  raw little-endian float64: the gradients of `tensors`
              concatenated in that order

Semantics (preft's definitions, bert_train.h)
    encoder: x0 = LN(word[id] + pos[t] + type[ty]) + delta; post-LN layers,
      exact GELU, attention over each sequence's first `length` keys; no
      dropout (eval mode) so that gradients are deterministic.
    cross head at layer l: tanh(x_l[first]·Pᵀ + p)·Wᵀ + b (P, W of the last
      layer are bert.pooler and heads.<task>, else exits.<l>.*)
    bi-encoder (examples i < n use sequences i and n+i): u, v mean-pooled over
      real tokens; para logit = [u, v, |u-v|, u*v]·wᵀ + b; sts = 2.5(cos(u,v)+1)
      with cos = u·v / ((|u|+1e-12)(|v|+1e-12))
    losses: sst cross-entropy, para BCE with logits, sts squared error, each
      the mean over examples; exits_joint: sum_l (l+1)·loss_l / sum_l (l+1)
    MLM: rows r (flat b*T+t): z = LN(gelu(x[r]·Wtᵀ + bt)); logits = z·wordᵀ +
      bias; mean cross-entropy
    SMART: D = symmetric KL of softmax (sst) / Bernoulli(sigmoid) (para), or
      squared error (sts), mean over examples. delta_grad = d/d delta of
      D(f(x+delta), f(x) held fixed); delta_step = clamp(delta + eta·g /
      (max_row|g| + 1e-6), -eps, eps) (row: a token's D values);
      smart_loss: task loss of f(x) + lambda·D(f(x+delta), f(x)), both sides
      differentiated.
"""

import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference_models import write_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)

V, D, H, F, L, P, TV, EPS = 30, 16, 2, 24, 3, 12, 2, 1e-12
DH = D // H
LIN = [("attention.self.query", D, D), ("attention.self.key", D, D), ("attention.self.value", D, D),
       ("attention.output.dense", D, D), ("intermediate.dense", F, D), ("output.dense", D, F)]
TASKS = ["sst", "para", "sts"]
WIDTH = {"sst": 5, "para": 1, "sts": 1}


def make_params(gen, siamese):
    """name -> (float32-rounded) float64 tensor, in preft's parameter order."""
    p = {}

    def mat(name, r, c, std=0.3):
        p[name] = (torch.randn(r, c, generator=gen, dtype=torch.float32) * std).double()

    def vec(name, n, base=0.0, std=0.1):
        p[name] = (base + torch.randn(n, generator=gen, dtype=torch.float32) * std).double()

    mat("bert.embeddings.word_embeddings.weight", V, D, 1.0)
    mat("bert.embeddings.position_embeddings.weight", P, D, 0.5)
    mat("bert.embeddings.token_type_embeddings.weight", TV, D, 0.5)
    vec("bert.embeddings.LayerNorm.weight", D, 1.0)
    vec("bert.embeddings.LayerNorm.bias", D)
    for l in range(L):
        pre = "bert.encoder.layer.%d." % l
        for name, o, i in LIN:
            mat(pre + name + ".weight", o, i, 1.0 / math.sqrt(i))
            vec(pre + name + ".bias", o)
        vec(pre + "attention.output.LayerNorm.weight", D, 1.0)
        vec(pre + "attention.output.LayerNorm.bias", D)
        vec(pre + "output.LayerNorm.weight", D, 1.0)
        vec(pre + "output.LayerNorm.bias", D)
    mat("bert.pooler.dense.weight", D, D, 0.3)
    vec("bert.pooler.dense.bias", D)
    if not siamese:
        mat("cls.predictions.transform.dense.weight", D, D, 0.3)
        vec("cls.predictions.transform.dense.bias", D)
        vec("cls.predictions.transform.LayerNorm.weight", D, 1.0)
        vec("cls.predictions.transform.LayerNorm.bias", D)
        vec("cls.predictions.bias", V)
    for t in TASKS:
        if siamese and t == "sts":
            continue
        mat("heads.%s.weight" % t, WIDTH[t], 4 * D if (siamese and t == "para") else D, 0.3)
        vec("heads.%s.bias" % t, WIDTH[t])
    if not siamese:
        for l in range(L - 1):
            mat("exits.%d.pooler.weight" % l, D, D, 0.3)
            vec("exits.%d.pooler.bias" % l, D)
            for t in TASKS:
                mat("exits.%d.%s.weight" % (l, t), WIDTH[t], D, 0.3)
                vec("exits.%d.%s.bias" % (l, t), WIDTH[t])
    for v in p.values():
        v.requires_grad_(True)
    return p


def ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def encoder(p, ids, types, lengths, delta=None):
    """hidden states of every layer, [L] x [B, T, D]"""
    B, T = ids.shape
    x = p["bert.embeddings.word_embeddings.weight"][ids] + \
        p["bert.embeddings.position_embeddings.weight"][torch.arange(T)][None] + \
        p["bert.embeddings.token_type_embeddings.weight"][types]
    x = ln(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"])
    if delta is not None:
        x = x + delta
    keymask = torch.zeros(B, 1, 1, T)
    for b in range(B):
        keymask[b, :, :, lengths[b]:] = -math.inf
    outs = []
    for l in range(L):
        pre = "bert.encoder.layer.%d." % l

        def lin(name, v):
            return v @ p[pre + name + ".weight"].T + p[pre + name + ".bias"]

        q = lin("attention.self.query", x).view(B, T, H, DH).transpose(1, 2)
        k = lin("attention.self.key", x).view(B, T, H, DH).transpose(1, 2)
        v = lin("attention.self.value", x).view(B, T, H, DH).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(DH) + keymask
        ctx = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, D)
        a = ln(x + lin("attention.output.dense", ctx), p[pre + "attention.output.LayerNorm.weight"],
               p[pre + "attention.output.LayerNorm.bias"])
        x = ln(a + lin("output.dense", gelu(lin("intermediate.dense", a))), p[pre + "output.LayerNorm.weight"],
               p[pre + "output.LayerNorm.bias"])
        outs.append(x)
    return outs


def cross_head(p, X, task, layer, n):
    if layer == L - 1:
        pw, pb, w, b = p["bert.pooler.dense.weight"], p["bert.pooler.dense.bias"], \
            p["heads.%s.weight" % task], p["heads.%s.bias" % task]
    else:
        pw, pb = p["exits.%d.pooler.weight" % layer], p["exits.%d.pooler.bias" % layer]
        w, b = p["exits.%d.%s.weight" % (layer, task)], p["exits.%d.%s.bias" % (layer, task)]
    pooled = torch.tanh(X[:n, 0] @ pw.T + pb)
    return pooled @ w.T + b


def siamese_head(p, X, task, lengths, n):
    vecs = torch.stack([X[s, :lengths[s]].mean(0) for s in range(2 * n)])
    u, v = vecs[:n], vecs[n:]
    if task == "para":
        feat = torch.cat([u, v, (u - v).abs(), u * v], -1)
        return feat @ p["heads.para.weight"].T + p["heads.para.bias"]
    cos = (u * v).sum(-1) / ((u.norm(dim=-1) + 1e-12) * (v.norm(dim=-1) + 1e-12))
    return (2.5 * (cos + 1.0))[:, None]


def task_loss(task, out, labels):
    if task == "sst":
        return torch.nn.functional.cross_entropy(out, labels.long())
    if task == "para":
        return torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], labels)
    return ((out[:, 0] - labels) ** 2).mean()


def divergence(task, a, b):
    if task == "sts":
        return ((a[:, 0] - b[:, 0]) ** 2).mean()
    if task == "para":
        a = torch.cat([torch.zeros_like(a), a], -1)
        b = torch.cat([torch.zeros_like(b), b], -1)
    la, lb = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
    return ((la.exp() - lb.exp()) * (la - lb)).sum(-1).mean()


def mlm_loss(p, X, rows, targets):
    x = X.reshape(-1, D)[rows]
    h = gelu(x @ p["cls.predictions.transform.dense.weight"].T + p["cls.predictions.transform.dense.bias"])
    z = ln(h, p["cls.predictions.transform.LayerNorm.weight"], p["cls.predictions.transform.LayerNorm.bias"])
    logits = z @ p["bert.embeddings.word_embeddings.weight"].T + p["cls.predictions.bias"]
    return torch.nn.functional.cross_entropy(logits, targets)


def save_model(d, p):
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["BertForMaskedLM"], "hidden_act": "gelu", "hidden_size": D,
           "intermediate_size": F, "layer_norm_eps": EPS, "max_position_embeddings": P, "model_type": "bert",
           "num_attention_heads": H, "num_hidden_layers": L, "pad_token_id": 0,
           "position_embedding_type": "absolute", "torch_dtype": "float32", "type_vocab_size": TV,
           "vocab_size": V}
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_safetensors(os.path.join(d, "model.safetensors"), {k: v.detach().float() for k, v in p.items()})


def grads_of(p, loss, out, name):
    for v in p.values():
        v.grad = None
    loss.backward()
    g = [(v.grad if v.grad is not None else torch.zeros_like(v)).reshape(-1) for v in p.values()]
    np.concatenate([x.detach().numpy() for x in g]).astype("<f8").tofile(os.path.join(out, name + ".f64"))
    return list(p.keys())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/bert_train"
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(16)
    pc = make_params(gen, False)
    ps = make_params(torch.Generator().manual_seed(16), True)  # the same encoder, other heads
    for k in ps:
        if k in pc and not k.startswith("heads."):
            assert torch.equal(ps[k], pc[k]), k
    save_model(os.path.join(out, "cross"), pc)
    save_model(os.path.join(out, "siamese"), ps)

    B, T = 4, 7
    lengths = [7, 5, 3, 6]
    g2 = torch.Generator().manual_seed(7)
    ids = torch.randint(1, V, (B, T), generator=g2)
    types = torch.zeros(B, T, dtype=torch.long)
    for b in range(B):
        ids[b, lengths[b]:] = 0
        types[b, lengths[b] // 2:lengths[b]] = 1
    labels = {"sst": torch.tensor([0.0, 3.0, 4.0, 2.0]), "para": torch.tensor([1.0, 0.0, 0.0, 1.0]),
              "sts": torch.tensor([4.2, 0.5, 2.0, 3.3])}
    delta = (torch.randn(B, T, D, generator=g2, dtype=torch.float32) * 0.05).double()
    for b in range(B):
        delta[b, lengths[b]:] = 0
    delta.numpy().astype("<f8").tofile(os.path.join(out, "delta.f64"))
    golden = {"batch": {"B": B, "T": T, "ids": ids.reshape(-1).tolist(), "types": types.reshape(-1).tolist(),
                        "lengths": lengths}, "cases": []}

    def add(case, p, loss):
        case["loss"] = loss.item()
        case["tensors"] = grads_of(p, loss, out, case["name"])
        case["grads"] = case["name"] + ".f64"
        golden["cases"].append(case)

    for t in TASKS:
        X = encoder(pc, ids, types, lengths)
        add({"name": "%s_cross" % t, "model": "cross", "kind": "task", "task": t, "n": B,
             "labels": labels[t].tolist()}, pc, task_loss(t, cross_head(pc, X[-1], t, L - 1, B), labels[t]))
    for t in ["para", "sts"]:
        X = encoder(ps, ids, types, lengths)
        add({"name": "%s_siamese" % t, "model": "siamese", "kind": "task", "task": t, "n": 2,
             "labels": labels[t][:2].tolist()}, ps, task_loss(t, siamese_head(ps, X[-1], t, lengths, 2),
                                                              labels[t][:2]))
    for t in ["sst", "sts"]:
        X = encoder(pc, ids, types, lengths)
        num = sum((l + 1) * task_loss(t, cross_head(pc, X[l], t, l, B), labels[t]) for l in range(L))
        add({"name": "exits_joint_%s" % t, "model": "cross", "kind": "exits", "task": t, "n": B,
             "labels": labels[t].tolist()}, pc, num / sum(l + 1 for l in range(L)))
    rows = [0 * T + 1, 0 * T + 4, 1 * T + 2, 2 * T + 1, 3 * T + 5, 3 * T + 0]
    targets = torch.tensor([3, 17, 29, 1, 8, 12])
    X = encoder(pc, ids, types, lengths)
    add({"name": "mlm", "model": "cross", "kind": "mlm", "rows": rows, "targets": targets.tolist()}, pc,
        mlm_loss(pc, X[-1], rows, targets))

    eta, eps, lam = 0.01, 0.03, 2.0
    for t in TASKS:
        clean = cross_head(pc, encoder(pc, ids, types, lengths)[-1], t, L - 1, B).detach()
        d = delta.clone().requires_grad_(True)
        adv = cross_head(pc, encoder(pc, ids, types, lengths, d)[-1], t, L - 1, B)
        gd, = torch.autograd.grad(divergence(t, adv, clean), d)
        step = d.detach() + eta * gd / (gd.abs().amax(-1, keepdim=True) + 1e-6)
        step = step.clamp(-eps, eps)
        gd.numpy().astype("<f8").tofile(os.path.join(out, "smart_%s_dgrad.f64" % t))
        step.numpy().astype("<f8").tofile(os.path.join(out, "smart_%s_dstep.f64" % t))
        clean = cross_head(pc, encoder(pc, ids, types, lengths)[-1], t, L - 1, B)
        adv = cross_head(pc, encoder(pc, ids, types, lengths, delta)[-1], t, L - 1, B)
        loss = task_loss(t, clean, labels[t]) + lam * divergence(t, adv, clean)
        add({"name": "smart_%s" % t, "model": "cross", "kind": "smart", "task": t, "n": B,
             "labels": labels[t].tolist(), "eta": eta, "eps": eps, "lambda": lam,
             "delta_grad": "smart_%s_dgrad.f64" % t, "delta_step": "smart_%s_dstep.f64" % t}, pc, loss)

    # self-checks: the padding mask matters, and a padded sequence equals its unpadded self
    Xa = encoder(pc, ids, types, lengths)[-1]
    Xb = encoder(pc, ids[1:2, :lengths[1]], types[1:2, :lengths[1]], [lengths[1]])[-1]
    if (Xa[1, :lengths[1]] - Xb[0]).abs().max().item() > 1e-12:
        raise SystemExit("padding changes a sequence's hidden states")
    with open(os.path.join(out, "golden.json"), "w") as f:
        f.write(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    print("wrote %d cases to %s" % (len(golden["cases"]), out))


if __name__ == "__main__":
    main()
