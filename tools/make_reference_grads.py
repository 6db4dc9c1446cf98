#!/usr/bin/python3
"""make_reference_grads.py - golden losses and gradients for preft's training.

What it is
    The independent PyTorch (float64, autograd) reference for preft's
    backward pass. For each case it writes the trained object (a tiny
    Hugging Face model directory, or an adapter directory for one of the
    models of make_reference_models.py), a batch of two sequences with an SFT
    loss mask, and for each adapter mode the loss and the gradient of every
    trainable tensor. The C tests (tests/unit/test_train_grads.c) read these
    files; they never need Python.

How to run
    /usr/bin/python3 tools/make_reference_grads.py tests/data/grads

    (needs tests/data/models from make_reference_models.py; Debian's python3
    with python3-torch 1.13 and numpy). Deterministic.

Files per case directory <out>/<case>/
    model/ (full-model cases)   config.json + model.safetensors (F32)
    adapter/ (adapter cases)    a PEFT LoRA or preft ReFT directory (F32)
    golden.json  {"base": model dir under tests/data/models (adapter cases),
                  "seqs": [{"ids": [...], "prompt_len": n}, ...],
                  "tensors": [{"name", "shape"}, ...]   order in the .f64 files
                  "modes": {"all"|"prefill": {"loss": x, "grads": file}}}
    grads_<mode>.f64  raw little-endian float64, the tensors concatenated

Loss (the trainer's definition)
    Row t of a sequence predicts token t+1. A row counts iff token t+1 is a
    completion token (t+1 >= prompt_len). loss = sum of the counted rows'
    cross-entropies (natural log) / number of counted rows, over the batch.

Adapter flags (preft_adapter_row_flag's rule, the prompt being the first
prompt_len tokens and the completion the "generated" rows)
    LoRA: "all" every row; "prefill" rows < prompt_len.
    ReFT "all" positions: slot shared on every row ("all") / prompt rows
    ("prefill"). ReFT "fA+lB": first min(A, n//2) and last min(B, n//2)
    prompt positions (n = prompt_len), slots first/last (or shared), in both
    modes.
"""

import json
import math
import os
import re
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_models as M  # noqa: E402
import make_reference_adapters as A  # noqa: E402

F64 = torch.float64

FULL_CASES = [
    {"name": "full-llama-tiny", "arch": "LlamaForCausalLM", "model_type": "llama", "dtype": "F32",
     "D": 32, "H": 4, "Hkv": 2, "Dh": 8, "explicit_head_dim": False, "F": 48, "L": 2, "V": 64, "T": 0,
     "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "max_position_embeddings": 128, "rope_scaling": None,
     "tied": False, "attention_bias": False, "shards": 1, "bos": 1, "eos": 2, "seed": 5005,
     "seqs": [(11, 4), (7, 1)]},
    {"name": "full-qwen2-tied-bias", "arch": "Qwen2ForCausalLM", "model_type": "qwen2", "dtype": "F32",
     "D": 32, "H": 4, "Hkv": 1, "Dh": 8, "explicit_head_dim": False, "F": 40, "L": 2, "V": 48, "T": 0,
     "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "max_position_embeddings": 128, "rope_scaling": None,
     "tied": True, "attention_bias": None, "shards": 1, "bos": 1, "eos": 2, "seed": 6006,
     "seqs": [(9, 3), (6, 2)]},
]

ADAPTER_SEQS = [(12, 7), (9, 5)]
ADAPTER_CASES = [
    {"name": "lora-all7-r4", "kind": "lora", "base": "llama-gqa-rope3", "r": 4, "alpha": 8, "seed": 31},
    {"name": "lora-qv-layer1-r2", "kind": "lora", "base": "llama-gqa-rope3", "r": 2, "alpha": 2, "seed": 32,
     "targets": ["q_proj", "v_proj"], "layers": [1]},
    {"name": "loreft-f2l2", "kind": "loreft", "base": "llama-gqa-rope3", "r": 4, "layers": [0, 1],
     "positions": "f2+l2", "share": False, "seed": 33},
    {"name": "loreft-all", "kind": "loreft", "base": "llama-gqa-rope3", "r": 3, "layers": [1],
     "positions": "all", "share": True, "seed": 34},
    {"name": "direft-f2l2-shared", "kind": "direft", "base": "llama-gqa-rope3", "r": 4, "layers": [0, 1],
     "positions": "f2+l2", "share": True, "seed": 35},
    {"name": "direft-all", "kind": "direft", "base": "llama-gqa-rope3", "r": 2, "layers": [0],
     "positions": "all", "share": True, "seed": 36},
]

