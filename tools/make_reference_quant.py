#!/usr/bin/python3
"""Golden files for preft's quantized formats (src/tensor/quant.h).

    /usr/bin/python3 tools/make_reference_quant.py GGUF_PY_DIR tests/data/quant

GGUF_PY_DIR is llama.cpp's gguf-py folder (the one holding gguf/quants.py).
Only gguf/quants.py and what it imports (constants.py, lazy.py) are loaded,
not the package's __init__, so no other dependency is needed. Needs numpy.

Writes OUT/golden.bin (format below), read by tests/unit/test_quant_golden.c:

  input              f32 [4, 512] random rows: mixed magnitudes per block,
                     an all-zero block, a constant block, tiny values,
                     exact rounding ties for Q8_0
  <t>.bytes          u8   the rows quantized to t
  <t>.dequant        f32  gguf-py's dequantization of <t>.bytes
  <t>.rand_bytes     u8   random blocks (random bytes, finite fp16 scales)
  <t>.rand_dequant   f32  gguf-py's dequantization of <t>.rand_bytes

for t in q8_0, q4_0, q5_0 (gguf-py's numpy quantizers, which reproduce
ggml's quantize_row_*_ref) and q4_k, q6_k. gguf-py has no K-quant
quantizer: <t>.bytes for q4_k and q6_k come from this script's own float32
port of ggml's quantize_row_q4_K_ref (make_qkx2_quants) and
quantize_row_q6_K_ref (make_qx_quants, rmse_type 1), written from ggml's
algorithm with every operation rounded to float32 in ggml's order; their
dequantization is still gguf-py's.

File format: 8 bytes "PFTQGLD1", then records: u8 name length, name,
u8 kind (0 f32, 1 u8), u32 count (little-endian), count elements.
Deterministic: the same bytes on every run.
"""
import importlib
import importlib.util
import os
import struct
import sys

import numpy as np

F = np.float32


def load_quants(gguf_py):
    pkg_dir = os.path.join(gguf_py, "gguf")
    if not os.path.isfile(os.path.join(pkg_dir, "quants.py")):
        sys.exit(f"make_reference_quant: {pkg_dir}/quants.py not found (pass llama.cpp's gguf-py folder)")
    spec = importlib.util.spec_from_file_location("gguf", os.path.join(pkg_dir, "__init__.py"),
                                                  submodule_search_locations=[pkg_dir])
    sys.modules["gguf"] = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
    return importlib.import_module("gguf.quants")


# ---- ggml's K-quant reference quantizers, float32 step by step ----

def nearest_int(v):
    """ggml's nearest_int: round half to even through the float adder."""
    s = np.array([F(v) + F(12582912.0)], dtype=np.float32).view(np.int32)[0]
    return int((int(s) & 0x007FFFFF) - 0x00400000)


def fp16_round(v):
    """(fp16 bits, value) of a float32 rounded to fp16, nearest even."""
    h = np.array([F(v)], dtype=np.float32).astype(np.float16)
    return int(h.view(np.uint16)[0]), F(h[0])


def make_qkx2_quants(n, nmax, x, weights, rmin, rdelta, nstep):
    mn, mx = x[0], x[0]
    sum_w = weights[0]
    sum_x = F(sum_w * x[0])
    for i in range(1, n):
        if x[i] < mn:
            mn = x[i]
        if x[i] > mx:
            mx = x[i]
        w = weights[i]
        sum_w = F(sum_w + w)
        sum_x = F(sum_x + F(w * x[i]))
    if mn > 0:
        mn = F(0)
    if mx == mn:
        return F(0), F(-mn), [0] * n
    iscale = F(F(nmax) / F(mx - mn))
    scale = F(F(1) / iscale)
    L = [0] * n
    best_error = F(0)
    for i in range(n):
        l = nearest_int(F(iscale * F(x[i] - mn)))
        L[i] = max(0, min(nmax, l))
        diff = F(F(F(scale * F(L[i])) + mn) - x[i])
        diff = F(diff * diff)
        best_error = F(best_error + F(weights[i] * diff))
    for step in range(nstep + 1):
        iscale = F(F(F(F(rmin) + F(F(rdelta) * F(step))) + F(nmax)) / F(mx - mn))
        sum_l = sum_l2 = sum_xl = F(0)
        Laux = [0] * n
        for i in range(n):
            l = nearest_int(F(iscale * F(x[i] - mn)))
            l = max(0, min(nmax, l))
            Laux[i] = l
            w = weights[i]
            sum_l = F(sum_l + F(w * F(l)))
            sum_l2 = F(sum_l2 + F(F(w * F(l)) * F(l)))
            sum_xl = F(sum_xl + F(F(w * F(l)) * x[i]))
        D = F(F(sum_w * sum_l2) - F(sum_l * sum_l))
        if D > 0:
            this_scale = F(F(F(sum_w * sum_xl) - F(sum_x * sum_l)) / D)
            this_min = F(F(F(sum_l2 * sum_x) - F(sum_l * sum_xl)) / D)
            if this_min > 0:
                this_min = F(0)
                this_scale = F(sum_xl / sum_l2)
            cur_error = F(0)
            for i in range(n):
                diff = F(F(F(this_scale * F(Laux[i])) + this_min) - x[i])
                diff = F(diff * diff)
                cur_error = F(cur_error + F(weights[i] * diff))
            if cur_error < best_error:
                L = list(Laux)
                best_error = cur_error
                scale = this_scale
                mn = this_min
    return scale, F(-mn), L


