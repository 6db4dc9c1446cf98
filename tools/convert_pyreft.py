#!/usr/bin/python3
"""convert_pyreft.py - a pyreft save directory -> a preft ReFT directory.

Usage
    /usr/bin/python3 tools/convert_pyreft.py PYREFT_DIR OUT_DIR --positions f7+l7
        [--mode prefill|all] [--base NAME] [--force]
    /usr/bin/python3 tools/convert_pyreft.py --self-test

    PYREFT_DIR is what pyreft's ReftModel.save(dir) writes (pyvene's
    IntervenableModel.save): config.json plus one torch state dict
    intkey_<key>.bin per intervention. --positions is the position spec the
    model was trained with (pyreft keeps it with the data, not in the save):
    "fA+lB", "fA" or "lB". OUT_DIR gets reft_config.json and
    reft_model.safetensors (F32) as docs/REFT_FORMAT.md specifies; an
    existing non-empty OUT_DIR is refused unless --force.

    Needs torch (to unpickle the .bin state dicts); the self-test needs
    nothing else.

What pyreft writes (read from pyreft 0.0.8+ / pyvene 0.1.x sources)
    config.json  transformers PretrainedConfig JSON with
        "representations": one entry per intervention, a list (a
            serialised RepresentationConfig namedtuple: layer, component,
            unit, max_number_of_units, low_rank_dimension, ...) or a dict;
        "intervention_types": one "<class 'pyreft.interventions.XIntervention'>"
            string per intervention, same order;
        "sorted_keys": the intervention keys, same order.
    intervention key: "layer_<L>_comp_<component>_unit_<unit>_nunit_<n>#<k>"
        (older pyvene: "layer.<L>.comp.<component>.unit.<unit>.nunit.<n>#<k>";
        a string component such as "model.layers[3].output" gives
        "comp_model_layers[3]_output_unit_pos_nunit_1#<k>"), k counting the
        earlier representations with the same key.
    intkey_<key>.bin  torch.save(intervention.state_dict()):
        LoreftIntervention (its own state_dict): "weight" [r, D], "bias" [r]
            (learned_source), "rotate_layer" [D, r] (the orthogonal weight);
            a plain nn.Module state dict ("learned_source.weight",
            "learned_source.bias", "rotate_layer.parametrizations.weight.
            original" [D, r], "rotate_layer.parametrizations.weight.0.base"
            [D, D]) is also accepted.
        DireftIntervention (nn.Module state dict): learned_source.{weight,bias}
            and the rotate_layer parametrization tensors above: W2 is the
            orthogonal weight, evaluated here by torch's own
            parametrization.
        NoreftIntervention: learned_source.{weight,bias}, proj_layer.weight
            [r, D], proj_layer.bias [r] when trained with add_bias.
        NodireftIntervention: learned_source.{weight,bias}, proj_layer.weight
            [r, D] (+ proj_layer.bias, which its forward never reads).
    forward (pyreft/interventions.py), R = rotate_layer.weight^T [r, D]:
        LoReFT   h + (W h + b - R h) R          -> preft loreft, rotate = R
        DiReFT   h + (W h + b) R                -> preft direft, proj_up = R
        NoReFT   h + (W h + b - (P h + c)) P    -> preft loreft, rotate = P,
                                                   bias = b - c (exact; P
                                                   is not orthonormal)
        NodiReFT h + (W h + b) P                -> preft direft, proj_up = P;
                                                   proj_layer.bias dropped
                                                   (unused by pyreft too)
    Other intervention types (ConsReFT, LobiReFT, ...) are refused.

Slots (pyreft's get_intervention_locations)
    The interventions, in representation order, get unit locations in that
    order. With "fA+lB" and share_weights false pyreft duplicates the layer
    list (layers += layers): the first half of the interventions get the
    first positions (slot "first"), the second half the last ones (slot
    "last"); each layer must appear once in each half. With one
    intervention per layer, both position sets use it (slot "shared",
    share_weights true); "fA" alone becomes "fA+l0", "lB" "f0+lB".

Assumptions the save cannot confirm
    - act_fn was None/"linear" (pyreft's default; the activation is not
      saved anywhere). preft's ReFT has no activation.
    - dropout is irrelevant at inference.
    - component "block_output" (or "model.layers[L].output") is the
      decoder layer's output, i.e. preft's intervention point; other
      components are refused.
"""

