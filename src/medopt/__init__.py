"""medopt: from medical images to a fast, cheap, private deployment.

Public API only; heavy modules (torch, timm, kfp, ray) load lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_config", "create_model"]

if TYPE_CHECKING:  # pragma: no cover
    from medopt.config import load_config
    from medopt.models import create_model


def __getattr__(name: str) -> Any:
    if name == "load_config":
        from medopt.config import load_config

        return load_config
    if name == "create_model":
        from medopt.models import create_model

        return create_model
    raise AttributeError(f"module 'medopt' has no attribute {name!r}")
