#!/usr/bin/python3
"""make_reference_grpo.py - golden GRPO losses and gradients for preft's RL.

What it is
    The independent PyTorch (float64, autograd) reference for preft's GRPO
    update (src/rl/grpo_loss.c, grpo_update.c). For adapters of the gradient
    goldens (tests/data/grads/<case>/adapter: a LoRA, a LoReFT and a DiReFT
    one, on the tiny model tests/data/models/llama-gqa-rope3), it fixes a
    batch of rollouts (prompt and completion token ids, three groups of three
    samples, rewards with one all-equal group) and, per adapter mode, the
    rollout policy's log-probabilities (the adapted model's own, perturbed so
    that some ratios leave the clip range); then writes the GRPO loss, the
    mean k3 KL to the adapter-free model, the advantages and the gradient of
    every adapter tensor. tests/unit/test_grpo.c reads these files; it never
    needs Python.

How to run
    /usr/bin/python3 tools/make_reference_grpo.py tests/data/grpo

    (needs tests/data/models and tests/data/grads from make_reference_models.py
    and make_reference_grads.py; Debian's python3 with python3-torch 1.13).
    Deterministic.

The loss (grpo.h)
    A_i  = (r_i - mean(group)) / std(group)    (unbiased std; an all-equal
           group contributes nothing)
    rho  = exp(logp - old_logp)
    k3   = exp(ref - logp) - (ref - logp) - 1
    l_t  = -min(rho A, clip(rho, 1-eps, 1+eps) A) + beta k3
    loss = 1/S sum_i 1/|o_i| sum_t l_t   over the S samples of unequal groups
    logp of completion token t is log-softmax of the row before it (all
    temperature 1); the adapter applies on the rows its mode says (LoRA
    prefill: prompt rows only).

Files per case directory <out>/<case>/
    golden.json {"base", "adapter" (directory under tests/data), "group",
                 "clip_eps", "kl_coef", "samples": [{"ids", "prompt_len",
                 "reward"}], "advantages": [...], "equal_groups",
                 "modes": {"all"|"prefill": {"old_logp": [[...] per sample],
                 "ref_logp": [[...]], "loss", "kl", "grads": file}},
                 "tensors": [{"name", "shape"}]}
    grads_<mode>.f64  float64 little-endian, the tensors concatenated
"""

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_models as M  # noqa: E402
import make_reference_adapters as A  # noqa: E402
import make_reference_grads as GR  # noqa: E402

F64 = torch.float64
CLIP_EPS = 0.2
KL_COEF = 0.1
GROUP = 3
# (prompt length, completion length) of each sample; groups share a prompt
PROMPTS = [5, 4, 6]
COMPLETIONS = [[3, 5, 4], [2, 4, 3], [4, 2, 5]]
REWARDS = [[1.0, 0.0, 0.5], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]
CASES = ["lora-all7-r4", "loreft-all", "direft-all"]


def fail(msg):
    raise SystemExit("make_reference_grpo: FAILED: " + msg)


