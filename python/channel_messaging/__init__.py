"""The web's Channel Messaging API for Python threads (bindings in progress)."""

from ._native import __version__

__all__ = ["__version__"]