import argparse
import collections
import json
import os
import re
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_models as M  # noqa: E402  (safetensors writer/reader)


class ConvertError(Exception):
    pass


SUPPORTED = {"LoreftIntervention": "loreft", "NoreftIntervention": "loreft",
             "DireftIntervention": "direft", "NodireftIntervention": "direft"}
REPR_FIELDS = ["layer", "component", "unit", "max_number_of_units", "low_rank_dimension"]


# ---------------------------------------------------------------------------
# Reading the pyreft directory
# ---------------------------------------------------------------------------

def parse_positions(spec):
    """pyreft position spec -> (first_n, last_n)."""
    m = re.fullmatch(r"f(\d+)\+l(\d+)", spec)
    if m:
        return int(m.group(1)), int(m.group(2)), True
    m = re.fullmatch(r"f(\d+)", spec)
    if m:
        return int(m.group(1)), 0, False
    m = re.fullmatch(r"l(\d+)", spec)
    if m:
        return 0, int(m.group(1)), False
    raise ConvertError("--positions %r: expected fA+lB, fA or lB (e.g. f7+l7)" % spec)


def repr_dict(i, rep):
    if isinstance(rep, dict):
        d = {k: rep.get(k) for k in REPR_FIELDS}
    elif isinstance(rep, list) and len(rep) >= 4:
        d = dict(zip(REPR_FIELDS, rep + [None] * 5))
    else:
        raise ConvertError("config.json: representations[%d] is neither a list nor a dict" % i)
    d["component"] = d["component"] if d["component"] is not None else "block_output"
    d["unit"] = d["unit"] if d["unit"] is not None else "pos"
    d["max_number_of_units"] = d["max_number_of_units"] or 1
    return d


def key_candidates(rep, counter):
    """pyvene's _get_representation_key, new and old spellings."""
    l, c, u, n = rep["layer"], rep["component"], rep["unit"], rep["max_number_of_units"]
    if "." in c:
        new = "comp_%s_unit_%s_nunit_%s" % (c.replace(".", "_"), u.replace(".", "_"), n)
        old = "comp.%s.unit.%s.nunit.%s" % (c, u, n)
    else:
        new = "layer_%s_comp_%s_unit_%s_nunit_%s" % (l, c, u.replace(".", "_"), n)
        old = "layer.%s.comp.%s.unit.%s.nunit.%s" % (l, c, u, n)
    k = counter[new]
    counter[new] += 1
    return ["%s#%d" % (new, k), "%s#%d" % (old, k)]


def block_output_layer(i, rep):
    c = rep["component"]
    if c == "block_output":
        if not isinstance(rep["layer"], int) or rep["layer"] < 0:
            raise ConvertError("representations[%d]: bad layer %r" % (i, rep["layer"]))
        return rep["layer"]
    m = re.fullmatch(r"(?:model\.)?(?:model\.)?layers\[(\d+)\]\.output", c)
    if m:
        return int(m.group(1))
    raise ConvertError("representations[%d]: component %r is not a decoder layer's output "
                       "(block_output); preft intervenes only there" % (i, c))


def type_name(s):
    m = re.search(r"(\w+Intervention)", str(s))
    return m.group(1) if m else str(s)


def load_state(path):
    try:
        sd = torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ConvertError("%s: cannot load torch state dict: %s" % (path, e))
    if not isinstance(sd, dict):
        raise ConvertError("%s: not a state dict" % path)
    return sd


