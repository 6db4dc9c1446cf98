#!/usr/bin/env bash
# Reference solution: a strict regex (no leading zeros, no empty
# identifiers) and a precedence key that follows SemVer 2.0.0 section 11.
set -euo pipefail
cd /app
python3 - <<'PY'
p = "semverlib/semver.py"
s = open(p).read()
s = s.replace(
    '_RE = re.compile(r"^(\\d+)\\.(\\d+)\\.(\\d+)(?:-([0-9A-Za-z.-]+))?(?:\\+([0-9A-Za-z.-]+))?$")',
    '_NUM = r"(?:0|[1-9]\\d*)"\n'
    '_PRE_ID = r"(?:0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)"\n'
    '_BUILD_ID = r"[0-9A-Za-z-]+"\n'
    '_RE = re.compile(\n'
    '    rf"^({_NUM})\\.({_NUM})\\.({_NUM})"\n'
    '    rf"(?:-({_PRE_ID}(?:\\.{_PRE_ID})*))?"\n'
    '    rf"(?:\\+({_BUILD_ID}(?:\\.{_BUILD_ID})*))?$"\n'
    ')\n\n\n'
    'def _pre_key(pre):\n'
    '    """Release (no pre-release) sorts after every pre-release; identifiers\n'
    '    compare numerically when numeric, numeric below alphanumeric."""\n'
    '    if not pre:\n'
    '        return (1,)\n'
    '    return (0, tuple((0, int(i), "") if i.isdigit() else (1, 0, i) for i in pre))')
s = s.replace("return (str(self.major), str(self.minor), str(self.patch), self.prerelease)",
              "return (self.major, self.minor, self.patch, _pre_key(self.prerelease))")
s = s.replace("return self._key() == other._key() and self.build == other.build",
              "return self._key() == other._key()")
s = s.replace("m = _RE.match(text)", "m = _RE.fullmatch(text) if isinstance(text, str) else None")
open(p, "w").write(s)
PY
python3 -m unittest discover -s tests
