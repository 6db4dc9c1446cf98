"""Semantic Versioning 2.0.0 versions.

parse("1.2.3-rc.1+build.5") -> Version(major=1, minor=2, patch=3,
                                      prerelease=("rc", "1"), build=("build", "5"))
Versions compare by SemVer precedence (==, <, >, sorted()); build metadata
is ignored when comparing. str(v) gives back the canonical string.
"""
import functools
import re

_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")


@functools.total_ordering
class Version:
    def __init__(self, major, minor, patch, prerelease=(), build=()):
        self.major, self.minor, self.patch = major, minor, patch
        self.prerelease = tuple(prerelease)
        self.build = tuple(build)

    def _key(self):
        return (str(self.major), str(self.minor), str(self.patch), self.prerelease)

    def __eq__(self, other):
        return self._key() == other._key() and self.build == other.build

    def __lt__(self, other):
        return self._key() < other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        s = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            s += "-" + ".".join(self.prerelease)
        if self.build:
            s += "+" + ".".join(self.build)
        return s

    def __repr__(self):
        return f"Version({str(self)!r})"


def parse(text):
    """Parses a SemVer 2.0.0 string; raises ValueError if it is not one."""
    m = _RE.match(text)
    if not m:
        raise ValueError(f"not a semantic version: {text!r}")
    major, minor, patch = (int(g) for g in m.group(1, 2, 3))
    pre = tuple(m.group(4).split(".")) if m.group(4) else ()
    build = tuple(m.group(5).split(".")) if m.group(5) else ()
    return Version(major, minor, patch, pre, build)


def sort_versions(texts):
    """Sorts version strings by precedence, lowest first (stable for equal ones)."""
    return sorted(texts, key=parse)


def max_version(texts):
    """The highest version string of a non-empty list."""
    return max(texts, key=parse)
