#!/usr/bin/env bash
# Reference solution: tell each file's encoding from its bytes (a BOM,
# valid UTF-8, CR-only line ends of an old Mac, C1 bytes that only
# Windows-1252 uses as text, else ISO-8859-1), then decode, normalize line
# ends and write UTF-8.
set -euo pipefail
mkdir -p /app/clean
python3 - <<'PY'
import glob, os
for path in sorted(glob.glob("/app/inbox/*.txt")):
    raw = open(path, "rb").read()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        enc = "utf-16"
    elif raw[:3] == b"\xef\xbb\xbf":
        enc = "utf-8-sig"
    else:
        try:
            raw.decode("utf-8")
            enc = "utf-8"
        except UnicodeDecodeError:
            if b"\r" in raw and b"\n" not in raw:
                enc = "mac_roman"
            elif any(0x80 <= b <= 0x9F for b in raw):
                enc = "cp1252"
            else:
                enc = "latin-1"
    text = raw.decode(enc).replace("\r\n", "\n").replace("\r", "\n")
    text = text.rstrip("\n") + "\n"
    out = os.path.join("/app/clean", os.path.basename(path))
    with open(out + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(out + ".tmp", out)
    print(os.path.basename(path), enc)
PY
