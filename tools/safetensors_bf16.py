#!/usr/bin/env python3
"""Rewrites a safetensors file's F32 tensors as BF16 (round to nearest even),
in place and atomically (temp file + rename). Standard library only.
Usage: safetensors_bf16.py FILE"""
import array
import json
import os
import struct
import sys


def to_bf16(raw):
    f = array.array("I")
    f.frombytes(raw)
    if sys.byteorder != "little":
        f.byteswap()
    out = array.array("H", ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 & 0xFFFF if (u & 0x7F800000) != 0x7F800000
                            else (u >> 16) | (0x40 if u & 0x7FFFFF else 0) for u in f))
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    with open(path, "rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(n))
        data = fh.read()
    meta = header.pop("__metadata__", None)
    new_header, chunks, offset = {}, [], 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, b = t["data_offsets"]
        raw = data[a:b]
        dtype = t["dtype"]
        if dtype == "F32":
            raw, dtype = to_bf16(raw), "BF16"
        new_header[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if meta is not None:
        new_header["__metadata__"] = meta
    hb = json.dumps(new_header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(hb)))
        fh.write(hb)
        for c in chunks:
            fh.write(c)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
