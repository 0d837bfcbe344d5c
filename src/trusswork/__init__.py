"""trusswork: platform systems with compiled hot paths behind typed Python APIs.

Importing ``trusswork`` loads nothing but this module; each subpackage
(``trusswork.core``, ``trusswork.storage``, ...) is imported on first use,
so ``import trusswork`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