ALL7 = A.ALL7


def fail(msg):
    raise SystemExit("make_reference_grads: FAILED: " + msg)


def make_seqs(spec, V, seed):
    g = torch.Generator().manual_seed(seed)
    return [{"ids": torch.randint(0, V, (T,), generator=g).tolist(), "prompt_len": n} for T, n in spec]


def loss_of(logits_per_seq, seqs):
    total, count = 0.0, 0
    for lg, s in zip(logits_per_seq, seqs):
        ids, n = s["ids"], s["prompt_len"]
        for t in range(len(ids) - 1):
            if t + 1 >= n:
                total = total + (torch.logsumexp(lg[t], 0) - lg[t, ids[t + 1]])
                count += 1
    return total / count


def write_case(d, meta, tensors_order, modes):
    """modes: {mode: (loss float, [grad tensors in tensors_order])}"""
    meta = dict(meta)
    meta["tensors"] = [{"name": n, "shape": list(s)} for n, s in tensors_order]
    meta["modes"] = {}
    for mode, (loss, grads) in sorted(modes.items()):
        fn = "grads_%s.f64" % mode
        with open(os.path.join(d, fn), "wb") as f:
            for gt in grads:
                f.write(gt.detach().numpy().astype("<f8").tobytes())
        meta["modes"][mode] = {"loss": loss, "grads": fn}
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(json.dumps(meta, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------
# Full model
# ---------------------------------------------------------------------------

def build_full(out, m):
    d = os.path.join(out, m["name"])
    A.fresh_dir(d)
    md = os.path.join(d, "model")
    os.makedirs(md)
    c = M.make_config(m)
    w = M.make_weights(m, c)
    with open(os.path.join(md, "config.json"), "w") as f:
        f.write(M.dump_json(c))
    M.write_safetensors(os.path.join(md, "model.safetensors"), w)
    back = M.read_safetensors(os.path.join(md, "model.safetensors"))
    w64 = {k: torch.tensor(v, dtype=F64, requires_grad=True) for k, v in back.items()}
    seqs = make_seqs(m["seqs"], m["V"], m["seed"] + 1)
    logits = [M.forward(c, w64, s["ids"]) for s in seqs]
    loss = loss_of(logits, seqs)
    loss.backward()
    order = sorted(w64)
    grads = [w64[k].grad for k in order]
    for k in order:
        if w64[k].grad is None or float(w64[k].grad.abs().max()) == 0.0:
            fail("%s: zero gradient for %s" % (m["name"], k))
    # finite-difference spot check of the reference itself
    with torch.no_grad():
        k = "model.layers.1.mlp.down_proj.weight"
        e = 1e-6
        w64[k][3, 5] += e
        lp = loss_of([M.forward(c, w64, s["ids"]) for s in seqs], seqs)
        w64[k][3, 5] -= 2 * e
        lm = loss_of([M.forward(c, w64, s["ids"]) for s in seqs], seqs)
        w64[k][3, 5] += e
        fd = float((lp - lm) / (2 * e))
        if abs(fd - float(w64[k].grad[3, 5])) > 1e-6 * max(1.0, abs(fd)):
            fail("%s: autograd and finite difference disagree" % m["name"])
    write_case(d, {"seqs": seqs}, [(k, w64[k].shape) for k in order], {"all": (float(loss), grads)})
    print("%s: loss %.6f, %d tensors" % (m["name"], float(loss), len(order)))


# ---------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------

def module_key(l, mod):
    return "model.layers.%d.%s.%s" % (l, "self_attn" if mod in ALL7[:4] else "mlp", mod)


def reft_slot_rows(case, seq, mode):
    n, T = seq["prompt_len"], len(seq["ids"])
    return A.reft_slot_positions(case["positions"], n, T, mode, case["share"])


def build_adapter(out, models_dir, case):
    d = os.path.join(out, case["name"])
    A.fresh_dir(d)
    ad = os.path.join(d, "adapter")
    os.makedirs(ad)
    base = A.load_base(models_dir, case["base"])
    c = base["c"]
    D = c["hidden_size"]
    L = c["num_hidden_layers"]
    g = torch.Generator().manual_seed(case["seed"])
    seqs = make_seqs(ADAPTER_SEQS, c["vocab_size"], case["seed"] + 100)
    tensors = {}
    r = case["r"]
    if case["kind"] == "lora":
        targets = case.get("targets", ALL7)
        layers = case.get("layers", list(range(L)))
        scale = case["alpha"] / r
        mods = {}
        for l in layers:
            for mod in targets:
                key = module_key(l, mod)
                o, i = A.linear_shape(c, key)
                tensors["base_model.model.%s.lora_A.weight" % key] = \
                    torch.randn((r, i), generator=g, dtype=torch.float32) / math.sqrt(i)
                tensors["base_model.model.%s.lora_B.weight" % key] = \
                    torch.randn((o, r), generator=g, dtype=torch.float32) * (0.3 / (scale * math.sqrt(r)))
                mods[key] = scale
        cfg = A.peft_config({"base": case["base"], "target_modules": targets, "r": r, "alpha": case["alpha"],
                             "layers_to_transform": case.get("layers")})
        with open(os.path.join(ad, "adapter_config.json"), "w") as f:
            f.write(A.peft_json(cfg))
        M.write_safetensors(os.path.join(ad, "adapter_model.safetensors"), tensors)
    else:
        rc = {"base": case["base"], "layers": case["layers"], "mode": "all", "positions": case["positions"],
              "r": r, "reft_type": case["kind"], "share_weights": case["share"]}
        rcase = dict(rc, share_weights=case["share"], gain_w=1.0, gain_b=0.5, gain_up=0.3, seed=case["seed"])
        tensors = A.make_reft_tensors(rcase, D)
        with open(os.path.join(ad, "reft_config.json"), "w") as f:
            f.write(json.dumps(A.reft_config(rcase), indent=2, sort_keys=True) + "\n")
        M.write_safetensors(os.path.join(ad, "reft_model.safetensors"), tensors)

    back = M.read_safetensors(os.path.join(ad, "adapter_model.safetensors" if case["kind"] == "lora"
                                           else "reft_model.safetensors"))
    order = sorted(back)
    modes = {}
    for mode in ("all", "prefill"):
        p = {k: torch.tensor(back[k], dtype=F64, requires_grad=True) for k in order}
        logits = []
        for s in seqs:
            T, n = len(s["ids"]), s["prompt_len"]
            if case["kind"] == "lora":
                flags = A.row_flags(T, n, mode)

                def lora(name, v, flags=flags):
                    if name not in mods:
                        return None
                    Am = p["base_model.model.%s.lora_A.weight" % name]
                    Bm = p["base_model.model.%s.lora_B.weight" % name]
                    return mods[name] * ((v @ Am.T) @ Bm.T) * flags[:, None]
                logits.append(M.forward(c, base["w64"], s["ids"], lora=lora))
            else:
                slots = reft_slot_rows(case, s, mode)
                masks = {}
                for S, pos in slots.items():
                    mk = torch.zeros(T, dtype=torch.bool)
                    mk[pos] = True
                    masks[S] = mk[:, None]

                def resid(l, x, masks=masks):
                    if l not in case["layers"]:
                        return x
                    outx = x
                    for S, mk in masks.items():
                        outx = torch.where(mk, A.reft_edit(case["kind"], p, l, S, x), outx)
                    return outx
                logits.append(M.forward(c, base["w64"], s["ids"], resid=resid))
        loss = loss_of(logits, seqs)
        loss.backward()
        grads = [p[k].grad if p[k].grad is not None else torch.zeros_like(p[k]) for k in order]
        modes[mode] = (float(loss), grads)
        nz = sum(1 for gt in grads if float(gt.abs().max()) > 0)
        print("%s [%s]: loss %.6f, %d/%d tensors with a nonzero gradient" % (case["name"], mode, float(loss), nz,
                                                                             len(order)))
        if nz == 0:
            fail("%s: all gradients zero" % case["name"])
    if case["kind"] == "lora" and np.allclose(modes["all"][0], modes["prefill"][0]):
        fail("%s: modes give the same loss" % case["name"])
    write_case(d, {"base": case["base"], "seqs": seqs}, [(k, back[k].shape) for k in order], modes)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: /usr/bin/python3 tools/make_reference_grads.py OUT_DIR\n")
        return 2
    torch.set_num_threads(1)
    out = sys.argv[1]
    models_dir = os.path.join(os.path.dirname(os.path.abspath(out)), "models")
    os.makedirs(out, exist_ok=True)
    for m in FULL_CASES:
        build_full(out, m)
    for case in ADAPTER_CASES:
        build_adapter(out, models_dir, case)
    total = 0
    for root, _, files in os.walk(out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("total %d bytes" % total)
    if total > 2 * 1024 * 1024:
        fail("gradient goldens larger than 2 MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