def get_scale_min(j, q):
    if j < 4:
        return q[j] & 63, q[j + 4] & 63
    return (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4)


def quantize_q4_K_block(x):
    scales, mins, L = [F(0)] * 8, [F(0)] * 8, [0] * 256
    max_scale = max_min = F(0)
    for j in range(8):
        xs = x[32 * j:32 * j + 32]
        sum_x2 = F(0)
        for v in xs:
            sum_x2 = F(sum_x2 + F(v * v))
        av_x = F(np.sqrt(F(sum_x2 / F(32))))
        weights = [F(av_x + F(abs(v))) for v in xs]
        scales[j], mins[j], Lj = make_qkx2_quants(32, 15, xs, weights, -1.0, 0.1, 20)
        L[32 * j:32 * j + 32] = Lj
        if scales[j] > max_scale:
            max_scale = scales[j]
        if mins[j] > max_min:
            max_min = mins[j]
    inv_scale = F(F(63) / max_scale) if max_scale > 0 else F(0)
    inv_min = F(F(63) / max_min) if max_min > 0 else F(0)
    sc = [0] * 12
    for j in range(8):
        ls = min(63, nearest_int(F(inv_scale * scales[j])) & 0xFF)
        lm = min(63, nearest_int(F(inv_min * mins[j])) & 0xFF)
        if j < 4:
            sc[j] = ls
            sc[j + 4] = lm
        else:
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
            sc[j - 4] |= (ls >> 4) << 6
            sc[j] |= (lm >> 4) << 6
    dbits, dval = fp16_round(F(max_scale / F(63)))
    mbits, mval = fp16_round(F(max_min / F(63)))
    for j in range(8):
        s, m = get_scale_min(j, sc)
        d = F(dval * F(s))
        if d == 0:
            continue
        dm = F(mval * F(m))
        for ii in range(32):
            l = nearest_int(F(F(x[32 * j + ii] + dm) / d))
            L[32 * j + ii] = max(0, min(15, l))
    qs = []
    for j in range(0, 256, 64):
        qs += [L[j + l] | (L[j + l + 32] << 4) for l in range(32)]
    return struct.pack("<HH", dbits, mbits) + bytes(sc) + bytes(qs)


def make_qx_quants(n, nmax, x):
    mx = amax = F(0)
    for v in x:
        if F(abs(v)) > amax:
            amax, mx = F(abs(v)), v
    if amax < F(1e-15):
        return F(0), [0] * n
    iscale = F(F(-nmax) / mx)
    sumlx = suml2 = F(0)
    L = [0] * n
    for i in range(n):
        l = max(-nmax, min(nmax - 1, nearest_int(F(iscale * x[i]))))
        L[i] = l + nmax
        w = F(x[i] * x[i])
        sumlx = F(sumlx + F(F(w * x[i]) * F(l)))
        suml2 = F(suml2 + F(F(w * F(l)) * F(l)))
    scale = F(sumlx / suml2) if suml2 != 0 else F(0)
    best = F(scale * sumlx)
    for step in range(-9, 10):
        if step == 0:
            continue
        iscale = F(F(-F(F(nmax) + F(F(0.1) * F(step)))) / mx)
        sumlx = suml2 = F(0)
        for i in range(n):
            l = max(-nmax, min(nmax - 1, nearest_int(F(iscale * x[i]))))
            w = F(x[i] * x[i])
            sumlx = F(sumlx + F(F(w * x[i]) * F(l)))
            suml2 = F(suml2 + F(F(w * F(l)) * F(l)))
        if suml2 > 0 and F(sumlx * sumlx) > F(best * suml2):
            for i in range(n):
                L[i] = nmax + max(-nmax, min(nmax - 1, nearest_int(F(iscale * x[i]))))
            scale = F(sumlx / suml2)
            best = F(scale * sumlx)
    return scale, L


