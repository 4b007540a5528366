"""mimlkit: multi-instance multi-label learning.

``import mimlkit`` is light: it never imports torch. Deep parts load on first use; parts
that need an optional dependency group raise ``mimlkit.MissingExtraError`` naming it.
"""

from mimlkit._extras import MissingExtraError
from mimlkit.bags import Bags, as_bags


def _version() -> str:
    """The installed distribution's version (one source: pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mimlkit")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()

__all__ = ["Bags", "as_bags", "MissingExtraError", "__version__"]
