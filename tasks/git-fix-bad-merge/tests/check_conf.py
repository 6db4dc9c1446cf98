"""Parses an INI-style settings.conf into {section.key: value}."""
import sys

want = {
    "server.host": "127.0.0.1", "server.port": "8080", "server.workers": "4",
    "server.timeout": "30", "cache.enabled": "true", "cache.size_mb": "256",
    "log.level": "warning",
}
got, section = {}, ""
for raw in sys.stdin.read().splitlines():
    line = raw.split("#", 1)[0].strip()
    if not line:
        continue
    if line.startswith("[") and line.endswith("]"):
        section = line[1:-1].strip()
        continue
    if "=" not in line:
        sys.exit(f"unparsable line: {raw!r}")
    k, v = line.split("=", 1)
    key = f"{section}.{k.strip()}"
    if key in got:
        sys.exit(f"duplicate setting {key}")
    got[key] = v.strip()
if got != want:
    sys.exit(f"settings differ: got {got}, want {want}")
