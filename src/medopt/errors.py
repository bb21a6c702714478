"""The root of medopt's error family, so that the command line can tell a user's mistake from a bug.

Every domain exception (bad config, missing artifact, unusable device, corrupt data file, ...) subclasses
``MedoptError``; the CLI prints such an error as one line and exits non-zero, while anything else is a bug and keeps
its traceback. Subclasses keep a builtin second base (``ValueError``, ``KeyError``, ...) where callers rely on it.
"""

from __future__ import annotations


class MedoptError(Exception):
    """A domain error whose message is one readable line for the user (what was wrong and, ideally, the fix)."""