def quantize_q6_K_block(x):
    L = [0] * 256
    scales = [F(0)] * 16
    max_scale = max_abs = F(0)
    for ib in range(16):
        scales[ib], L[16 * ib:16 * ib + 16] = make_qx_quants(16, 32, x[16 * ib:16 * ib + 16])
        if F(abs(scales[ib])) > max_abs:
            max_abs, max_scale = F(abs(scales[ib])), scales[ib]
    if max_abs < F(1e-15):
        return bytes(210)
    iscale = F(F(-128) / max_scale)
    dbits, dval = fp16_round(F(F(1) / iscale))
    sc = [min(127, nearest_int(F(iscale * s))) for s in scales]
    for j in range(16):
        d = F(dval * F(sc[j]))
        if d == 0:
            continue
        for ii in range(16):
            l = max(-32, min(31, nearest_int(F(x[16 * j + ii] / d))))
            L[16 * j + ii] = l + 32
    ql, qh = [0] * 128, [0] * 64
    for j in range(0, 256, 128):
        for l in range(32):
            q1, q2, q3, q4 = (L[j + l + o] & 0xF for o in (0, 32, 64, 96))
            ql[j // 2 + l] = q1 | (q3 << 4)
            ql[j // 2 + l + 32] = q2 | (q4 << 4)
            qh[j // 4 + l] = ((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                              ((L[j + l + 96] >> 4) << 6))
    return bytes(ql) + bytes(qh) + struct.pack("<16b", *sc) + struct.pack("<H", dbits)


def quantize_k(rows, block_fn):
    out = b""
    for row in rows:
        for b in range(0, len(row), 256):
            out += block_fn([F(v) for v in row[b:b + 256]])
    return np.frombuffer(out, dtype=np.uint8).reshape(len(rows), -1)


# ---- data ----

def make_input(rng):
    rows, k = 4, 512
    x = np.empty((rows, k), dtype=np.float32)
    for r in range(rows):
        for b in range(k // 32):
            scale = 10.0 ** rng.uniform(-3, 1)
            blk = rng.standard_normal(32) * scale
            if rng.uniform() < 0.2:
                blk += rng.uniform(-2, 2) * scale  # an offset: K-quant mins matter
            x[r, 32 * b:32 * b + 32] = blk
    x[0, 32:64] = 0                             # an all-zero block
    x[1, 64:96] = 0.75                          # a constant block
    x[2, 0:32] = rng.standard_normal(32) * 1e-6  # tiny values
    # exact ties for Q8_0: amax 127 gives d = 1, x/d = ±k.5 rounds away from zero
    x[3, 0:32] = np.array([127.0] + [(-1) ** i * (i + 0.5) for i in range(31)], dtype=np.float32)
    return x


def random_blocks(rng, type_size, n, d_offsets):
    """n random blocks whose fp16 fields (at d_offsets) hold finite values."""
    b = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    for off in d_offsets:
        d = (rng.uniform(-1, 1, size=n) * 10.0 ** rng.uniform(-4, 0, size=n)).astype(np.float16)
        b[:, off:off + 2] = d.view(np.uint8).reshape(n, 2)
    return b


def write_golden(path, records):
    out = bytearray(b"PFTQGLD1")
    for name, arr in records:
        kind = 0 if arr.dtype == np.float32 else 1
        assert arr.dtype in (np.float32, np.uint8)
        nb = name.encode()
        out += struct.pack("<B", len(nb)) + nb + struct.pack("<BI", kind, arr.size)
        out += np.ascontiguousarray(arr).astype("<f4" if kind == 0 else "u1").tobytes()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(out)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    q = load_quants(sys.argv[1])
    T = q.GGMLQuantizationType
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20261203)
    x = make_input(rng)
    records = [("input", x)]
    types = [("q8_0", T.Q8_0, [0]), ("q4_0", T.Q4_0, [0]), ("q5_0", T.Q5_0, [0]),
             ("q4_k", T.Q4_K, [0, 2]), ("q6_k", T.Q6_K, [208])]
    for name, t, d_offsets in types:
        if name == "q4_k":
            qb = quantize_k(x, quantize_q4_K_block)
        elif name == "q6_k":
            qb = quantize_k(x, quantize_q6_K_block)
        else:
            qb = q.quantize(x, t)
        deq = q.dequantize(qb, t).astype(np.float32)
        # a sanity check of the quantizers: the values come back close
        err = np.abs(deq - x).max(axis=1) / np.abs(x).max(axis=1)
        assert err.max() < 0.15, (name, err)
        records += [(name + ".bytes", qb.reshape(-1)), (name + ".dequant", deq.reshape(-1))]
        block, type_size = q.GGML_QUANT_SIZES[t]
        rb = random_blocks(rng, type_size, 8 if block == 32 else 4, d_offsets)
        rd = q.dequantize(rb.reshape(1, -1), t).astype(np.float32)
        records += [(name + ".rand_bytes", rb.reshape(-1)), (name + ".rand_dequant", rd.reshape(-1))]
    write_golden(os.path.join(out_dir, "golden.bin"), records)
    print(f"wrote {out_dir}/golden.bin ({len(records)} records)")


if __name__ == "__main__":
    main()
