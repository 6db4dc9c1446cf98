#!/usr/bin/python3
"""make_reference_embeddings.py - golden /v1/embeddings vectors.

What it is
    The PyTorch (float64) reference for preft serve's /v1/embeddings
    (src/server/embeddings.c): the mean over positions of the decoder's last
    hidden state after the final RMSNorm (transformers' last_hidden_state),
    raw and L2-normalised, for a few token-id inputs of the embedded default
    model (assets/default-model). The forward pass is the independent one of
    make_reference_models.py with the output projection replaced by the
    identity (so it returns the normed hidden states, not logits).
    tests/e2e/sdk/endpoints.test.mjs reads the file; it never needs Python.

How to run
    /usr/bin/python3 tools/make_reference_embeddings.py assets/default-model tests/data/embeddings

    (Debian's python3 with python3-torch and numpy.) Deterministic.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_models as ref  # noqa: E402


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "assets/default-model"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/embeddings"
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    w = {k: torch.from_numpy(v) for k, v in ref.read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    D = c["hidden_size"]
    c = dict(c, tie_word_embeddings=False)
    w["lm_head.weight"] = torch.eye(D, dtype=torch.float64)  # forward() then returns norm(x)
    inputs = [[85, 3286, 488, 770], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], [4095]]
    cases = []
    for ids in inputs:
        h = ref.forward(c, w, ids)  # [T, D]
        mean = h.mean(dim=0)
        cases.append({"ids": ids, "mean": mean.tolist(), "normalized": (mean / mean.norm()).tolist()})
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "golden.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"tool": "tools/make_reference_embeddings.py", "model": "assets/default-model", "cases": cases}, f)
    os.replace(tmp, os.path.join(out, "golden.json"))
    print(f"wrote {len(cases)} cases to {out}/golden.json")


if __name__ == "__main__":
    main()