def orthogonal_weight(sd, prefix, path):
    """The weight [D, r] of a module under torch's orthogonal
    parametrization, from its saved state dict tensors."""
    if prefix in sd:  # LoReFT's own state_dict stores the evaluated weight
        return sd[prefix].detach().to(torch.float64)
    orig = prefix + ".parametrizations.weight.original"
    base = prefix + ".parametrizations.weight.0.base"
    if orig not in sd:
        raise ConvertError("%s: missing %r (or %r)" % (path, prefix, orig))
    if base not in sd:
        raise ConvertError("%s: missing %r (orthogonal parametrization without "
                           "trivialization is not supported)" % (path, base))
    o = sd[orig].detach().to(torch.float32)
    holder = torch.nn.Module()
    holder.weight = torch.nn.Parameter(torch.empty(o.shape))
    torch.nn.init.orthogonal_(holder.weight)
    torch.nn.utils.parametrizations.orthogonal(holder)
    holder.load_state_dict({"parametrizations.weight.original": o,
                            "parametrizations.weight.0.base": sd[base].detach().to(torch.float32)})
    with torch.no_grad():
        return holder.weight.detach().to(torch.float64)


def get(sd, names, path):
    for n in names:
        if n in sd:
            return sd[n].detach().to(torch.float64)
    raise ConvertError("%s: missing tensor %s" % (path, " / ".join(repr(n) for n in names)))


def convert_one(tname, sd, path, r, log):
    """-> (preft reft_type, {suffix: float64 tensor [r, D] / [r]})."""
    W = get(sd, ["weight", "learned_source.weight"], path)
    b = get(sd, ["bias", "learned_source.bias"], path)
    if tname == "LoreftIntervention":
        R = orthogonal_weight(sd, "rotate_layer", path).T
        out = {"rotate": R, "weight": W, "bias": b}
    elif tname == "DireftIntervention":
        out = {"proj_down": W, "bias": b, "proj_up": orthogonal_weight(sd, "rotate_layer", path).T}
    elif tname == "NoreftIntervention":
        P = get(sd, ["proj_layer.weight"], path)
        if "proj_layer.bias" in sd:
            b = b - sd["proj_layer.bias"].detach().to(torch.float64)
            log("  %s: NoReFT proj_layer.bias folded into bias (b - c)" % os.path.basename(path))
        out = {"rotate": P, "weight": W, "bias": b}
    elif tname == "NodireftIntervention":
        if "proj_layer.bias" in sd:
            log("  %s: NodiReFT proj_layer.bias dropped (pyreft's forward never reads it)"
                % os.path.basename(path))
        out = {"proj_down": W, "bias": b, "proj_up": get(sd, ["proj_layer.weight"], path)}
    else:
        raise ConvertError("%s: intervention type %s is not supported (supported: %s)"
                           % (path, tname, ", ".join(sorted(SUPPORTED))))
    D = W.shape[1] if W.dim() == 2 else -1
    for k, t in out.items():
        want = (r,) if k == "bias" else (r, D)
        if tuple(t.shape) != want:
            raise ConvertError("%s: %s has shape %s, expected %s (r=%d)"
                               % (path, k, list(t.shape), list(want), r))
    return SUPPORTED[tname], out


