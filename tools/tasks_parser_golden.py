#!/usr/bin/env python3
"""tasks_parser_golden.py - golden files for the task-file readers
(src/tasks/toml.c, src/tasks/yaml.c): each tests/data/toml/*.toml is read
with Python's tomllib and each tests/data/yaml/*.yaml with PyYAML, and the
tree is written next to it as NAME.json in the tagged form of
preft_tv_to_json (every scalar {"type", "value"}, integers as decimal
strings). Also checks that the reference parsers reject every file under
bad/ that is malformed TOML or YAML (files that are valid but outside
preft's subset are listed in SUBSET_ONLY). Usage: /usr/bin/python3 tools/tasks_parser_golden.py"""
import glob, json, math, os, tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
SUBSET_ONLY = {"date.toml", "overflow.toml", "time.toml", "nul_escape.toml", "deep.toml", "anchor.yaml", "alias.yaml",
               "flow_map.yaml", "dup.yaml", "two_docs.yaml", "directive.yaml", "tab.yaml"}


def tag(v):
    if isinstance(v, dict):
        return {k: tag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [tag(x) for x in v]
    if isinstance(v, bool):
        return {"type": "bool", "value": v}
    if isinstance(v, int):
        return {"type": "integer", "value": str(v)}
    if isinstance(v, float):
        if math.isnan(v):
            return {"type": "float", "value": "nan"}
        if math.isinf(v):
            return {"type": "float", "value": "inf" if v > 0 else "-inf"}
        return {"type": "float", "value": v}
    if v is None:
        return {"type": "null", "value": None}
    return {"type": "string", "value": v}


def write(path, tree):
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(tag(tree), f, indent=1, ensure_ascii=False)
        f.write("\n")


for p in sorted(glob.glob(os.path.join(DATA, "toml", "*.toml"))):
    with open(p, "rb") as f:
        write(p, tomllib.load(f))
for p in sorted(glob.glob(os.path.join(DATA, "yaml", "*.yaml"))):
    with open(p, "rb") as f:
        write(p, yaml.safe_load(f))
for p in sorted(glob.glob(os.path.join(DATA, "toml", "bad", "*.toml")) +
                glob.glob(os.path.join(DATA, "yaml", "bad", "*.yaml"))):
    name = os.path.basename(p)
    if name in SUBSET_ONLY:
        continue
    try:
        with open(p, "rb") as f:
            tomllib.load(f) if p.endswith(".toml") else yaml.safe_load(f)
    except Exception:
        continue
    raise SystemExit(f"{p}: the reference parser accepts it, so it is not a malformed-file test")
print("ok")
