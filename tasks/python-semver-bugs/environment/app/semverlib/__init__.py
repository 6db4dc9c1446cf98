from .semver import Version, parse, max_version, sort_versions  # noqa: F401