def convert(src, dst, positions, mode="prefill", base=None, force=False, log=print):
    if mode not in ("prefill", "all"):
        raise ConvertError("--mode must be prefill or all, not %r" % mode)
    first_n, last_n, plus = parse_positions(positions)
    cfg_path = os.path.join(src, "config.json")
    if not os.path.isfile(cfg_path):
        raise ConvertError("%s: no config.json (not a pyreft/pyvene save directory)" % src)
    try:
        cfg = json.load(open(cfg_path))
    except ValueError as e:
        raise ConvertError("%s: %s" % (cfg_path, e))
    reps = cfg.get("representations")
    types = cfg.get("intervention_types")
    if not isinstance(reps, list) or not reps:
        raise ConvertError("%s: no representations" % cfg_path)
    if not isinstance(types, list) or len(types) != len(reps):
        raise ConvertError("%s: intervention_types must list one type per representation" % cfg_path)
    reps = [repr_dict(i, x) for i, x in enumerate(reps)]
    counter = collections.Counter()
    items = []  # (index, layer, type name, key, file)
    for i, rep in enumerate(reps):
        layer = block_output_layer(i, rep)
        if rep["unit"] != "pos" or int(rep["max_number_of_units"]) != 1:
            raise ConvertError("representations[%d]: unit %r x %s; only unit \"pos\" with one unit"
                               % (i, rep["unit"], rep["max_number_of_units"]))
        keys = key_candidates(rep, counter)
        f = next((os.path.join(src, "intkey_%s.bin" % k) for k in keys
                  if os.path.isfile(os.path.join(src, "intkey_%s.bin" % k))), None)
        if f is None:
            raise ConvertError("%s: missing intkey_%s.bin" % (src, keys[0]))
        sk = cfg.get("sorted_keys")
        if isinstance(sk, list) and len(sk) == len(reps) and sk[i] not in keys:
            raise ConvertError("%s: sorted_keys[%d] = %r, expected %r" % (cfg_path, i, sk[i], keys[0]))
        items.append((i, layer, type_name(types[i]), keys[0], f))

    kinds = set(SUPPORTED.get(t, t) for _, _, t, _, _ in items)
    for _, _, t, _, f in items:
        if t not in SUPPORTED:
            raise ConvertError("%s: intervention type %s is not supported (supported: %s)"
                               % (os.path.basename(f), t, ", ".join(sorted(SUPPORTED))))
    if len(kinds) != 1:
        raise ConvertError("mixed intervention types %s; a preft ReFT directory has one reft_type"
                           % sorted(set(t for _, _, t, _, _ in items)))

    # slots
    n = len(items)
    per_layer = collections.Counter(l for _, l, _, _, _ in items)
    if all(c == 1 for c in per_layer.values()):
        share = True
        slot_of = {i: "shared" for i, _, _, _, _ in items}
    elif all(c == 2 for c in per_layer.values()) and plus and first_n > 0 and last_n > 0:
        share = False
        halves = ([l for _, l, _, _, _ in items[: n // 2]], [l for _, l, _, _, _ in items[n // 2:]])
        if sorted(halves[0]) != sorted(set(halves[0])) or set(halves[0]) != set(halves[1]):
            raise ConvertError("interventions %s: the first half must hold each layer once "
                               "(slot first) and the second half each layer once (slot last), "
                               "as pyreft's layers += layers makes them"
                               % [l for _, l, _, _, _ in items])
        slot_of = {i: ("first" if i < n // 2 else "last") for i, _, _, _, _ in items}
    else:
        raise ConvertError("interventions per layer %s with positions %r: expected one per layer "
                           "(shared weights) or two per layer with fA+lB, A, B > 0 (first, last)"
                           % (dict(sorted(per_layer.items())), positions))

    tensors, rank = {}, None
    for i, layer, t, key, f in items:
        r = reps[i]["low_rank_dimension"]
        sd = load_state(f)
        if r is None:
            r = get(sd, ["weight", "learned_source.weight"], f).shape[0]
        kind, out = convert_one(t, sd, f, int(r), log)
        if rank is not None and r != rank:
            raise ConvertError("%s: rank %d differs from %d; preft uses one r" % (f, r, rank))
        rank = r
        for k, v in out.items():
            tensors["layers.%d.%s.%s" % (layer, slot_of[i], k)] = v.to(torch.float32).contiguous()
        log("  %s -> layers.%d.%s (%s -> %s)" % (os.path.basename(f), layer, slot_of[i], t, kind))
    dims = set(v.shape[-1] for k, v in tensors.items() if not k.endswith(".bias"))
    if len(dims) != 1:
        raise ConvertError("interventions disagree on the model width: %s" % sorted(dims))

    rcfg = {"base_model_name_or_path": base, "layers": sorted(per_layer), "mode": mode,
            "peft_type": "REFT", "positions": "f%d+l%d" % (first_n, last_n), "r": int(rank),
            "reft_type": kinds.pop(), "share_weights": share}
    if os.path.isdir(dst) and os.listdir(dst) and not force:
        raise ConvertError("%s exists and is not empty (use --force to overwrite)" % dst)
    os.makedirs(dst, exist_ok=True)
    with open(os.path.join(dst, "reft_config.json"), "w") as fh:
        fh.write(json.dumps(rcfg, indent=2, sort_keys=True) + "\n")
    M.write_safetensors(os.path.join(dst, "reft_model.safetensors"), tensors)
    log("wrote %s: %s r=%d layers %s positions %s share_weights %s mode %s, %d tensors"
        % (dst, rcfg["reft_type"], rank, rcfg["layers"], rcfg["positions"], share, mode, len(tensors)))
    return rcfg


# ---------------------------------------------------------------------------
# Self-test: fake pyreft saves with the layouts described above
# ---------------------------------------------------------------------------

class _LowRank(torch.nn.Module):
    """LowRankRotateLayer's layout: weight [D, r], forward x @ weight."""
    def __init__(self, D, r):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(D, r))
        torch.nn.init.orthogonal_(self.weight)


class _Fake(torch.nn.Module):
    """One intervention with pyreft's attribute names; `own_state_dict`
    mimics LoreftIntervention's state_dict override."""
    def __init__(self, kind, D, r, g, proj_bias=False, own_state_dict=None):
        super().__init__()
        self.kind = kind
        if kind in ("LoreftIntervention", "DireftIntervention"):
            self.rotate_layer = torch.nn.utils.parametrizations.orthogonal(_LowRank(D, r))
            with torch.no_grad():  # move away from the initial point, as training does
                # (training never changes the diagonal: the householder map
                # reads only its signs, through a non-differentiable cast)
                p = self.rotate_layer.parametrizations.weight
                p.original.add_(torch.randn(p.original.shape, generator=g).tril(-1) * 0.3)
        else:
            self.proj_layer = torch.nn.Linear(D, r, bias=proj_bias).to(torch.bfloat16)
        self.learned_source = torch.nn.Linear(D, r).to(torch.bfloat16)
        with torch.no_grad():
            for prm in self.parameters():
                if prm.dtype == torch.bfloat16:
                    prm.copy_(torch.randn(prm.shape, generator=g) * 0.2)
        self.own = kind == "LoreftIntervention" if own_state_dict is None else own_state_dict

    def state_dict(self, *args, **kwargs):
        if not self.own:
            return super().state_dict(*args, **kwargs)
        sd = collections.OrderedDict()
        for k, v in self.learned_source.state_dict().items():
            sd[k] = v
        sd["rotate_layer"] = self.rotate_layer.weight.data
        return sd

    def apply64(self, h):
        """pyreft's forward formulas in float64 (dropout off, act linear)."""
        W = self.learned_source.weight.detach().double()
        b = self.learned_source.bias.detach().double()
        src = h @ W.T + b
        if self.kind in ("LoreftIntervention", "DireftIntervention"):
            with torch.no_grad():
                Rt = self.rotate_layer.weight.detach().double()  # [D, r]
            if self.kind == "LoreftIntervention":
                return h + (src - h @ Rt) @ Rt.T
            return h + src @ Rt.T
        P = self.proj_layer.weight.detach().double()
        if self.kind == "NoreftIntervention":
            pb = self.proj_layer.bias.detach().double() if self.proj_layer.bias is not None else 0.0
            return h + (src - (h @ P.T + pb)) @ P
        return h + src @ P


def _preft_apply(kind, t, prefix, h):
    if kind == "loreft":
        R, W, b = t[prefix + "rotate"], t[prefix + "weight"], t[prefix + "bias"]
        return h + (h @ W.T + b - h @ R.T) @ R
    return h + (h @ t[prefix + "proj_down"].T + t[prefix + "bias"]) @ t[prefix + "proj_up"]


def _write_fake(d, reps, layer_list, kind, D, r, g, old_keys=False, component="block_output",
                **kw):
    """reps: list of _Fake; layer_list: their layers. Writes a pyreft save."""
    os.makedirs(d)
    counter = collections.Counter()
    keys, rep_cfg = [], []
    for mod, l in zip(reps, layer_list):
        rep = {"layer": l, "component": component, "unit": "pos", "max_number_of_units": 1}
        k = key_candidates(rep, counter)[1 if old_keys else 0]
        keys.append(k)
        torch.save(mod.state_dict(), os.path.join(d, "intkey_%s.bin" % k))
        # a serialised RepresentationConfig namedtuple (14 fields)
        rep_cfg.append([l, component, "pos", 1, r] + [None] * 9)
    cfg = {"intervention_constant_sources": [False] * len(reps),
           "intervention_dimensions": [D] * len(reps),
           "intervention_types": ["<class 'pyreft.interventions.%s'>" % m.kind for m in reps],
           "mode": "parallel",
           "model_type": "<class 'transformers.models.llama.modeling_llama.LlamaForCausalLM'>",
           "representations": rep_cfg, "sorted_keys": keys, "transformers_version": "4.45.2"}
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def self_test():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    D, r = 32, 4
    tmp = tempfile.mkdtemp(prefix="convert_pyreft_selftest_")
    quiet = lambda *a: None  # noqa: E731
    n_ok = 0
    try:
        cases = [
            # name, type, layers (repr order), positions, expect slots, extras
            ("loreft-f+l", "LoreftIntervention", [0, 1, 0, 1], "f3+l3", ["first", "first", "last", "last"], {}),
            ("loreft-old-keys", "LoreftIntervention", [2, 5, 2, 5], "f1+l2", ["first", "first", "last", "last"],
             {"old_keys": True}),
            ("loreft-plain-state-dict", "LoreftIntervention", [1], "f5+l5", ["shared"], {"own": False}),
            ("loreft-string-component", "LoreftIntervention", [3], "l4", ["shared"],
             {"component": "model.layers[3].output"}),
            ("direft-shared", "DireftIntervention", [1], "f5+l5", ["shared"], {}),
            ("direft-f+l", "DireftIntervention", [0, 0], "f2+l2", ["first", "last"], {}),
            ("noreft-bias", "NoreftIntervention", [0, 1], "f3", ["shared", "shared"], {"proj_bias": True}),
            ("nodireft-bias", "NodireftIntervention", [4], "f1+l1", ["shared"], {"proj_bias": True}),
        ]
        for name, kind, layers, pos, slots, ex in cases:
            mods = [_Fake(kind, D, r, g, proj_bias=ex.get("proj_bias", False),
                          own_state_dict=ex.get("own")) for _ in layers]
            # a string component carries the layer; pyvene leaves layer at its default 0
            layer_list = [0] * len(layers) if "component" in ex else layers
            src = os.path.join(tmp, name)
            _write_fake(src, mods, layer_list, kind, D, r, g, old_keys=ex.get("old_keys", False),
                        component=ex.get("component", "block_output"))
            dst = os.path.join(tmp, name + "-out")
            rc = convert(src, dst, pos, mode="prefill", base="tiny", log=quiet)
            back = M.read_safetensors(os.path.join(dst, "reft_model.safetensors"))
            back = {k: torch.from_numpy(v) for k, v in back.items()}
            want_kind = SUPPORTED[kind]
            want_names = set()
            for l, s in zip(layers, slots):
                for suf in (["rotate", "weight", "bias"] if want_kind == "loreft"
                            else ["proj_down", "bias", "proj_up"]):
                    want_names.add("layers.%d.%s.%s" % (l, s, suf))
            assert set(back) == want_names, (name, sorted(back), sorted(want_names))
            assert rc["reft_type"] == want_kind and rc["r"] == r, (name, rc)
            assert rc["layers"] == sorted(set(layers)), (name, rc)
            assert rc["share_weights"] == (slots[0] == "shared"), (name, rc)
            fA, lB, _ = parse_positions(pos)
            assert rc["positions"] == "f%d+l%d" % (fA, lB), (name, rc)
            h = torch.randn((6, D), generator=g, dtype=torch.float64) * 3
            for mod, l, s in zip(mods, layers, slots):
                want = mod.apply64(h)
                got = _preft_apply(want_kind, back, "layers.%d.%s." % (l, s), h)
                err = float((want - got).abs().max())
                # every value is an F32 (or BF16) value in both, so the two
                # float64 evaluations agree to rounding
                assert err < 1e-12 * float(want.abs().max()), (name, l, s, err)
                if kind in ("LoreftIntervention", "DireftIntervention"):
                    R = back["layers.%d.%s.%s" % (l, s, "rotate" if want_kind == "loreft" else "proj_up")]
                    assert float((R @ R.T - torch.eye(r, dtype=torch.float64)).abs().max()) < 1e-5
            cfg_back = json.load(open(os.path.join(dst, "reft_config.json")))
            assert cfg_back == rc
            n_ok += 1
            print("self-test %-26s ok: %s -> %s, slots %s" % (name, kind, want_kind, sorted(set(slots))))

        # refusals
        def refuse(name, kind, layers, pos, needle, mutate=None, **ex):
            mods = [_Fake(kind if kind in SUPPORTED else "LoreftIntervention", D, r, g) for _ in layers]
            for m in mods:
                m.kind = kind
            src = os.path.join(tmp, name)
            _write_fake(src, mods, layers, kind, D, r, g, **ex)
            if mutate:
                mutate(src)
            try:
                convert(src, os.path.join(tmp, name + "-out"), pos, log=quiet)
            except ConvertError as e:
                assert needle in str(e), (name, str(e))
                print("self-test %-26s ok: refused: %s" % (name, e.args[0].replace(tmp + os.sep, "")))
                return
            raise AssertionError("%s: not refused" % name)

        refuse("consreft", "ConsreftIntervention", [0], "f3+l3", "ConsreftIntervention")
        refuse("three-per-layer", "LoreftIntervention", [0, 0, 0], "f3+l3", "per layer")
        refuse("two-per-layer-no-plus", "LoreftIntervention", [0, 1, 0, 1], "f3", "per layer")
        refuse("bad-halves", "LoreftIntervention", [0, 0, 1, 1], "f3+l3", "first half")
        refuse("mlp-component", "LoreftIntervention", [0], "f3+l3", "mlp_output", component="mlp_output")
        refuse("bad-positions", "LoreftIntervention", [0], "f3+x2", "--positions")

        def drop_file(src):
            os.remove(os.path.join(src, sorted(f for f in os.listdir(src) if f.endswith(".bin"))[0]))
        refuse("missing-bin", "LoreftIntervention", [0, 1], "f3+l3", "missing intkey_", mutate=drop_file)

        def drop_rotate(src):
            f = os.path.join(src, [x for x in os.listdir(src) if x.endswith(".bin")][0])
            sd = torch.load(f)
            del sd["rotate_layer"]
            torch.save(sd, f)
        refuse("missing-rotate", "LoreftIntervention", [0], "f3+l3", "rotate_layer", mutate=drop_rotate)

        def mixed(src):
            p = os.path.join(src, "config.json")
            c = json.load(open(p))
            c["intervention_types"][1] = "<class 'pyreft.interventions.DireftIntervention'>"
            open(p, "w").write(json.dumps(c))
        refuse("mixed-types", "LoreftIntervention", [0, 1], "f3+l3", "mixed", mutate=mixed)

        # nothing a user saved is overwritten
        dst = os.path.join(tmp, "loreft-f+l-out")
        try:
            convert(os.path.join(tmp, "loreft-f+l"), dst, "f3+l3", log=quiet)
            raise AssertionError("non-empty OUT_DIR was overwritten")
        except ConvertError as e:
            assert "--force" in str(e)
        print("self-test %-26s ok" % "refuses-non-empty-out")
    finally:
        shutil.rmtree(tmp)
    print("self-test passed (%d conversions, 10 refusals)" % n_ok)
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description="Convert a pyreft save directory to preft's ReFT format.")
    ap.add_argument("src", nargs="?", help="pyreft save directory (config.json + intkey_*.bin)")
    ap.add_argument("dst", nargs="?", help="output directory")
    ap.add_argument("--positions", help="position spec used in training: fA+lB, fA or lB")
    ap.add_argument("--mode", default="prefill", choices=["prefill", "all"],
                    help="default serving mode written to reft_config.json (default prefill)")
    ap.add_argument("--base", default=None, help="base_model_name_or_path to record")
    ap.add_argument("--force", action="store_true", help="write into a non-empty OUT_DIR")
    ap.add_argument("--self-test", action="store_true", help="run the built-in self-test")
    a = ap.parse_args(argv)
    if a.self_test:
        return self_test()
    if not a.src or not a.dst or not a.positions:
        ap.error("PYREFT_DIR, OUT_DIR and --positions are required")
    try:
        convert(a.src, a.dst, a.positions, a.mode, a.base, a.force)
    except ConvertError as e:
        sys.stderr.write("convert_pyreft: error: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
