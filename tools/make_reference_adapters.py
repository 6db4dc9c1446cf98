#!/usr/bin/python3
"""make_reference_adapters.py - LoRA and ReFT adapters plus golden logits.

What it is
    The independent PyTorch (float64) reference for preft's adapters. For
    each case it writes an adapter directory (a PEFT LoRA directory, or a
    preft ReFT directory, see docs/REFT_FORMAT.md) for one of the tiny base
    models of make_reference_models.py, and the logits of every position of
    ONE teacher-forced forward pass over the case's ids, once per adapter
    mode. It also writes bad-input fixtures (no goldens) with the substring
    each error message must contain. The C tests read these files; they
    never need Python.

How to run
    /usr/bin/python3 tools/make_reference_adapters.py tests/data/adapters

    (needs tests/data/models from make_reference_models.py; Debian's python3
    with python3-torch 1.13 and numpy; no peft/transformers/safetensors
    package: the semantics are written here and the safetensors writer and
    reader are make_reference_models.py's). Deterministic: same bytes on
    every run.

Files per case directory <out>/<case>/
    adapter_config.json + adapter_model.safetensors   (LoRA, as PEFT saves)
    reft_config.json + reft_model.safetensors          (ReFT, preft's format)
    golden.json     {"base": model dir under tests/data/models, "ids": [...],
                     "prompt_len": N, "goldens": {"all": "golden_all.f64",
                     "prefill": "golden_prefill.f64"}}
    golden_<mode>.f64  raw little-endian float64 [T, V], T = len(ids)
    golden_all_<t>.f64 (cases with "held_as"): mode "all" with the LoRA's A
                       and B rounded to t (bf16, f16) first, as
                       `preft serve --lora-dtype` holds an FP32 adapter

Modes (one per-row flag decides everything)
    Positions 0..N-1 are the prompt, N..T-1 generated tokens fed back.
    "all":     LoRA applies on every row; ReFT at its positions ("fA+lB":
               prompt positions only; "all": every row).
    "prefill": the adapter applies only on prompt rows (< N); later rows run
               the base weights but attend to the K/V that the prompt rows
               computed with the adapter. In one pass this is a row mask.

LoRA semantics (PEFT, peft/tuners/lora/layer.py Linear.forward)
    y = x W^T + b + scale * (x A^T) B^T on flagged rows; A = lora_A.weight
    [r, in], B = lora_B.weight [out, r]; scale = alpha / r, or alpha / sqrt(r)
    when use_rslora. Dropout is 0 at inference. Tensor names are
    base_model.model.<module>.lora_{A,B}.weight, <module> as in
    LlamaForCausalLM.named_modules(), e.g. model.layers.0.self_attn.q_proj.

Which modules a PEFT config targets (checked against PEFT's source,
peft/tuners/tuners_utils.py check_target_module_exists and
peft/tuners/lora/model.py _create_and_replace, PEFT 0.13 to 0.20; `key` is a
module name from the base model's named_modules(), "model.layers.1.mlp.up_proj")
    target_modules a str:   re.fullmatch(target_modules, key).
                            layers_to_transform / layers_pattern must then be
                            null: LoraConfig.__post_init__ raises
                            "`layers_to_transform` cannot be used when
                            `target_modules` is a str." (fixture
                            bad/lora-regex-layers).
    target_modules a list:  key in target_modules (exact full name: this
                            branch ignores layers_to_transform), else
                            any(key.endswith("." + t) for t in target_modules);
                            then, if layers_to_transform is an int or a
                            non-empty list and the name matched: the layer
                            index is group 1 of
                              re.match(r".*?\.[^.]*\.(\d+)\.", key)
                            when layers_pattern is null/empty, else of the
                            first of re.match(rf".*?\.{p}\.(\d+)\.", key) over
                            p in layers_pattern (a str is a one-item list);
                            no index -> not targeted; targeted iff index ==
                            layers_to_transform (int) or index in it (list).
                            (PEFT < 0.20 used a greedy ".*" here; same
                            answer for names with one number.)
    a non-Linear module matching is an error in PEFT; none does here. No
    match at all: PEFT raises "Target modules ... not found in the base
    model" (fixture bad/lora-no-match). exclude_modules (PEFT >= 0.14) and
    modules_to_save (excluded from targeting in recent PEFT) are not used
    by any case here.
    rank_pattern / alpha_pattern: for each dict separately, the first
        pattern key p (in the dict's order) with
            re.match(rf"(.*\.)?({p})$", key)
        gives r = rank_pattern[p] (resp. alpha = alpha_pattern[p]); no match
        -> config r (resp. lora_alpha). This is PEFT >= 0.15 (get_pattern_key).
        Older rules, which agree on every name in these cases (checked):
        PEFT 0.14 used re.match(rf".*\.{p}$", key) (so a key must follow a
        dot: a full module name never matches); PEFT <= 0.13 searched the
        rank_pattern keys then the alpha_pattern keys with that regex and
        used the FIRST matching key for both lookups, so a module matching
        a rank key and a different alpha key lost its alpha. The stored A/B
        have the per-module rank; scale uses the per-module r and alpha.

ReFT semantics (preft's format, docs/REFT_FORMAT.md)
    On the residual stream h = output of decoder layer l (after its MLP
    residual add; for the last layer: before the final norm), at the flagged
    rows of the intervened positions:
        LoReFT: h <- h + R^T (W h + b - R h)   R, W [r, D] (R rows
                orthonormal up to rounding), b [r]
        DiReFT: h <- h + W2^T (W1 h + b)       W1, W2 [r, D], b [r]
    positions "fA+lB", n = prompt_len: first min(A, n//2) prompt positions
    use slot "first", the last min(B, n//2) slot "last" (pyreft's
    get_intervention_locations; the two never overlap); share_weights: both
    use "shared". In both modes; generated positions never. positions
    "all": slot "shared", every prompt row (prefill) / every row (all).

Self-checks (the script fails if any is violated)
    - the base logits recomputed here equal the model's golden_logits.f64;
    - every adapter file is re-read with the independent reader, and the
      goldens are recomputed from the re-read files by the naive
      loop-per-position forward of make_reference_models.py, with LoRA
      applied as MERGED weights (W + scale B A on adapted positions) and
      ReFT written with numpy per position (agreement to 1e-11);
    - every golden differs from the base logits by >= 5% (max abs diff /
      max abs base logit);
    - prefill and all goldens: prompt rows equal; generated rows differ for
      LoRA and ReFT "all" positions, and are bit-identical for ReFT "fA+lB";
    - lora-regex-layers-f16 and lora-layers-list-f16 (same tensors, layer
      chosen by the regex vs by layers_to_transform) give identical goldens.
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

F64 = torch.float64
PEFT_VERSION_FIELDS = "0.13.2"  # the adapter_config.json field set written
PROJS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
         "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def fail(msg):
    raise SystemExit("make_reference_adapters: FAILED: " + msg)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

# frac: target size of each LoRA delta relative to the base projection
# output (B is scaled by frac / (scale * sqrt(r))).
LORA_CASES = [
    {"name": "lora-qv-r4", "base": "llama-gqa-rope3", "T": 24, "N": 12,
     "target_modules": ["q_proj", "v_proj"], "r": 4, "alpha": 8,
     "dtype": "F32", "frac": 0.5, "seed": 11},
    {"name": "lora-all7-rslora-patterns", "base": "llama-gqa-rope3", "T": 24, "N": 12,
     "target_modules": ALL7, "r": 8, "alpha": 16, "use_rslora": True,
     "rank_pattern": {"down_proj": 2}, "alpha_pattern": {"layers.1.mlp.up_proj": 4},
     "dtype": "F32", "frac": 0.25, "seed": 12, "held_as": ["BF16", "F16"]},
    # PEFT forbids layers_to_transform with a regex target_modules, so the
    # regex names the layer itself; the next case picks the same modules
    # with a list + layers_to_transform and shares the tensors (same seed).
    {"name": "lora-regex-layers-f16", "base": "llama-headdim-f16", "T": 16, "N": 8,
     "target_modules": r".*\.layers\.1\.(self_attn\.(q_proj|v_proj|o_proj)|mlp\.gate_proj)",
     "r": 4, "alpha": 4, "dtype": "F16", "frac": 0.6, "seed": 13},
    {"name": "lora-layers-list-f16", "base": "llama-headdim-f16", "T": 16, "N": 8,
     "target_modules": ["q_proj", "v_proj", "o_proj", "gate_proj"], "layers_to_transform": [1],
     "r": 4, "alpha": 4, "dtype": "F16", "frac": 0.6, "seed": 13},
    {"name": "lora-qwen2-bf16", "base": "qwen2-bias-tied-bf16", "T": 20, "N": 10,
     "target_modules": ["k_proj", "o_proj", "up_proj", "down_proj"], "r": 16, "alpha": 32,
     "dtype": "BF16", "frac": 0.2, "seed": 14, "extra": {"preft_mode": "prefill"}},
]

# gain_w / gain_b: std of W (times 1/sqrt(D)) / of b; gain_up: std of W2.
REFT_CASES = [
    {"name": "loreft-f3l3", "base": "llama-gqa-rope3", "T": 24, "N": 12,
     "reft_type": "loreft", "r": 4, "layers": [0, 1], "positions": "f3+l3",
     "share_weights": False, "mode": "prefill", "gain_w": 1.0, "gain_b": 1.0, "seed": 21},
    {"name": "loreft-all-shared", "base": "mistral-long", "T": 48, "N": 30,
     "reft_type": "loreft", "r": 2, "layers": [1], "positions": "all",
     "share_weights": True, "mode": "all", "gain_w": 1.0, "gain_b": 1.0, "seed": 22},
    {"name": "direft-f5l5-shared", "base": "llama-gqa-rope3", "T": 24, "N": 12,
     "reft_type": "direft", "r": 4, "layers": [1], "positions": "f5+l5",
     "share_weights": True, "mode": "prefill", "gain_w": 0.5, "gain_b": 0.5,
     "gain_up": 0.5, "seed": 23},
]


# ---------------------------------------------------------------------------
# Base models
# ---------------------------------------------------------------------------

def load_base(models_dir, name):
    d = os.path.join(models_dir, name)
    c = json.load(open(os.path.join(d, "config.json")))
    w = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            w.update(M.read_safetensors(os.path.join(d, f)))
    ids = [int(s) for s in open(os.path.join(d, "golden_ids.txt")).read().strip().split(",")]
    gold = np.fromfile(os.path.join(d, "golden_logits.f64"), dtype="<f8").reshape(len(ids), c["vocab_size"])
    return {"name": name, "c": c, "w": w, "w64": {k: torch.from_numpy(v) for k, v in w.items()},
            "ids": ids, "gold": gold}


def module_names(c):
    """The names LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM
    .named_modules() yields (transformers 4.46), which PEFT matches."""
    out = ["", "model", "model.embed_tokens", "model.layers"]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d" % l
        out += [p, p + ".self_attn"] + [p + "." + s for s in PROJS[:4]]
        out += [p + ".self_attn.rotary_emb", p + ".mlp"] + [p + "." + s for s in PROJS[4:]]
        out += [p + ".mlp.act_fn", p + ".input_layernorm", p + ".post_attention_layernorm"]
    return out + ["model.norm", "model.rotary_emb", "lm_head"]


def linear_shape(c, key):
    """(out, in) of the projection `key`."""
    D, F = c["hidden_size"], c["intermediate_size"]
    Dh = M.cfg_head_dim(c)
    H, Hkv = c["num_attention_heads"], c["num_key_value_heads"]
    kind = key.rsplit(".", 1)[1]
    return {"q_proj": (H * Dh, D), "k_proj": (Hkv * Dh, D), "v_proj": (Hkv * Dh, D),
            "o_proj": (D, H * Dh), "gate_proj": (F, D), "up_proj": (F, D),
            "down_proj": (D, F)}[kind]


# ---------------------------------------------------------------------------
# PEFT matching rules (see the docstring)
# ---------------------------------------------------------------------------

def peft_target_matches(cfg, key):
    tm = cfg["target_modules"]
    if isinstance(tm, str):
        return re.fullmatch(tm, key) is not None
    if key in tm:
        return True
    found = any(key.endswith("." + t) for t in tm)
    lt, lp = cfg.get("layers_to_transform"), cfg.get("layers_pattern")
    using = lt is not None and (len(lt) != 0 if isinstance(lt, list) else True)
    if using and found:
        m = None
        if lp is None or len(lp) == 0:
            m = re.match(r".*?\.[^.]*\.(\d+)\.", key)
        else:
            for p in ([lp] if isinstance(lp, str) else lp):
                m = re.match(r".*?\.%s\.(\d+)\." % p, key)
                if m is not None:
                    break
        if m is None:
            found = False
        else:
            idx = int(m.group(1))
            found = idx == lt if isinstance(lt, int) else idx in lt
    return found


def peft_pattern_key(patterns, key):
    """PEFT >= 0.15 get_pattern_key."""
    for p in patterns:
        if re.match(r"(.*\.)?(%s)$" % p, key):
            return p
    return key


def peft_rank_alpha(cfg, key):
    rp, ap = cfg["rank_pattern"], cfg["alpha_pattern"]
    r = rp.get(peft_pattern_key(rp.keys(), key), cfg["r"])
    a = ap.get(peft_pattern_key(ap.keys(), key), cfg["lora_alpha"])
    # the older rules must agree, so the fixture means one thing everywhere
    def old(patterns):
        return next((p for p in patterns if re.match(r".*\.%s$" % p, key)), key)
    r14 = rp.get(old(rp.keys()), cfg["r"])
    a14 = ap.get(old(ap.keys()), cfg["lora_alpha"])
    first = old(list(rp.keys()) + list(ap.keys()))
    r13, a13 = rp.get(first, cfg["r"]), ap.get(first, cfg["lora_alpha"])
    if not (r == r14 == r13 and a == a14 == a13):
        fail("%s: PEFT pattern rules of different versions disagree" % key)
    return r, a


def peft_targets(cfg, c):
    """{module name: (r, alpha, scale)} for the base config c."""
    if isinstance(cfg["target_modules"], str) and cfg.get("layers_to_transform") is not None:
        fail("layers_to_transform with a regex target_modules (PEFT raises)")
    out = {}
    for key in module_names(c):
        if not peft_target_matches(cfg, key):
            continue
        if not any(key.endswith("." + s) for s in PROJS):
            fail("target %s is not a supported linear" % key)
        r, a = peft_rank_alpha(cfg, key)
        scale = a / math.sqrt(r) if cfg["use_rslora"] else a / r
        out[key] = (r, a, scale)
    if not out:
        fail("target_modules matched no module")
    return out


def peft_config(case):
    """adapter_config.json as PEFT 0.13 save_pretrained writes it."""
    tm = case["target_modules"]
    cfg = {
        "alpha_pattern": case.get("alpha_pattern", {}),
        "auto_mapping": None,
        "base_model_name_or_path": case["base"],
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": case.get("layers_to_transform"),
        "loftq_config": {},
        "lora_alpha": case["alpha"],
        "lora_dropout": 0.0,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": case["r"],
        "rank_pattern": case.get("rank_pattern", {}),
        "revision": None,
        "target_modules": tm if isinstance(tm, str) else list(tm),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": case.get("use_rslora", False),
    }
    cfg.update(case.get("extra", {}))
    return cfg


def peft_json(cfg):
    # PeftConfigMixin.save_pretrained: indent 2, sorted keys, no newline
    return json.dumps(cfg, indent=2, sort_keys=True)


# ---------------------------------------------------------------------------
# The reference: one teacher-forced forward with a per-row flag
# ---------------------------------------------------------------------------

def row_flags(T, N, mode):
    f = torch.zeros(T, dtype=F64)
    f[: (T if mode == "all" else N)] = 1.0
    return f


def lora_forward(base, ids, mods, lw, flags):
    """mods: {module: (r, alpha, scale)}; lw: {tensor name: float64 tensor}."""
    def lora(name, v):
        if name not in mods:
            return None
        A = lw["base_model.model.%s.lora_A.weight" % name]
        B = lw["base_model.model.%s.lora_B.weight" % name]
        return mods[name][2] * ((v @ A.T) @ B.T) * flags[:, None]
    return M.forward(base["c"], base["w64"], ids, lora=lora)


def reft_slot_positions(positions, n, T, mode, share):
    """{slot: sorted positions} in this mode."""
    if positions == "all":
        return {"shared": list(range(T if mode == "all" else n))}
    m = re.fullmatch(r"f(\d+)\+l(\d+)", positions)
    if not m:
        fail("bad positions %r" % positions)
    a, b = min(int(m.group(1)), n // 2), min(int(m.group(2)), n // 2)
    first, last = list(range(a)), list(range(n - b, n))
    if set(first) & set(last):
        fail("first and last positions overlap")
    if share:
        return {"shared": first + last}
    return {"first": first, "last": last}


def reft_edit(kind, rw, l, S, h):
    """h [rows, D] -> edited h (torch, float64); rw: {tensor name: tensor}."""
    p = "layers.%d.%s." % (l, S)
    if kind == "loreft":
        R, W, b = rw[p + "rotate"], rw[p + "weight"], rw[p + "bias"]
        return h + (h @ W.T + b - h @ R.T) @ R
    W1, b, W2 = rw[p + "proj_down"], rw[p + "bias"], rw[p + "proj_up"]
    return h + (h @ W1.T + b) @ W2


def reft_forward(base, ids, case, tensors, mode):
    slots = reft_slot_positions(case["positions"], case["N"], len(ids), mode, case["share_weights"])

    T = len(ids)
    masks = {}
    for S, pos in slots.items():
        m = torch.zeros(T, dtype=torch.bool)
        m[pos] = True
        masks[S] = m[:, None]

    def resid(l, x):
        # every slot's edit is computed on all rows and then selected, so a
        # row's arithmetic never depends on which other rows are edited
        # (slots are disjoint; each edit reads the layer output)
        if l not in case["layers"]:
            return x
        out = x
        for S, m in masks.items():
            out = torch.where(m, reft_edit(case["reft_type"], tensors, l, S, x), out)
        return out
    return M.forward(base["c"], base["w64"], ids, resid=resid), slots


# ---------------------------------------------------------------------------
# Writing and checking
# ---------------------------------------------------------------------------

def rel_change(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def write_goldens(d, base, ids, N, goldens):
    names = {}
    for mode in sorted(goldens):
        fn = "golden_%s.f64" % mode
        with open(os.path.join(d, fn), "wb") as f:
            f.write(goldens[mode].astype("<f8").tobytes())
        names[mode] = fn
    meta = {"base": base["name"], "ids": ids, "prompt_len": N, "goldens": names}
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(json.dumps(meta, sort_keys=True) + "\n")


def check_goldens(name, base, ids, N, goldens, expect_gen_equal):
    T = len(ids)
    ref = M.forward(base["c"], base["w64"], ids).numpy()
    if rel_change(ref, base["gold"][:T]) > 1e-12:
        fail("%s: base forward differs from the model's golden logits" % name)
    for mode, g in sorted(goldens.items()):
        rc = rel_change(g, ref)
        gen = rel_change(g[N:], ref[N:])
        print("    %-7s vs base: max rel change %.3f (prompt rows %.3f, generated rows %.3f)"
              % (mode, rc, rel_change(g[:N], ref[:N]), gen))
        if rc < 0.05:
            fail("%s: %s golden changes the logits by only %.3f" % (name, mode, rc))
    a, p = goldens["all"], goldens["prefill"]
    if not np.array_equal(a[:N], p[:N]):
        fail("%s: prompt rows of prefill and all differ" % name)
    same = np.array_equal(a[N:], p[N:])
    if expect_gen_equal and not same:
        fail("%s: generated rows of prefill and all should be identical" % name)
    if not expect_gen_equal and rel_change(a[N:], p[N:]) < 0.01:
        fail("%s: generated rows of prefill and all should differ" % name)
    print("    prefill vs all: prompt rows identical; generated rows %s (max rel diff %.3f)"
          % ("identical" if same else "differ", rel_change(a[N:], p[N:])))


def fresh_dir(d):
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)


def make_lora(out, base, case):
    name = case["name"]
    d = os.path.join(out, name)
    fresh_dir(d)
    c = base["c"]
    cfg = peft_config(case)
    mods = peft_targets(cfg, c)
    dt = M.TORCH_DTYPE[case["dtype"]]
    g = torch.Generator().manual_seed(case["seed"])
    tensors = {}
    # draw per (layer, projection) in a fixed order, so that two cases that
    # select the same modules with the same seed get the same tensors
    for key in sorted(mods):
        r, a, scale = mods[key]
        o, i = linear_shape(c, key)
        A = torch.randn((r, i), generator=g, dtype=torch.float32) / math.sqrt(i)
        B = torch.randn((o, r), generator=g, dtype=torch.float32) * (case["frac"] / (scale * math.sqrt(r)))
        tensors["base_model.model.%s.lora_A.weight" % key] = A.to(dt)
        tensors["base_model.model.%s.lora_B.weight" % key] = B.to(dt)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        f.write(peft_json(cfg))
    M.write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors)

    print("%s: base %s, LoRA %s, %d modules, T=%d prompt_len=%d" % (
        name, base["name"], case["dtype"], len(mods), case["T"], case["N"]))
    for key in sorted(mods):
        r, a, scale = mods[key]
        print("    %-32s r=%-2d alpha=%-2g scale=%.6g" % (key, r, a, scale))

    ids = base["ids"][:case["T"]]
    T, N = len(ids), case["N"]
    lw = {k: v.to(F64) for k, v in tensors.items()}
    goldens = {m: lora_forward(base, ids, mods, lw, row_flags(T, N, m)).numpy()
               for m in ("all", "prefill")}
    # "held_as": the same files with A and B rounded to a 16-bit type
    # (Tensor.to: nearest, ties to even), as `serve --lora-dtype` holds them
    held = {}
    for hdt in case.get("held_as", []):
        lr = {k: v.to(M.TORCH_DTYPE[hdt]).to(F64) for k, v in tensors.items()}
        held["all_" + hdt.lower()] = lora_forward(base, ids, mods, lr, row_flags(T, N, "all")).numpy()
        print("    held as %s: all-mode logits move by %.3g (max rel) from the files' %s"
              % (hdt, rel_change(held["all_" + hdt.lower()], goldens["all"]), case["dtype"]))
    write_goldens(d, base, ids, N, {**goldens, **held})

    # --- independent recomputation from the files: merged weights per row
    back = M.read_safetensors(os.path.join(d, "adapter_model.safetensors"))
    if set(back) != set(tensors):
        fail("%s: tensor names read back differ" % name)
    cfg_back = json.load(open(os.path.join(d, "adapter_config.json")))
    mods_back = peft_targets(cfg_back, c)
    if mods_back != mods:
        fail("%s: config read back targets other modules" % name)
    merged = dict(base["w"])
    for key, (r, a, scale) in mods_back.items():
        A = back["base_model.model.%s.lora_A.weight" % key]
        B = back["base_model.model.%s.lora_B.weight" % key]
        if A.shape != (r, linear_shape(c, key)[1]) or B.shape != (linear_shape(c, key)[0], r):
            fail("%s: %s A/B shapes do not follow the per-module rank" % (name, key))
        merged[key + ".weight"] = base["w"][key + ".weight"] + scale * (B @ A)
    for mode, gl in goldens.items():
        def wpos(t, mode=mode):
            return merged if (mode == "all" or t < N) else base["w"]
        naive = M.naive_forward(c, base["w"], ids, wpos=wpos)
        err = rel_change(naive, gl)
        if err > 1e-11:
            fail("%s: merged-weight naive forward differs (%s, rel %.3g)" % (name, mode, err))
    check_goldens(name, base, ids, N, goldens, expect_gen_equal=False)
    ref = M.forward(c, base["w64"], ids).numpy()
    if rel_change(goldens["prefill"][N:], ref[N:]) < 0.01:
        fail("%s: prefill generated rows do not see the adapted prompt K/V" % name)
    return goldens


def reft_config(case):
    return {"base_model_name_or_path": case["base"], "layers": case["layers"],
            "mode": case["mode"], "peft_type": "REFT", "positions": case["positions"],
            "r": case["r"], "reft_type": case["reft_type"],
            "share_weights": case["share_weights"]}


def reft_slots(case):
    if case["positions"] == "all" or case["share_weights"]:
        return ["shared"]
    return ["first", "last"]


def make_reft_tensors(case, D):
    g = torch.Generator().manual_seed(case["seed"])
    r = case["r"]
    t = {}
    for l in case["layers"]:
        for S in reft_slots(case):
            p = "layers.%d.%s." % (l, S)
            if case["reft_type"] == "loreft":
                q, _ = torch.linalg.qr(torch.randn((D, r), generator=g, dtype=F64))
                t[p + "rotate"] = q.T.contiguous().to(torch.float32)
                t[p + "weight"] = (torch.randn((r, D), generator=g, dtype=torch.float32)
                                   * (case["gain_w"] / math.sqrt(D)))
                t[p + "bias"] = torch.randn((r,), generator=g, dtype=torch.float32) * case["gain_b"]
            else:
                t[p + "proj_down"] = (torch.randn((r, D), generator=g, dtype=torch.float32)
                                      * (case["gain_w"] / math.sqrt(D)))
                t[p + "bias"] = torch.randn((r,), generator=g, dtype=torch.float32) * case["gain_b"]
                t[p + "proj_up"] = torch.randn((r, D), generator=g, dtype=torch.float32) * case["gain_up"]
    return t


def naive_reft_edit(kind, back, l, S, x):
    """numpy, one position: the same formulas, written as projections."""
    p = "layers.%d.%s." % (l, S)
    if kind == "loreft":
        R, W, b = back[p + "rotate"], back[p + "weight"], back[p + "bias"]
        return x + R.T.dot(W.dot(x) + b) - R.T.dot(R.dot(x))
    return x + back[p + "proj_up"].T.dot(back[p + "proj_down"].dot(x) + back[p + "bias"])


def make_reft(out, base, case):
    name = case["name"]
    d = os.path.join(out, name)
    fresh_dir(d)
    c = base["c"]
    D = c["hidden_size"]
    if any(l < 0 or l >= c["num_hidden_layers"] for l in case["layers"]):
        fail("%s: layer out of range" % name)
    tensors = make_reft_tensors(case, D)
    with open(os.path.join(d, "reft_config.json"), "w") as f:
        f.write(M.dump_json(reft_config(case)))
    M.write_safetensors(os.path.join(d, "reft_model.safetensors"), tensors)

    ids = base["ids"][:case["T"]]
    T, N = len(ids), case["N"]
    tw = {k: v.to(F64) for k, v in tensors.items()}
    goldens, slots = {}, {}
    for mode in ("all", "prefill"):
        lg, slots[mode] = reft_forward(base, ids, case, tw, mode)
        goldens[mode] = lg.numpy()
    print("%s: base %s, %s r=%d layers %s positions %s share_weights %s mode %s, T=%d prompt_len=%d"
          % (name, base["name"], case["reft_type"], case["r"], case["layers"], case["positions"],
             case["share_weights"], case["mode"], T, N))
    for mode in ("prefill", "all"):
        print("    %-7s positions: %s" % (mode, ", ".join(
            "%s %s" % (S, compact(p)) for S, p in sorted(slots[mode].items()))))
    if case["reft_type"] == "loreft":
        for l in case["layers"]:
            for S in reft_slots(case):
                R = tw["layers.%d.%s.rotate" % (l, S)]
                e = float((R @ R.T - torch.eye(case["r"], dtype=F64)).abs().max())
                if e > 1e-6:
                    fail("%s: rotate rows not orthonormal (%.3g)" % (name, e))
    write_goldens(d, base, ids, N, goldens)

    back = M.read_safetensors(os.path.join(d, "reft_model.safetensors"))
    if set(back) != set(tensors):
        fail("%s: tensor names read back differ" % name)
    cb = json.load(open(os.path.join(d, "reft_config.json")))
    for mode, gl in goldens.items():
        where = {}
        for S, pos in reft_slot_positions(cb["positions"], N, T, mode, cb["share_weights"]).items():
            for t in pos:
                where[t] = S

        def edit(l, t, x, where=where):
            if l in cb["layers"] and t in where:
                return naive_reft_edit(cb["reft_type"], back, l, where[t], x)
            return x
        naive = M.naive_forward(c, base["w"], ids, edit=edit)
        err = rel_change(naive, gl)
        if err > 1e-11:
            fail("%s: naive forward differs (%s, rel %.3g)" % (name, mode, err))
    check_goldens(name, base, ids, N, goldens, expect_gen_equal=case["positions"] != "all")
    last = c["num_hidden_layers"] - 1
    if case["layers"] == [last]:
        # an edit after the last layer reaches no other row: in prefill mode
        # the generated rows are exactly the base model's
        ref = M.forward(c, base["w64"], ids).numpy()
        if not np.array_equal(goldens["prefill"][N:], ref[N:]):
            fail("%s: generated rows should equal the base model" % name)
        print("    intervention only after the last layer: prefill generated rows == base exactly")
    return goldens


def compact(pos):
    if not pos:
        return "[]"
    runs, s = [], pos[0]
    for a, b in zip(pos, pos[1:] + [None]):
        if b != a + 1:
            runs.append(str(s) if s == a else "%d-%d" % (s, a))
            s = b
    return "[" + ",".join(runs) + "]"


# ---------------------------------------------------------------------------
# Bad-input fixtures (all for the base llama-gqa-rope3: D=128, q/o 128x128,
# k/v 32x128, L=2, V=256)
# ---------------------------------------------------------------------------

def make_bad(out):
    d0 = os.path.join(out, "bad")
    fresh_dir(d0)
    g = torch.Generator().manual_seed(99)
    base = "llama-gqa-rope3"

    def rnd(*shape, dtype=torch.float32):
        return (torch.randn(shape, generator=g, dtype=torch.float32) * 0.05).to(dtype)

    def lora_dir(name, tensors, **over):
        case = {"base": base, "target_modules": ["q_proj"], "r": 4, "alpha": 8}
        extra = {k: over.pop(k) for k in list(over) if k not in case}
        case.update(over)
        cfg = peft_config(case)
        cfg.update(extra)
        d = os.path.join(d0, name)
        os.makedirs(d)
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            f.write(peft_json(cfg))
        M.write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors)

    def q_lora(r=4, in_dim=128, layers=(0, 1), skip=()):
        t = {}
        for l in layers:
            p = "base_model.model.model.layers.%d.self_attn.q_proj." % l
            t[p + "lora_A.weight"] = rnd(r, in_dim if l == 0 else 128)
            t[p + "lora_B.weight"] = rnd(128, r)
        for k in skip:
            del t[k]
        return t

    expected = {}
    lora_dir("lora-wrong-shape", q_lora(in_dim=129))
    expected["lora-wrong-shape"] = "layers.0.self_attn.q_proj.lora_A"
    lora_dir("lora-rank0", {}, r=0)
    expected["lora-rank0"] = "rank"
    t = q_lora()
    for l in (0, 1):
        t["base_model.model.model.layers.%d.self_attn.q_proj.lora_magnitude_vector" % l] = rnd(128) + 1.0
    lora_dir("lora-dora", t, use_dora=True)
    expected["lora-dora"] = "use_dora"
    t = q_lora()
    t["base_model.model.lm_head.weight"] = rnd(256, 128, dtype=torch.float16)
    lora_dir("lora-modules-to-save", t, modules_to_save=["lm_head"])
    expected["lora-modules-to-save"] = "modules_to_save"
    lora_dir("lora-embed", {"base_model.model.model.embed_tokens.lora_embedding_A": rnd(4, 256),
                            "base_model.model.model.embed_tokens.lora_embedding_B": rnd(128, 4)},
             target_modules=["embed_tokens"])
    expected["lora-embed"] = "embed_tokens"
    lora_dir("lora-no-match", {}, target_modules=["nonexistent_proj"])
    expected["lora-no-match"] = "matched no module"
    lora_dir("lora-missing-tensor",
             q_lora(skip=["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]))
    expected["lora-missing-tensor"] = "layers.0.self_attn.q_proj.lora_B"
    lora_dir("lora-rank-mismatch", q_lora(r=8))  # config r=4, tensors rank 8
    expected["lora-rank-mismatch"] = "q_proj.lora_"
    lora_dir("lora-regex-layers", q_lora(layers=(1,)),
             target_modules=r".*\.(q_proj|o_proj|gate_proj)", layers_to_transform=[1])
    expected["lora-regex-layers"] = "layers_to_transform"

    def reft_dir(name, cfg_over, drop=(), shape_over=None):
        case = {"base": base, "reft_type": "loreft", "r": 4, "layers": [0, 1],
                "positions": "f3+l3", "share_weights": False, "mode": "prefill"}
        case.update(cfg_over)
        cfg = reft_config(case)
        t = {}
        for l in case["layers"]:
            for S in ("first", "last"):
                p = "layers.%d.%s." % (l, S)
                t[p + "rotate"] = rnd(4, 128)
                t[p + "weight"] = rnd(4, 128)
                t[p + "bias"] = rnd(4)
        for k in drop:
            del t[k]
        if shape_over:
            t[shape_over[0]] = rnd(*shape_over[1])
        d = os.path.join(d0, name)
        os.makedirs(d)
        with open(os.path.join(d, "reft_config.json"), "w") as f:
            f.write(M.dump_json(cfg))
        M.write_safetensors(os.path.join(d, "reft_model.safetensors"), t)

    reft_dir("reft-unknown-type", {"reft_type": "superreft"})
    expected["reft-unknown-type"] = "reft_type"
    reft_dir("reft-layer-out-of-range", {"layers": [7]})
    expected["reft-layer-out-of-range"] = "layer 7"
    reft_dir("reft-bad-positions", {"positions": "f3+x2"})
    expected["reft-bad-positions"] = "positions"
    reft_dir("reft-missing-tensor", {}, drop=["layers.1.last.rotate"])
    expected["reft-missing-tensor"] = "layers.1.last.rotate"
    reft_dir("reft-wrong-shape", {}, shape_over=("layers.0.first.weight", (4, 127)))
    expected["reft-wrong-shape"] = "layers.0.first.weight"
    with open(os.path.join(d0, "EXPECTED.json"), "w") as f:
        f.write(M.dump_json(expected))
    # every fixture must be readable (the error is in its meaning, not in
    # the container)
    for name in expected:
        for f in os.listdir(os.path.join(d0, name)):
            if f.endswith(".safetensors"):
                M.read_safetensors(os.path.join(d0, name, f))
    print("bad/: %d fixtures (base %s): %s" % (len(expected), base, ", ".join(sorted(expected))))


def dir_size(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: /usr/bin/python3 tools/make_reference_adapters.py OUT_DIR [MODELS_DIR]\n"
                         "  MODELS_DIR defaults to OUT_DIR/../models\n")
        return 2
    torch.manual_seed(0)
    torch.set_num_threads(1)  # summation order fixed, same bits everywhere
    out = sys.argv[1]
    models = (sys.argv[2] if len(sys.argv) == 3 else
              os.path.join(os.path.dirname(os.path.abspath(out.rstrip("/"))), "models"))
    if not os.path.isdir(models):
        fail("no %s (run make_reference_models.py first)" % models)
    os.makedirs(out, exist_ok=True)
    bases = {}

    def base_of(n):
        if n not in bases:
            bases[n] = load_base(models, n)
        return bases[n]

    results = {}
    for case in LORA_CASES:
        results[case["name"]] = make_lora(out, base_of(case["base"]), case)
    for case in REFT_CASES:
        results[case["name"]] = make_reft(out, base_of(case["base"]), case)
    a, b = results["lora-regex-layers-f16"], results["lora-layers-list-f16"]
    if not all(np.array_equal(a[m], b[m]) for m in a):
        fail("regex and layers_to_transform cases should give identical goldens")
    print("lora-regex-layers-f16 and lora-layers-list-f16: identical goldens")
    make_bad(out)
    total = dir_size(out)
    print("total %d bytes" % total)
    if total > 2 * 1024 * 1024:
        fail("reference adapters larger than 2 MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
