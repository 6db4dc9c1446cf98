#!/usr/bin/python3
"""make_reference_models.py - tiny Hugging Face-layout decoder models plus golden logits.

What it is
    An independent PyTorch (float64) reference for preft's llama-family decoder.
    It writes small models in the exact directory layout Hugging Face
    `save_pretrained` produces (config.json, model.safetensors or shards plus
    model.safetensors.index.json, generation_config.json) and, for each model,
    a token sequence and the logits the Hugging Face forward pass of
    LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM gives for it.
    The C tests read these files; they never need Python.

How to run
    /usr/bin/python3 tools/make_reference_models.py tests/data/models

    (Debian's python3 with python3-torch 1.13 and numpy; no `transformers`
    or `safetensors` package is used: the safetensors writer and the forward
    pass are written here from scratch.)  The output is deterministic: the
    same bytes on every run.

Files per model directory <out>/<name>/
    config.json, generation_config.json   as transformers writes them
                                          (indent 2, sorted keys)
    model.safetensors                     or model-0000K-of-0000N.safetensors
                                          + model.safetensors.index.json
    golden_ids.txt                        one line, comma-separated token ids
    golden_logits.f64                     raw little-endian float64, row-major
                                          [T, V]: logits at every position

Reference semantics (transformers' eager path, batch 1, positions 0..T-1)
    x = embed_tokens[ids]
    per layer:  x += o_proj(attn(input_layernorm(x)))
                x += down_proj(silu(gate_proj(h)) * up_proj(h)),
                     h = post_attention_layernorm(x)
    logits = lm_head(norm(x))            (lm_head = embed_tokens when tied)
    RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * weight
    RoPE: rotate_half convention (dims [0, Dh/2) pair with [Dh/2, Dh)),
          inv_freq[i] = 1 / theta^(2i/Dh), optional "llama3" rope_scaling
          (transformers' _compute_llama3_parameters), attention_factor 1.
    attention: scale 1/sqrt(Dh), causal mask, softmax; query head h reads
          kv head h // (H/Hkv) (transformers' repeat_kv).
    Biases: Qwen2 q,k,v (not o); Llama "attention_bias": true -> q,k,v,o.

Precision
    Weights are drawn in float32, rounded to the file dtype (F32/F16/BF16),
    and the reference runs in float64 on exactly those rounded values.
    transformers itself computes inv_freq and the RoPE angles in float32;
    the float64 angles here differ from that by ~1e-5 rad at position 160,
    far below the tests' tolerances, and are the exact mathematical answer.

Self-checks (the script fails loudly if any is violated)
    - every file is re-read by an independent safetensors reader (header
      parse, padding, contiguous offsets, bytes -> values) and compared
      bit-for-bit with the tensors written;
    - the logits are recomputed from the re-read files by a second, naive
      loop-per-position implementation and must agree to 1e-12;
    - the llama3 scaling covers all three wavelength regimes and changes
      the logits; the GQA head mapping, the rotate_half convention, the
      biases and an explicit head_dim all change the logits when altered.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch

F64 = torch.float64
TRANSFORMERS_VERSION = "4.46.0"

# Dimension letters (as in the C code): T positions, D model width, H / Hkv
# query / kv heads, Dh head width, F FFN width, V vocab, L layers.

MODELS = [
    {
        "name": "llama-gqa-rope3",
        "arch": "LlamaForCausalLM", "model_type": "llama", "dtype": "F32",
        "D": 128, "H": 8, "Hkv": 2, "Dh": 16, "explicit_head_dim": True,
        "F": 160, "L": 2, "V": 256, "T": 24,
        "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 512,
        "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0,
                         "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 64,
                         "rope_type": "llama3"},
        "tied": False, "attention_bias": False, "shards": 2,
        "bos": 1, "eos": [2, 3],   # Llama 3.1 lists several eos ids
        "seed": 1001,
    },
    {
        "name": "qwen2-bias-tied-bf16",
        "arch": "Qwen2ForCausalLM", "model_type": "qwen2", "dtype": "BF16",
        "D": 64, "H": 4, "Hkv": 2, "Dh": 16, "explicit_head_dim": False,
        "F": 176, "L": 2, "V": 320, "T": 20,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
        "max_position_embeddings": 4096, "rope_scaling": None,
        "tied": True, "attention_bias": None, "shards": 1,
        "bos": 1, "eos": 2,
        "seed": 2002,
    },
    {
        "name": "llama-headdim-f16",
        "arch": "LlamaForCausalLM", "model_type": "llama", "dtype": "F16",
        "D": 64, "H": 4, "Hkv": 1, "Dh": 32, "explicit_head_dim": True,
        "F": 128, "L": 2, "V": 384, "T": 16,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 2048, "rope_scaling": None,
        "tied": False, "attention_bias": True, "shards": 1,
        "bos": 1, "eos": 2,
        "seed": 3003,
    },
    {
        "name": "mistral-long",
        "arch": "MistralForCausalLM", "model_type": "mistral", "dtype": "F32",
        "D": 64, "H": 4, "Hkv": 2, "Dh": 16, "explicit_head_dim": False,
        "F": 128, "L": 2, "V": 256, "T": 160,
        "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 1024, "rope_scaling": None,
        "tied": False, "attention_bias": False, "shards": 1,
        "bos": 1, "eos": 2,
        "seed": 4004,
    },
]

TORCH_DTYPE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
CONFIG_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def fail(msg):
    raise SystemExit("make_reference_models: FAILED: " + msg)


# ---------------------------------------------------------------------------
# Configs, as transformers' PretrainedConfig.to_json_string writes them
# ---------------------------------------------------------------------------

def make_config(m):
    c = {
        "architectures": [m["arch"]],
        "attention_dropout": 0.0,
        "bos_token_id": m["bos"],
        "eos_token_id": m["eos"],
        "hidden_act": "silu",
        "hidden_size": m["D"],
        "initializer_range": 0.02,
        "intermediate_size": m["F"],
        "max_position_embeddings": m["max_position_embeddings"],
        "model_type": m["model_type"],
        "num_attention_heads": m["H"],
        "num_hidden_layers": m["L"],
        "num_key_value_heads": m["Hkv"],
        "rms_norm_eps": m["rms_norm_eps"],
        "rope_theta": m["rope_theta"],
        "tie_word_embeddings": m["tied"],
        "torch_dtype": CONFIG_DTYPE[m["dtype"]],
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": m["V"],
    }
    if m["model_type"] == "llama":
        c["attention_bias"] = m["attention_bias"]
        c["mlp_bias"] = False
        c["pretraining_tp"] = 1
        c["rope_scaling"] = m["rope_scaling"]
    elif m["model_type"] == "qwen2":
        c["max_window_layers"] = m["L"]
        c["rope_scaling"] = None
        c["sliding_window"] = m["max_position_embeddings"]  # ignored: use_sliding_window false
        c["use_sliding_window"] = False
    elif m["model_type"] == "mistral":
        c["sliding_window"] = None
    if m["explicit_head_dim"]:
        c["head_dim"] = m["Dh"]
    return c


def make_generation_config(m):
    return {
        "bos_token_id": m["bos"],
        "do_sample": True,
        "eos_token_id": m["eos"],
        "max_new_tokens": 64,
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "top_k": 20,
        "top_p": 0.8,
        "transformers_version": TRANSFORMERS_VERSION,
    }


def dump_json(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def cfg_head_dim(c):
    # transformers: getattr(config, "head_dim", None) or hidden // heads
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def cfg_has_qkv_bias(c):
    return c["model_type"] == "qwen2" or bool(c.get("attention_bias", False))


def cfg_has_o_bias(c):
    return c["model_type"] != "qwen2" and bool(c.get("attention_bias", False))


# ---------------------------------------------------------------------------
# Weights: float32 draws, rounded to the file dtype
# ---------------------------------------------------------------------------

def make_weights(m, c):
    """Returns {name: tensor in file dtype}, drawn in a fixed order."""
    g = torch.Generator().manual_seed(m["seed"])
    dt = TORCH_DTYPE[m["dtype"]]
    D, H, Hkv, Dh, F, V = m["D"], m["H"], m["Hkv"], m["Dh"], m["F"], m["V"]
    w = {}

    def normal(shape, std, mean=0.0):
        return (torch.randn(shape, generator=g, dtype=torch.float32) * std + mean).to(dt)

    def linear(name, out_f, in_f, gain=1.0, bias=False):
        w[name + ".weight"] = normal((out_f, in_f), gain / math.sqrt(in_f))
        if bias:
            w[name + ".bias"] = normal((out_f,), 0.3)

    qkv_bias, o_bias = cfg_has_qkv_bias(c), cfg_has_o_bias(c)
    # tied: the embedding is also the output head, so keep it smaller
    w["model.embed_tokens.weight"] = normal((V, D), 0.3 if m["tied"] else 0.7)
    for l in range(m["L"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = normal((D,), 0.15, 1.0)
        linear(p + "self_attn.q_proj", H * Dh, D, 1.0, qkv_bias)
        linear(p + "self_attn.k_proj", Hkv * Dh, D, 1.0, qkv_bias)
        linear(p + "self_attn.v_proj", Hkv * Dh, D, 1.0, qkv_bias)
        linear(p + "self_attn.o_proj", D, H * Dh, 1.0, o_bias)
        w[p + "post_attention_layernorm.weight"] = normal((D,), 0.15, 1.0)
        linear(p + "mlp.gate_proj", F, D, 1.0)
        linear(p + "mlp.up_proj", F, D, 1.0)
        linear(p + "mlp.down_proj", D, F, 1.0)
    w["model.norm.weight"] = normal((D,), 0.15, 1.0)
    if not m["tied"]:
        linear("lm_head", V, D, 2.0)
    return w


# ---------------------------------------------------------------------------
# safetensors writer and an independent reader
# ---------------------------------------------------------------------------

def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    fail("unsupported dtype %s" % t.dtype)


ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(path, tensors):
    """tensors: {name: tensor}. Sorted by name, header space-padded to 8."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path):
    """Independent reader: returns {name: float64 numpy array}; checks layout."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail("%s: too short" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n % 8 != 0 or 8 + n > len(data):
        fail("%s: bad header length %d" % (path, n))
    raw = data[8:8 + n]
    if not raw.rstrip(b" ").endswith(b"}"):
        fail("%s: header not JSON padded with spaces" % path)
    header = json.loads(raw.decode("utf-8"))
    body = data[8 + n:]
    meta = header.pop("__metadata__", None)
    if meta != {"format": "pt"}:
        fail("%s: metadata %r" % (path, meta))
    out, expect = {}, 0
    spans = sorted((v["data_offsets"][0], k) for k, v in header.items())
    if [k for _, k in spans] != sorted(header):
        fail("%s: data not in name order" % path)
    size = {"F32": 4, "F16": 2, "BF16": 2}
    for begin, name in spans:
        e = header[name]
        b, end = e["data_offsets"]
        if b != expect:
            fail("%s: %s starts at %d, expected %d" % (path, name, b, expect))
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        if end - b != count * size[e["dtype"]]:
            fail("%s: %s byte count" % (path, name))
        chunk = body[b:end]
        if e["dtype"] == "F32":
            a = np.frombuffer(chunk, dtype="<f4").astype(np.float64)
        elif e["dtype"] == "F16":
            a = np.frombuffer(chunk, dtype="<f2").astype(np.float64)
        else:  # bf16: the high 16 bits of a float32
            u = np.frombuffer(chunk, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32).astype(np.float64)
        out[name] = a.reshape(e["shape"])
        expect = end
    if expect != len(body):
        fail("%s: %d trailing bytes" % (path, len(body) - expect))
    return out


def shard_names(names, n):
    """Split names (in module order) into n shards of whole layers: the
    embedding goes with the first layers, final norm and lm_head with the
    last, as save_pretrained's size-based split does for a model this shape."""
    names = list(names)
    L = 1 + max(int(k.split(".")[2]) for k in names if k.startswith("model.layers."))
    def shard_of(k):
        if k.startswith("model.layers."):
            return int(k.split(".")[2]) * n // L
        return 0 if k.startswith("model.embed_tokens") else n - 1
    shards = [[k for k in names if shard_of(k) == i] for i in range(n)]
    if any(not s for s in shards):
        fail("sharding produced an empty shard")
    return shards


