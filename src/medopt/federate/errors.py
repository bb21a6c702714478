"""The federate stage's exception: bad parameters, clients or rounds, named precisely."""

from __future__ import annotations

from medopt.errors import MedoptError


class FederateError(MedoptError, ValueError):
    """Invalid federated input: parameter lists that do not match the model, empty rounds, unusable clients."""
