"""mimlkit: multi-instance multi-label learning.

``import mimlkit`` is light: it never imports torch. Deep parts load on first use.
"""

from mimlkit.bags import Bags, as_bags

__version__ = "0.1.0"

__all__ = ["Bags", "as_bags", "__version__"]
