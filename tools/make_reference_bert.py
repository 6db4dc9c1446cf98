#!/usr/bin/python3
"""make_reference_bert.py - tiny Hugging Face-layout BERT encoders plus golden hidden states.

What it is
    An independent PyTorch (float64) reference for preft's BERT encoder
    (src/model/bert_*.c). It writes small random models in the layout
    transformers' `save_pretrained` gives BertModel, BertForMaskedLM and
    BertForSequenceClassification (config.json, model.safetensors), and for
    each model a few token sequences with their last hidden states and, where
    the model has a pooler, the pooled output. The C tests read these files;
    they never need Python. No `transformers` package: the forward pass is
    written here from the BERT definition.

How to run
    /usr/bin/python3 tools/make_reference_bert.py tests/data/bert

    Debian's python3-torch (1.13) and numpy. Deterministic: the same bytes on
    every run. Reuses the safetensors writer and independent reader of
    make_reference_models.py.

Files per model directory <out>/<name>/
    config.json          as transformers writes a BertConfig (indent 2, sorted keys)
    model.safetensors    weights, HF tensor names, sorted, header padded to 8
    cases.txt            one line per sequence: "ids=1,2,3 types=0,0,1"
    hidden.f64           raw little-endian float64: the cases' last hidden
                         states one after the other, [sum T, D]
    pooled.f64           [n_cases, D] pooler outputs (only when the model has
                         a pooler)

Reference semantics (transformers' BertModel, eval mode, no dropout)
    x = LN_emb(word[ids] + position[0..T-1] + token_type[types])
    per layer:  a = LN_attn(x + Wo·attn(x) + bo)
                x = LN_out(a + W2·gelu(W1·a + b1) + b2)
    attention: per head, softmax(q·kᵀ/√Dh + mask)·v with q, k, v = W·x + b;
               in a padded batch the mask adds finfo(float64).min at padding
               keys (transformers' get_extended_attention_mask)
    gelu: exact, x·Φ(x) = 0.5·x·(1 + erf(x/√2))  (hidden_act "gelu")
    LN(x) = (x - mean) / sqrt(var + layer_norm_eps) · weight + bias (biased var)
    pooled = tanh(Wp·x[0] + bp)

Models
    bert-model-f32        BertModel names (no prefix), F32, D 32, H 4, F 64, L 2,
                          pooler, eps 1e-12; a case at max_position_embeddings
    bert-mlm-gamma-f16    BertForMaskedLM: `bert.` prefix, old LayerNorm
                          gamma/beta names, MLM head tensors (cls.*), no pooler,
                          F16, D 36 (not a multiple of 8), H 3, F 72, eps 1e-12
    bert-cls-bf16         BertForSequenceClassification: `bert.` prefix,
                          pooler, classifier.*, BF16, D 32, H 2, F 48, L 3,
                          type_vocab_size 3, eps 1e-5

Precision
    Weights are drawn in float32 and rounded to the file dtype; the reference
    runs in float64 on exactly those rounded values.

Self-checks (the script fails loudly if any is violated)
    - every file is re-read by the independent safetensors reader and
      compared bit for bit with the tensors written;
    - the outputs are recomputed from the re-read tensors by a second, naive
      loop-per-position forward and must agree to 1e-10;
    - a right-padded batch of all cases with transformers' additive mask gives
      every case's rows (padding rows excluded) to 1e-12;
    - the tanh GELU, pre-LayerNorm layers, dropping the token types, the
      positions and the mask each change the outputs.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference_models import read_safetensors, write_safetensors  # noqa: E402

TORCH_DTYPE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
CONFIG_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}

MODELS = [
    {
        "name": "bert-model-f32", "arch": "BertModel", "dtype": "F32",
        "dim": 32, "heads": 4, "ffn": 64, "layers": 2, "vocab": 64, "max_pos": 40, "type_vocab": 2,
        "eps": 1e-12, "prefix": "", "gamma_beta": False, "pooler": True, "seed": 1601,
        # (length, index of the first type-1 token or None)
        "cases": [(12, 7), (7, None), (3, 1), (40, 20)],
    },
    {
        "name": "bert-mlm-gamma-f16", "arch": "BertForMaskedLM", "dtype": "F16",
        "dim": 36, "heads": 3, "ffn": 72, "layers": 2, "vocab": 50, "max_pos": 24, "type_vocab": 2,
        "eps": 1e-12, "prefix": "bert.", "gamma_beta": True, "pooler": False, "seed": 1602,
        "cases": [(9, 5), (16, None), (1, None)],
    },
    {
        "name": "bert-cls-bf16", "arch": "BertForSequenceClassification", "dtype": "BF16",
        "dim": 32, "heads": 2, "ffn": 48, "layers": 3, "vocab": 40, "max_pos": 32, "type_vocab": 3,
        "eps": 1e-5, "prefix": "bert.", "gamma_beta": False, "pooler": True, "seed": 1603,
        "cases": [(10, 4), (5, 2), (14, None)],
    },
]


def fail(msg):
    raise SystemExit("make_reference_bert: FAILED: " + msg)


def make_config(m):
    c = {
        "architectures": [m["arch"]],
        "attention_probs_dropout_prob": 0.1,
        "classifier_dropout": None,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": m["dim"],
        "initializer_range": 0.02,
        "intermediate_size": m["ffn"],
        "layer_norm_eps": m["eps"],
        "max_position_embeddings": m["max_pos"],
        "model_type": "bert",
        "num_attention_heads": m["heads"],
        "num_hidden_layers": m["layers"],
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": CONFIG_DTYPE[m["dtype"]],
        "transformers_version": "4.46.3",
        "type_vocab_size": m["type_vocab"],
        "use_cache": True,
        "vocab_size": m["vocab"],
    }
    if m["arch"] == "BertForSequenceClassification":
        c["id2label"] = {"0": "LABEL_0", "1": "LABEL_1"}
        c["label2id"] = {"LABEL_0": 0, "LABEL_1": 1}
    return c


def dump_json(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------
# Weights: canonical names (BertModel, LayerNorm.weight/bias) -> float32
# drawn, rounded to the file dtype; the file names add the prefix and the
# old gamma/beta names.
# ---------------------------------------------------------------------------

def make_weights(m):
    g = torch.Generator().manual_seed(m["seed"])
    D, F, V = m["dim"], m["ffn"], m["vocab"]

    def mat(rows, cols, scale):
        return (torch.rand(rows, cols, generator=g) * 2 - 1) * scale

    def vec(n, center, scale):
        return center + (torch.rand(n, generator=g) * 2 - 1) * scale

    w = {}
    w["embeddings.word_embeddings.weight"] = mat(V, D, 1.0)
    w["embeddings.position_embeddings.weight"] = mat(m["max_pos"], D, 0.5)
    w["embeddings.token_type_embeddings.weight"] = mat(m["type_vocab"], D, 0.5)
    w["embeddings.LayerNorm.weight"] = vec(D, 1.0, 0.2)
    w["embeddings.LayerNorm.bias"] = vec(D, 0.0, 0.2)
    for l in range(m["layers"]):
        p = "encoder.layer.%d." % l
        for part in ("query", "key", "value"):
            w[p + "attention.self.%s.weight" % part] = mat(D, D, 2.0 / math.sqrt(D))
            w[p + "attention.self.%s.bias" % part] = vec(D, 0.0, 0.2)
        w[p + "attention.output.dense.weight"] = mat(D, D, 1.0 / math.sqrt(D))
        w[p + "attention.output.dense.bias"] = vec(D, 0.0, 0.2)
        w[p + "attention.output.LayerNorm.weight"] = vec(D, 1.0, 0.2)
        w[p + "attention.output.LayerNorm.bias"] = vec(D, 0.0, 0.2)
        w[p + "intermediate.dense.weight"] = mat(F, D, 2.0 / math.sqrt(D))
        w[p + "intermediate.dense.bias"] = vec(F, 0.0, 0.5)
        w[p + "output.dense.weight"] = mat(D, F, 1.0 / math.sqrt(F))
        w[p + "output.dense.bias"] = vec(D, 0.0, 0.2)
        w[p + "output.LayerNorm.weight"] = vec(D, 1.0, 0.2)
        w[p + "output.LayerNorm.bias"] = vec(D, 0.0, 0.2)
    if m["pooler"]:
        w["pooler.dense.weight"] = mat(D, D, 1.0 / math.sqrt(D))
        w["pooler.dense.bias"] = vec(D, 0.0, 0.2)
    dt = TORCH_DTYPE[m["dtype"]]
    stored = {k: v.to(dt) for k, v in w.items()}
    # heads the encoder does not read (they must be tolerated, not required)
    extra = {}
    if m["arch"] == "BertForMaskedLM":
        extra["cls.predictions.bias"] = vec(V, 0.0, 0.1).to(dt)
        extra["cls.predictions.transform.dense.weight"] = mat(D, D, 0.1).to(dt)
        extra["cls.predictions.transform.dense.bias"] = vec(D, 0.0, 0.1).to(dt)
        extra["cls.predictions.transform.LayerNorm.weight"] = vec(D, 1.0, 0.1).to(dt)
        extra["cls.predictions.transform.LayerNorm.bias"] = vec(D, 0.0, 0.1).to(dt)
    if m["arch"] == "BertForSequenceClassification":
        extra["classifier.weight"] = mat(2, D, 0.1).to(dt)
        extra["classifier.bias"] = vec(2, 0.0, 0.1).to(dt)
    return stored, extra


def file_name(m, canonical):
    n = canonical
    if m["gamma_beta"] and ".LayerNorm." in n:
        n = n.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    return m["prefix"] + n


def extra_file_name(m, name):
    if m["gamma_beta"] and ".LayerNorm." in name:
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    return name


# ---------------------------------------------------------------------------
# Forward passes (float64)
# ---------------------------------------------------------------------------

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(m, w, ids, types, mask=None, gelu=gelu_erf, post_ln=True, use_types=True, use_pos=True, lora=None):
    """Batched: ids, types [B, T] int64; mask [B, T] (1 keep, 0 pad) or None.
    lora: {"encoder.layer.<l>.<module>": (A [R, in], B [out, R], scale)}, each
    such linear giving W·x + b + scale·B·(A·x) (make_reference_bert_lora.py).
    Returns hidden [B, T, D] and pooled [B, D] (or None)."""
    B, T = ids.shape
    D, H = m["dim"], m["heads"]
    dh = D // H
    eps = m["eps"]
    x = w["embeddings.word_embeddings.weight"][ids]
    if use_pos:
        x = x + w["embeddings.position_embeddings.weight"][torch.arange(T)][None, :, :]
    if use_types:
        x = x + w["embeddings.token_type_embeddings.weight"][types]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    add = torch.zeros(B, 1, 1, T, dtype=torch.float64)
    if mask is not None:
        add = (1.0 - mask.to(torch.float64))[:, None, None, :] * torch.finfo(torch.float64).min
    for l in range(m["layers"]):
        p = "encoder.layer.%d." % l

        def lin(t, name):
            y = t @ w[p + name + ".weight"].T + w[p + name + ".bias"]
            if lora is not None and p + name in lora:
                a, b, scale = lora[p + name]
                y = y + scale * ((t @ a.T) @ b.T)
            return y

        h_in = x if post_ln else layer_norm(x, w[p + "attention.output.LayerNorm.weight"],
                                            w[p + "attention.output.LayerNorm.bias"], eps)
        q = lin(h_in, "attention.self.query").view(B, T, H, dh).transpose(1, 2)
        k = lin(h_in, "attention.self.key").view(B, T, H, dh).transpose(1, 2)
        v = lin(h_in, "attention.self.value").view(B, T, H, dh).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + add
        ctx = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
        a = lin(ctx, "attention.output.dense")
        if post_ln:
            a = layer_norm(a + x, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            f = lin(gelu(lin(a, "intermediate.dense")), "output.dense")
            x = layer_norm(f + a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        else:
            a = a + x
            hn = layer_norm(a, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
            x = a + lin(gelu(lin(hn, "intermediate.dense")), "output.dense")
    pooled = None
    if "pooler.dense.weight" in w:
        pooled = torch.tanh(x[:, 0] @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
    return x, pooled


def naive_forward(m, w, ids, types):
    """One sequence, loop per position and head, numpy float64."""
    W = {k: np.asarray(v, dtype=np.float64) for k, v in w.items()}
    T, D, H = len(ids), m["dim"], m["heads"]
    dh = D // H
    eps = m["eps"]

    def ln(v, name):
        mu = sum(v) / len(v)
        var = sum((e - mu) ** 2 for e in v) / len(v)
        return (v - mu) / math.sqrt(var + eps) * W[name + ".weight"] + W[name + ".bias"]

    def gelu(v):
        return np.array([0.5 * e * (1.0 + math.erf(e / math.sqrt(2.0))) for e in v])

    x = [ln(W["embeddings.word_embeddings.weight"][ids[t]] + W["embeddings.position_embeddings.weight"][t] +
            W["embeddings.token_type_embeddings.weight"][types[t]], "embeddings.LayerNorm") for t in range(T)]
    for l in range(m["layers"]):
        p = "encoder.layer.%d." % l

        def lin(v, name):
            return W[p + name + ".weight"] @ v + W[p + name + ".bias"]

        q = [lin(e, "attention.self.query") for e in x]
        k = [lin(e, "attention.self.key") for e in x]
        v = [lin(e, "attention.self.value") for e in x]
        nx = []
        for t in range(T):
            ctx = np.zeros(D)
            for h in range(H):
                sl = slice(h * dh, (h + 1) * dh)
                s = np.array([float(q[t][sl] @ k[u][sl]) / math.sqrt(dh) for u in range(T)])
                e = np.exp(s - s.max())
                pr = e / e.sum()
                for u in range(T):
                    ctx[sl] += pr[u] * v[u][sl]
            a = ln(lin(ctx, "attention.output.dense") + x[t], p + "attention.output.LayerNorm")
            f = lin(gelu(lin(a, "intermediate.dense")), "output.dense")
            nx.append(ln(f + a, p + "output.LayerNorm"))
        x = nx
    hidden = np.stack(x)
    pooled = None
    if "pooler.dense.weight" in W:
        pooled = np.tanh(W["pooler.dense.weight"] @ hidden[0] + W["pooler.dense.bias"])
    return hidden, pooled


def make_cases(m):
    g = torch.Generator().manual_seed(m["seed"] + 7)
    cases = []
    for n, (T, first_b) in enumerate(m["cases"]):
        ids = torch.randint(1, m["vocab"], (T,), generator=g)
        if T >= 3 and n == 0:
            ids[1] = 0
            ids[2] = m["vocab"] - 1
        types = torch.zeros(T, dtype=torch.int64)
        if first_b is not None:
            types[first_b:] = 1
        if m["type_vocab"] > 2 and T > 2:
            types[-1] = m["type_vocab"] - 1
        cases.append((ids.to(torch.int64), types))
    return cases


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def build(out_root, m):
    d = os.path.join(out_root, m["name"])
    os.makedirs(d, exist_ok=True)
    stored, extra = make_weights(m)
    tensors = {file_name(m, k): v for k, v in stored.items()}
    tensors.update({extra_file_name(m, k): v for k, v in extra.items()})
    path = os.path.join(d, "model.safetensors")
    write_safetensors(path, tensors)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(dump_json(make_config(m)))

    back = read_safetensors(path)
    if sorted(back) != sorted(tensors):
        fail("%s: tensor names read back differ" % m["name"])
    for k, v in tensors.items():
        if not np.array_equal(back[k], v.to(torch.float64).numpy()):
            fail("%s: %s differs when read back" % (m["name"], k))
    w = {k: v.to(torch.float64) for k, v in stored.items()}
    w_back = {k: torch.from_numpy(back[file_name(m, k)]) for k in stored}

    cases = make_cases(m)
    hid_rows, pooled_rows, lines = [], [], []
    for ids, types in cases:
        h, p = forward(m, w, ids[None], types[None])
        nh, npool = naive_forward(m, w_back, ids.tolist(), types.tolist())
        if max_diff(h[0].numpy(), nh) > 1e-10:
            fail("%s: naive forward differs by %g" % (m["name"], max_diff(h[0].numpy(), nh)))
        if p is not None and max_diff(p[0].numpy(), npool) > 1e-10:
            fail("%s: naive pooled output differs" % m["name"])
        for alt in (dict(gelu=gelu_tanh), dict(post_ln=False), dict(use_pos=False)) + \
                ((dict(use_types=False),) if int(types.max()) > 0 else ()):
            ha, _ = forward(m, w, ids[None], types[None], **alt)
            if max_diff(ha, h) < 1e-6:
                fail("%s: %s does not change the output" % (m["name"], alt))
        hid_rows.append(h[0].numpy())
        if p is not None:
            pooled_rows.append(p[0].numpy())
        lines.append("ids=%s types=%s" % (",".join(map(str, ids.tolist())), ",".join(map(str, types.tolist()))))

    # the right-padded batch with transformers' additive mask
    Tm = max(len(i) for i, _ in cases)
    B = len(cases)
    bids = torch.zeros(B, Tm, dtype=torch.int64)
    btypes = torch.zeros(B, Tm, dtype=torch.int64)
    mask = torch.zeros(B, Tm, dtype=torch.int64)
    for b, (ids, types) in enumerate(cases):
        bids[b, :len(ids)] = ids
        btypes[b, :len(ids)] = types
        mask[b, :len(ids)] = 1
    bh, bp = forward(m, w, bids, btypes, mask)
    unmasked, _ = forward(m, w, bids, btypes, None)
    for b, (ids, _) in enumerate(cases):
        if max_diff(bh[b, :len(ids)].numpy(), hid_rows[b]) > 1e-12:
            fail("%s: padded batch row %d differs" % (m["name"], b))
        if bp is not None and max_diff(bp[b].numpy(), pooled_rows[b]) > 1e-12:
            fail("%s: padded batch pooled %d differs" % (m["name"], b))
    if max_diff(unmasked, bh) < 1e-6:
        fail("%s: the mask does not change the padded batch" % m["name"])

    with open(os.path.join(d, "cases.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(d, "hidden.f64"), "wb") as f:
        f.write(np.concatenate(hid_rows).astype("<f8").tobytes())
    if pooled_rows:
        with open(os.path.join(d, "pooled.f64"), "wb") as f:
            f.write(np.stack(pooled_rows).astype("<f8").tobytes())
    elif os.path.exists(os.path.join(d, "pooled.f64")):
        os.remove(os.path.join(d, "pooled.f64"))
    print("%s: %d cases, %d tensors" % (m["name"], len(cases), len(tensors)))


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_reference_bert.py OUT_DIR")
    torch.set_grad_enabled(False)
    for m in MODELS:
        build(sys.argv[1], m)


if __name__ == "__main__":
    main()
