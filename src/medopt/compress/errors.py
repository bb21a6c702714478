"""Exceptions of the compress stage; all are ValueErrors whose message names what was wrong."""

from __future__ import annotations

from medopt.errors import MedoptError


class CompressError(MedoptError, ValueError):
    """A compression step cannot run as configured (bad ratio, model, file or input)."""


class OnnxAgreementError(CompressError):
    """An exported ONNX model disagrees with its PyTorch source beyond the tolerance."""