# ---------------------------------------------------------------------------
# The reference forward pass (float64, vectorised)
# ---------------------------------------------------------------------------

def rope_inv_freq(c, scaling=True):
    """inv_freq [Dh/2] with transformers' llama3 rule when configured."""
    Dh = cfg_head_dim(c)
    inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, Dh, 2, dtype=F64) / Dh))
    rs = c.get("rope_scaling")
    if rs is None or not scaling:
        return inv
    if rs.get("rope_type", rs.get("type")) != "llama3":
        fail("unsupported rope_scaling %r" % rs)
    factor = rs["factor"]
    low, high = rs["low_freq_factor"], rs["high_freq_factor"]
    old_ctx = rs["original_max_position_embeddings"]
    low_wl, high_wl = old_ctx / low, old_ctx / high
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
    smooth = (old_ctx / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < high_wl) & ~(wavelen > low_wl)
    return torch.where(medium, smoothed, inv_l)


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, inv_freq, interleaved=False):
    """x [heads, T, Dh] at positions 0..T-1."""
    T = x.shape[1]
    freqs = torch.arange(T, dtype=F64)[:, None] * inv_freq[None, :]  # [T, Dh/2]
    if interleaved:  # the GPT-J / llama.cpp-native pairing, for the negative check
        cos, sin = freqs.cos(), freqs.sin()
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = b * cos + a * sin
        return out
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, Dh]
    return x * emb.cos() + rotate_half(x) * emb.sin()


