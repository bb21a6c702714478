"""The one error a request decoder raises, in a module of its own.

Why separate from ``codec.py``: the binary-tensor encoder (``binary.py``) is used by clients and the load generator,
which must not import the model registry (torch, timm) that ``codec.py`` pulls in through the model geometry.
"""

from __future__ import annotations

from medopt.errors import MedoptError


class CodecError(MedoptError, ValueError):
    """A request cannot be turned into a model input; the message is one line saying what was wrong."""
