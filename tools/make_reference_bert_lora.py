#!/usr/bin/python3
"""make_reference_bert_lora.py - PEFT LoRA adapters for the tiny BERT encoders plus golden hidden states.

What it is
    An independent PyTorch (float64) reference for preft's BERT LoRA loading
    (src/model/bert_lora.c, src/model/peft_lora.c). For two of the models of
    make_reference_bert.py (tests/data/bert/) it writes a LoRA adapter in the
    layout Hugging Face PEFT's save_pretrained gives (adapter_config.json,
    adapter_model.safetensors with base_model.model.<module>.lora_{A,B}.weight)
    and the encoder's last hidden states of that model's cases with the
    adapter applied. No `peft` package: the LoRA math is written here,
        y = W·x + b + scale·B·(A·x),  scale = lora_alpha / r  (rsLoRA: / sqrt(r)),
    on every linear PEFT's rules select (target_modules as a list: the module
    name or a dotted suffix of it; as a string: a regex matching the whole
    module name; rank_pattern overriding r by the same suffix rule).

How to run
    /usr/bin/python3 tools/make_reference_bert_lora.py tests/data/bert_lora

    Needs tests/data/bert/ as make_reference_bert.py writes it (the base
    models are regenerated here from the same seeds and checked bit for bit
    against those files). Debian's python3-torch and numpy. Deterministic.

Adapters (<out>/<name>/)
    model-f32     on bert-model-f32 (BertModel names: base_model.model.encoder...),
                  F32 tensors, r 4, lora_alpha 8, target_modules
                  ["query", "value", "output.dense"] (key and intermediate.dense
                  untouched; "output.dense" takes attention.output.dense and the
                  layer's output.dense), rank_pattern {"value": 2}
    cls-bf16      on bert-cls-bf16 (BertForSequenceClassification: names with
                  base_model.model.bert.encoder...), F16 tensors, r 2,
                  lora_alpha 6, use_rslora, target_modules a regex selecting
                  all six linears of every layer
    Each directory: adapter_config.json, adapter_model.safetensors, hidden.f64
    (raw little-endian float64, the base model's cases of cases.txt one after
    the other, [sum T, D]).

Self-checks (the script fails loudly if any is violated)
    - the regenerated base weights equal tests/data/bert/<model>/model.safetensors;
    - the adapter file re-read by the independent reader equals the tensors;
    - the LoRA forward equals the plain forward on merged weights W + scale·B·A
      to 1e-10, and differs from the base model's by more than 1e-2.
"""

import json
import math
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference_bert import MODELS, file_name, forward, make_cases, make_weights, max_diff  # noqa: E402
from make_reference_models import read_safetensors, write_safetensors  # noqa: E402

LINEARS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense"]

ADAPTERS = [
    {"name": "model-f32", "model": "bert-model-f32", "dtype": torch.float32, "prefix": "", "r": 4, "alpha": 8.0,
     "rslora": False, "targets": ["query", "value", "output.dense"], "rank_pattern": {"value": 2}, "seed": 1611},
    {"name": "cls-bf16", "model": "bert-cls-bf16", "dtype": torch.float16, "prefix": "bert.", "r": 2, "alpha": 6.0,
     "rslora": True,
     "targets": r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|"
                r"intermediate\.dense|output\.dense)",
     "rank_pattern": {}, "seed": 1612},
]


def fail(msg):
    raise SystemExit("make_reference_bert_lora: FAILED: " + msg)


def selected(targets, key):
    """PEFT's check_target_module_exists for a list or a regex string."""
    if isinstance(targets, str):
        return re.fullmatch(targets, key) is not None
    return any(key == t or key.endswith("." + t) for t in targets)


def rank_of(a, key):
    for pat, r in a["rank_pattern"].items():
        if re.fullmatch(r"(.*\.)?(%s)" % pat, key):
            return r
    return a["r"]


def build(out_root, bert_root, a):
    m = next(x for x in MODELS if x["name"] == a["model"])
    stored, _ = make_weights(m)
    back = read_safetensors(os.path.join(bert_root, m["name"], "model.safetensors"))
    for k, v in stored.items():
        if not np.array_equal(back[file_name(m, k)], v.to(torch.float64).numpy()):
            fail("%s: %s differs from the committed base model" % (a["name"], k))
    w = {k: v.to(torch.float64) for k, v in stored.items()}
    g = torch.Generator().manual_seed(a["seed"])
    D, F = m["dim"], m["ffn"]
    lora, tensors = {}, {}
    for l in range(m["layers"]):
        for lin in LINEARS:
            canon = "encoder.layer.%d.%s" % (l, lin)
            key = a["prefix"] + canon
            if not selected(a["targets"], key):
                continue
            r = rank_of(a, key)
            n_in = F if lin == "output.dense" else D
            n_out = F if lin == "intermediate.dense" else D
            A = ((torch.rand(r, n_in, generator=g) * 2 - 1) / math.sqrt(n_in)).to(a["dtype"])
            B = ((torch.rand(n_out, r, generator=g) * 2 - 1) * 0.3).to(a["dtype"])
            tensors["base_model.model.%s.lora_A.weight" % key] = A
            tensors["base_model.model.%s.lora_B.weight" % key] = B
            scale = a["alpha"] / (math.sqrt(r) if a["rslora"] else r)
            lora[canon] = (A.to(torch.float64), B.to(torch.float64), scale)
    d = os.path.join(out_root, a["name"])
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "adapter_model.safetensors")
    write_safetensors(path, tensors)
    rb = read_safetensors(path)
    if sorted(rb) != sorted(tensors) or any(not np.array_equal(rb[k], v.to(torch.float64).numpy())
                                            for k, v in tensors.items()):
        fail("%s: adapter tensors differ when read back" % a["name"])
    cfg = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": m["name"], "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
        "layers_to_transform": None, "lora_alpha": a["alpha"], "lora_dropout": 0.0, "modules_to_save": None,
        "peft_type": "LORA", "r": a["r"], "rank_pattern": a["rank_pattern"], "revision": None,
        "target_modules": a["targets"], "task_type": "FEATURE_EXTRACTION", "use_dora": False,
        "use_rslora": a["rslora"],
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    merged = dict(w)
    for canon, (A, B, scale) in lora.items():
        merged[canon + ".weight"] = w[canon + ".weight"] + scale * (B @ A)
    rows = []
    for ids, types in make_cases(m):
        h, _ = forward(m, w, ids[None], types[None], lora=lora)
        hm, _ = forward(m, merged, ids[None], types[None])
        hb, _ = forward(m, w, ids[None], types[None])
        if max_diff(h, hm) > 1e-10:
            fail("%s: LoRA forward differs from the merged weights' by %g" % (a["name"], max_diff(h, hm)))
        if max_diff(h, hb) < 1e-2:
            fail("%s: the adapter barely changes the output" % a["name"])
        rows.append(h[0].numpy())
    with open(os.path.join(d, "hidden.f64"), "wb") as f:
        f.write(np.concatenate(rows).astype("<f8").tobytes())
    print("%s: %d adapted linears, %d cases" % (a["name"], len(lora), len(rows)))


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: make_reference_bert_lora.py OUT_DIR")
    torch.set_grad_enabled(False)
    bert_root = os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "bert")
    for a in ADAPTERS:
        build(sys.argv[1], bert_root, a)


if __name__ == "__main__":
    main()
