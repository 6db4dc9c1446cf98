#!/usr/bin/python3
"""make_reference_penalties.py - golden rows for the serving logits processors.

What it is
    The independent PyTorch reference for src/engine/penalties.c: vLLM's
    semantics written out with dense tensors (a bincount over the whole
    vocabulary, boolean masks), where preft keeps a sparse per-sequence
    table. For random rows of logits, prompts, generated tokens and
    settings it writes the processed row to golden.json;
    tests/unit/test_penalties.c reads it and never needs Python.

How to run
    /usr/bin/python3 tools/make_reference_penalties.py tests/data/penalties

    (Debian's python3 with python3-torch). Deterministic.

The processors, in vLLM's order (docs/SERVING.md, "Sampling")
    1. min_tokens: while len(generated) < min_tokens, stop ids get -inf
    2. logit_bias: logits[id] += bias
    3. repetition r over prompt | generated tokens:
       logits > 0 -> logits / r, else logits * r
    4. logits -= frequency * count_generated + presence * (count_generated > 0)
"""
import json
import os
import sys

import torch


def process(logits, prompt, generated, case):
    v = logits.numel()
    x = logits.clone().double()
    if len(generated) < case["min_tokens"]:
        for s in case["stop_ids"]:
            x[s] = float("-inf")
    for tid, b in case["logit_bias"]:
        x[tid] += b
    prompt_mask = torch.bincount(torch.tensor(prompt, dtype=torch.long), minlength=v) > 0
    counts = torch.bincount(torch.tensor(generated, dtype=torch.long), minlength=v).double() \
        if generated else torch.zeros(v, dtype=torch.float64)
    out_mask = counts > 0
    r = case["repetition"]
    seen = prompt_mask | out_mask
    pos = (x > 0) & seen
    neg = (x <= 0) & seen
    x[pos] = x[pos] / r
    x[neg] = x[neg] * r
    x = x - case["frequency"] * counts - case["presence"] * out_mask.double()
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/penalties"
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(14)
    cases = []
    settings = [
        dict(repetition=1.3, frequency=0.0, presence=0.0, min_tokens=0),
        dict(repetition=0.8, frequency=0.0, presence=0.0, min_tokens=0),
        dict(repetition=1.0, frequency=0.7, presence=0.0, min_tokens=0),
        dict(repetition=1.0, frequency=0.0, presence=-1.5, min_tokens=0),
        dict(repetition=1.0, frequency=0.0, presence=0.0, min_tokens=5),
        dict(repetition=1.2, frequency=0.4, presence=0.6, min_tokens=9, bias=True),
        dict(repetition=2.0, frequency=-0.3, presence=1.0, min_tokens=2, bias=True),
        dict(repetition=1.0, frequency=0.0, presence=0.0, min_tokens=0, bias=True),
    ]
    for i, st in enumerate(settings):
        v = 97 if i % 2 == 0 else 1000
        logits = torch.randn(v, generator=g, dtype=torch.float64) * 3
        logits = logits.float()
        n_prompt = int(torch.randint(1, 40, (1,), generator=g))
        n_gen = int(torch.randint(0, 30, (1,), generator=g))
        # few distinct ids so that tokens repeat
        pool = torch.randint(0, v, (12,), generator=g)
        prompt = [int(pool[int(j)]) for j in torch.randint(0, 12, (n_prompt,), generator=g)]
        generated = [int(pool[int(j)]) for j in torch.randint(0, 12, (n_gen,), generator=g)]
        stop_ids = [int(pool[0]), v - 1]
        bias = []
        if st.get("bias"):
            ids = torch.randperm(v, generator=g)[:6].tolist() + [int(pool[1])]
            bias = [[int(t), float(torch.empty(1).uniform_(-100, 100, generator=g))] for t in ids]
        case = dict(st, stop_ids=stop_ids, logit_bias=bias)
        case.pop("bias", None)
        want = process(logits, prompt, generated, case)
        cases.append(dict(case, vocab=v, logits=logits.tolist(), prompt=prompt, generated=generated,
                          want=[None if torch.isinf(w) else float(w) for w in want]))
    tmp = os.path.join(out, "golden.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"tool": "tools/make_reference_penalties.py", "cases": cases}, f)
    os.replace(tmp, os.path.join(out, "golden.json"))
    print(f"wrote {len(cases)} cases to {out}/golden.json")


if __name__ == "__main__":
    main()