def forward(c, w, ids, rope_scaling=True, gqa="repeat_kv", interleaved=False,
            biases=True, lora=None, resid=None):
    """Logits [T, V] in float64. w: {name: float64 tensor}. Keyword
    arguments rope_scaling..biases other than the defaults are deliberate
    errors used by the self-checks.

    Adapter hooks (used by make_reference_adapters.py; None = plain model):
      lora(name, v) -> delta [T, out] or None, added to the output of the
          linear `name` (e.g. "model.layers.0.self_attn.q_proj") on input
          v [T, in], after its bias;
      resid(l, x) -> x [T, D], applied to the residual stream after decoder
          layer l (after its MLP residual add), before layer l+1 / the
          final norm."""
    D, H, Hkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    Dh = cfg_head_dim(c)
    eps = c["rms_norm_eps"]
    T = len(ids)
    inv_freq = rope_inv_freq(c, rope_scaling)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]

    def lin(name, v):
        y = v @ w[name + ".weight"].T
        if biases and (name + ".bias") in w:
            y = y + w[name + ".bias"]
        if lora is not None:
            delta = lora(name, v)
            if delta is not None:
                y = y + delta
        return y

    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).view(T, H, Dh).transpose(0, 1)
        k = lin(p + "self_attn.k_proj", h).view(T, Hkv, Dh).transpose(0, 1)
        v = lin(p + "self_attn.v_proj", h).view(T, Hkv, Dh).transpose(0, 1)
        q = apply_rope(q, inv_freq, interleaved)
        k = apply_rope(k, inv_freq, interleaved)
        if gqa == "repeat_kv":  # query head h -> kv head h // (H/Hkv)
            k = k.repeat_interleave(H // Hkv, dim=0)
            v = v.repeat_interleave(H // Hkv, dim=0)
        else:  # wrong mapping h -> h % Hkv
            k = k.repeat(H // Hkv, 1, 1)
            v = v.repeat(H // Hkv, 1, 1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)
        s = s.masked_fill(causal, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # [H, T, Dh]
        a = a.transpose(0, 1).reshape(T, H * Dh)
        x = x + lin(p + "self_attn.o_proj", a)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(p + "mlp.gate_proj", h)
        x = x + lin(p + "mlp.down_proj", torch.nn.functional.silu(g) * lin(p + "mlp.up_proj", h))
        if resid is not None:
            x = resid(l, x)
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if c["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


# ---------------------------------------------------------------------------
# A second, naive implementation (numpy, one position and head at a time)
# ---------------------------------------------------------------------------

def naive_inv_freq(c):
    Dh = cfg_head_dim(c)
    out = []
    rs = c.get("rope_scaling")
    for i in range(Dh // 2):
        f = 1.0 / (c["rope_theta"] ** (2.0 * i / Dh))
        if rs:
            wl = 2.0 * math.pi / f
            old = rs["original_max_position_embeddings"]
            lo_wl = old / rs["low_freq_factor"]
            hi_wl = old / rs["high_freq_factor"]
            if wl < hi_wl:
                pass
            elif wl > lo_wl:
                f = f / rs["factor"]
            else:
                sm = (old / wl - rs["low_freq_factor"]) / (rs["high_freq_factor"] - rs["low_freq_factor"])
                f = (1.0 - sm) * f / rs["factor"] + sm * f
        out.append(f)
    return out


def naive_forward(c, w, ids, wpos=None, edit=None):
    """Same semantics, written without any vectorised attention.

    Adapter hooks (None = plain model): wpos(t) -> the weight dict whose
    projections position t uses (e.g. LoRA-merged weights on adapted rows);
    edit(l, t, x) -> x [D], applied to position t's residual after layer l."""
    D, H, Hkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    Dh, eps = cfg_head_dim(c), c["rms_norm_eps"]
    half = Dh // 2
    inv = naive_inv_freq(c)
    qkv_b, o_b = cfg_has_qkv_bias(c), cfg_has_o_bias(c)

    def norm(v, g):
        return v / math.sqrt(float(np.dot(v, v)) / len(v) + eps) * g

    def rope(vec, pos):
        out = vec.copy()
        for j in range(half):
            a, b = vec[j], vec[j + half]
            cs, sn = math.cos(pos * inv[j]), math.sin(pos * inv[j])
            out[j] = a * cs - b * sn
            out[j + half] = b * cs + a * sn
        return out

    def proj(name, v, bias, t):
        wt = w if wpos is None else wpos(t)
        y = wt[name + ".weight"] @ v
        return y + wt[name + ".bias"] if bias else y

    xs = [w["model.embed_tokens.weight"][t].copy() for t in ids]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        ks, vs, qs = [], [], []
        for pos, x in enumerate(xs):
            h = norm(x, w[p + "input_layernorm.weight"])
            q = proj(p + "self_attn.q_proj", h, qkv_b, pos)
            k = proj(p + "self_attn.k_proj", h, qkv_b, pos)
            v = proj(p + "self_attn.v_proj", h, qkv_b, pos)
            qs.append([rope(q[i * Dh:(i + 1) * Dh], pos) for i in range(H)])
            ks.append([rope(k[i * Dh:(i + 1) * Dh], pos) for i in range(Hkv)])
            vs.append([v[i * Dh:(i + 1) * Dh] for i in range(Hkv)])
        new = []
        for t, x in enumerate(xs):
            att = np.zeros(H * Dh)
            for hh in range(H):
                kv = hh // (H // Hkv)
                sc = np.array([np.dot(qs[t][hh], ks[s][kv]) / math.sqrt(Dh) for s in range(t + 1)])
                e = np.exp(sc - sc.max())
                pr = e / e.sum()
                att[hh * Dh:(hh + 1) * Dh] = sum(pr[s] * vs[s][kv] for s in range(t + 1))
            x = x + proj(p + "self_attn.o_proj", att, o_b, t)
            h = norm(x, w[p + "post_attention_layernorm.weight"])
            g = proj(p + "mlp.gate_proj", h, False, t)
            u = proj(p + "mlp.up_proj", h, False, t)
            x = x + proj(p + "mlp.down_proj", g / (1.0 + np.exp(-g)) * u, False, t)
            if edit is not None:
                x = edit(l, t, x)
            new.append(x)
        xs = new
    head = w["model.embed_tokens.weight"] if c["tie_word_embeddings"] else w["lm_head.weight"]
    return np.stack([head @ norm(x, w["model.norm.weight"]) for x in xs])


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def make_ids(m):
    g = torch.Generator().manual_seed(m["seed"] + 7)
    ids = torch.randint(0, m["V"], (m["T"],), generator=g).tolist()
    ids[0] = m["bos"]
    ids[m["T"] // 3] = 0
    ids[(2 * m["T"]) // 3] = m["V"] - 1
    return ids


def rel_diff(a, b):
    return float((a - b).abs().max() / b.abs().max())


def check_rope_regimes(c):
    rs = c["rope_scaling"]
    inv = rope_inv_freq(c, scaling=False)
    wl = 2 * math.pi / inv
    lo_wl = rs["original_max_position_embeddings"] / rs["low_freq_factor"]
    hi_wl = rs["original_max_position_embeddings"] / rs["high_freq_factor"]
    regimes = ["high(keep)" if x < hi_wl else "low(/factor)" if x > lo_wl else "medium(smooth)"
               for x in wl.tolist()]
    print("    llama3 rope: high_freq_wavelen %.1f, low_freq_wavelen %.1f" % (hi_wl, lo_wl))
    for i, (x, r) in enumerate(zip(wl.tolist(), regimes)):
        print("      dim pair %d: wavelen %10.2f  %s" % (i, x, r))
    if len(set(regimes)) != 3:
        fail("llama3 rope: not all three regimes occur")
    # no wavelength within 1% of a boundary, so float32 in the C code agrees
    for x in wl.tolist():
        if min(abs(x / lo_wl - 1), abs(x / hi_wl - 1)) < 0.01:
            fail("llama3 rope: wavelength %.3f too close to a boundary" % x)
    naive = torch.tensor(naive_inv_freq(c), dtype=F64)
    if rel_diff(rope_inv_freq(c), naive) > 1e-15:
        fail("llama3 rope: vectorised and naive inv_freq differ")


def build(out_root, m):
    name = m["name"]
    d = os.path.join(out_root, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):  # stale shards from an earlier layout
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(d, f))
    c = make_config(m)
    w = make_weights(m, c)
    ids = make_ids(m)
    w64 = {k: v.to(F64) for k, v in w.items()}
    logits = forward(c, w64, ids)
    print("%s: %s %s D=%d H=%d Hkv=%d Dh=%d F=%d L=%d V=%d T=%d" % (
        name, m["arch"], m["dtype"], m["D"], m["H"], m["Hkv"], m["Dh"], m["F"],
        m["L"], m["V"], m["T"]))

    # --- files
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(dump_json(c))
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        f.write(dump_json(make_generation_config(m)))
    n = m["shards"]
    files = []
    if n == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), w)
        files.append("model.safetensors")
    else:
        weight_map, total = {}, 0
        for i, names in enumerate(shard_names(w.keys(), n)):
            fn = "model-%05d-of-%05d.safetensors" % (i + 1, n)
            total += write_safetensors(os.path.join(d, fn), {k: w[k] for k in names})
            for k in names:
                weight_map[k] = fn
            files.append(fn)
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            f.write(dump_json({"metadata": {"total_size": total}, "weight_map": weight_map}))
    with open(os.path.join(d, "golden_ids.txt"), "w") as f:
        f.write(",".join(str(i) for i in ids) + "\n")
    with open(os.path.join(d, "golden_logits.f64"), "wb") as f:
        f.write(logits.numpy().astype("<f8").tobytes())

    # --- re-read everything independently
    back = {}
    for fn in files:
        part = read_safetensors(os.path.join(d, fn))
        if set(part) & set(back):
            fail("%s: tensor in two shards" % name)
        back.update(part)
    if n > 1:
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            idx = json.load(f)
        if set(idx["weight_map"]) != set(w):
            fail("%s: index weight_map names" % name)
        if idx["metadata"]["total_size"] != sum(a.size * (4 if m["dtype"] == "F32" else 2)
                                                for a in back.values()):
            fail("%s: index total_size" % name)
    if set(back) != set(w):
        fail("%s: names read back differ" % name)
    for k in w:
        if tuple(back[k].shape) != tuple(w[k].shape) or not np.array_equal(back[k], w64[k].numpy()):
            fail("%s: tensor %s differs after re-read" % (name, k))
    c_back = json.load(open(os.path.join(d, "config.json")))
    ids_back = [int(s) for s in open(os.path.join(d, "golden_ids.txt")).read().strip().split(",")]
    gold = np.fromfile(os.path.join(d, "golden_logits.f64"), dtype="<f8").reshape(len(ids_back), c_back["vocab_size"])
    naive = naive_forward(c_back, back, ids_back)
    err = float(np.abs(naive - gold).max() / np.abs(gold).max())
    if err > 1e-12:
        fail("%s: naive forward differs from golden logits (rel %.3g)" % (name, err))
    if 0 not in ids or m["V"] - 1 not in ids:
        fail("%s: ids must include 0 and V-1" % name)

    # --- the features under test must change the logits
    lt = torch.from_numpy(gold)
    checks = []
    if c.get("rope_scaling"):
        check_rope_regimes(c)
        checks.append(("llama3 scaling off", forward(c, w64, ids, rope_scaling=False)))
    if c["num_key_value_heads"] not in (1, c["num_attention_heads"]):
        checks.append(("kv head h % Hkv", forward(c, w64, ids, gqa="modulo")))
    checks.append(("interleaved rope", forward(c, w64, ids, interleaved=True)))
    if any(k.endswith(".bias") for k in w):
        checks.append(("biases dropped", forward(c, w64, ids, biases=False)))
    if cfg_has_o_bias(c):
        no_o = {k: v for k, v in w64.items() if not k.endswith("o_proj.bias")}
        checks.append(("o_proj bias dropped", forward(c, no_o, ids)))
    if "head_dim" in c and c["head_dim"] != c["hidden_size"] // c["num_attention_heads"]:
        # hidden/heads as the head width: same weights reinterpreted, must differ
        alt = c["hidden_size"] // c["num_attention_heads"]
        cc = dict(c, num_attention_heads=c["num_attention_heads"] * c["head_dim"] // alt,
                  num_key_value_heads=c["num_key_value_heads"] * c["head_dim"] // alt,
                  head_dim=alt)
        checks.append(("head_dim = hidden/heads", forward(cc, w64, ids)))
    for what, alt in checks:
        r = rel_diff(alt, lt)
        print("    check: %-24s changes logits by max rel %.3g" % (what, r))
        if r < 1e-3:
            fail("%s: %s does not change the logits" % (name, what))

    p = torch.softmax(lt, -1)
    ent = float(-(p * p.clamp_min(1e-300).log()).sum(-1).mean())
    print("    logits: std %.3f, max |.| %.3f, mean entropy %.2f nats (uniform %.2f); naive rel err %.1e"
          % (float(lt.std()), float(lt.abs().max()), ent, math.log(m["V"]), err))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print("    files: %s; %d bytes total" % (", ".join(sorted(os.listdir(d))), size))
    return size


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: /usr/bin/python3 tools/make_reference_models.py OUT_DIR\n")
        return 2
    torch.manual_seed(0)
    torch.set_num_threads(1)  # summation order fixed, same bits everywhere
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    total = sum(build(out, m) for m in MODELS)
    print("total %d bytes" % total)
    if total > 4 * 1024 * 1024:
        fail("reference models larger than 4 MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