def make_samples(V, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for p, n in enumerate(PROMPTS):
        prompt = torch.randint(3, V, (n,), generator=g).tolist()
        for k in range(GROUP):
            comp = torch.randint(3, V, (COMPLETIONS[p][k],), generator=g).tolist()
            out.append({"ids": prompt + comp, "prompt_len": n, "reward": REWARDS[p][k]})
    return out


def advantages(samples):
    adv, equal = [], 0
    for g in range(len(samples) // GROUP):
        r = torch.tensor([s["reward"] for s in samples[g * GROUP:(g + 1) * GROUP]], dtype=F64)
        sd = float(r.std())
        if sd < 1e-6:
            equal += 1
            adv += [0.0] * GROUP
        else:
            adv += ((r - r.mean()) / sd).tolist()
    return adv, equal


def counts(samples, i):
    g = i // GROUP
    rs = [s["reward"] for s in samples[g * GROUP:(g + 1) * GROUP]]
    return any(r != rs[0] for r in rs)


def completion_logp(logits, s):
    """log p of each completion token from the row before it."""
    ids, n = s["ids"], s["prompt_len"]
    lp = torch.log_softmax(logits, dim=-1)
    return torch.stack([lp[t - 1, ids[t]] for t in range(n, len(ids))])


def policy_logits(case, base, p, s, mode):
    c = base["c"]
    T, n = len(s["ids"]), s["prompt_len"]
    if case["kind"] == "lora":
        flags = A.row_flags(T, n, mode)
        scale = case["alpha"] / case["r"]

        def lora(name, v):
            ka = "base_model.model.%s.lora_A.weight" % name
            if ka not in p:
                return None
            return scale * ((v @ p[ka].T) @ p["base_model.model.%s.lora_B.weight" % name].T) * flags[:, None]
        return M.forward(c, base["w64"], s["ids"], lora=lora)
    slots = A.reft_slot_positions(case["positions"], n, T, mode, case["share"])
    masks = {}
    for S, pos in slots.items():
        mk = torch.zeros(T, dtype=torch.bool)
        mk[pos] = True
        masks[S] = mk[:, None]

    def resid(l, x):
        if l not in case["layers"]:
            return x
        out = x
        for S, mk in masks.items():
            out = torch.where(mk, A.reft_edit(case["kind"], p, l, S, x), out)
        return out
    return M.forward(c, base["w64"], s["ids"], resid=resid)


def build(out, data_dir, name):
    case = next(c for c in GR.ADAPTER_CASES if c["name"] == name)
    base = A.load_base(os.path.join(data_dir, "models"), case["base"])
    adir = os.path.join(data_dir, "grads", name, "adapter")
    fname = "adapter_model.safetensors" if case["kind"] == "lora" else "reft_model.safetensors"
    back = M.read_safetensors(os.path.join(adir, fname))
    order = sorted(back)
    samples = make_samples(base["c"]["vocab_size"], case["seed"] + 500)
    adv, equal = advantages(samples)
    g = torch.Generator().manual_seed(case["seed"] + 600)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    meta = {"base": case["base"], "adapter": "grads/%s/adapter" % name, "group": GROUP,
            "clip_eps": CLIP_EPS, "kl_coef": KL_COEF,
            "samples": samples, "advantages": adv, "equal_groups": equal,
            "tensors": [{"name": k, "shape": list(back[k].shape)} for k in order], "modes": {}}
    for mode in ("all", "prefill"):
        p = {k: torch.tensor(back[k], dtype=F64, requires_grad=True) for k in order}
        S = sum(1 for i in range(len(samples)) if counts(samples, i))
        loss = torch.zeros((), dtype=F64)
        kl_sum, n_tok, clipped = 0.0, 0, 0
        olds, refs = [], []
        for i, s in enumerate(samples):
            logp = completion_logp(policy_logits(case, base, p, s, mode), s)
            with torch.no_grad():
                ref = completion_logp(M.forward(base["c"], base["w64"], s["ids"]), s)
                old = logp.detach() + 0.25 * torch.randn(logp.shape, generator=g, dtype=F64)
            # stored as float32, as the engine reports them; the reference uses the rounded values
            old = torch.tensor(old.numpy().astype("float32"), dtype=F64)
            olds.append(old.tolist())
            refs.append(ref.tolist())
            if not counts(samples, i):
                continue
            ratio = torch.exp(logp - old)
            a = adv[i]
            pg = -torch.min(ratio * a, torch.clamp(ratio, 1 - CLIP_EPS, 1 + CLIP_EPS) * a)
            k3 = torch.exp(ref - logp) - (ref - logp) - 1
            loss = loss + (pg + KL_COEF * k3).mean() / S
            kl_sum += float(k3.sum())
            n_tok += len(k3)
            clipped += int(((ratio < 1 - CLIP_EPS) & (a < 0) | (ratio > 1 + CLIP_EPS) & (a > 0)).sum())
        loss.backward()
        grads = [p[k].grad if p[k].grad is not None else torch.zeros_like(p[k]) for k in order]
        if clipped == 0:
            fail("%s [%s]: no token clipped: the golden would not test the clip" % (name, mode))
        if all(float(gt.abs().max()) == 0 for gt in grads):
            fail("%s [%s]: all gradients zero" % (name, mode))
        fn = "grads_%s.f64" % mode
        with open(os.path.join(d, fn), "wb") as f:
            for gt in grads:
                f.write(gt.detach().numpy().astype("<f8").tobytes())
        meta["modes"][mode] = {"old_logp": olds, "ref_logp": refs, "loss": float(loss), "kl": kl_sum / n_tok,
                               "clipped": clipped, "tokens": n_tok, "grads": fn}
        print("%s [%s]: loss %.6f kl %.6f, %d/%d tokens clipped" % (name, mode, float(loss), kl_sum / n_tok,
                                                                     clipped, n_tok))
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(json.dumps(meta, sort_keys=True) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: /usr/bin/python3 tools/make_reference_grpo.py OUT_DIR\n")
        return 2
    torch.set_num_threads(1)
    out = sys.argv[1]
    data_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out, exist_ok=True)
    for name in CASES:
        build(out, data_dir, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
