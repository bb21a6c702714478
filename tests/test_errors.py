"""Every exception class medopt defines belongs to the MedoptError family, so the CLI reports it as one line.

Read from the source with ``ast`` (importing every module would pull in kserve, Ray and Flower): a class is an
exception when its bases lead to a builtin exception; it must lead through ``MedoptError``. Private classes
(a leading underscore, e.g. control flow inside one module) are exempt.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "medopt"


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def exception_classes() -> dict[str, tuple[str, list[str]]]:
    """Class name -> (where it is defined, its base names), for every class under ``src/medopt``."""
    classes: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                where = f"{path.relative_to(SRC.parent)}:{node.lineno}"
                classes[f"{where}:{node.name}"] = (node.name, [_base_name(b) for b in node.bases])
    return classes


def _ancestors(name: str, bases_of: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> set[str]:
    found = set()
    for base in bases_of.get(name, []):
        if base not in seen:
            found |= {base} | _ancestors(base, bases_of, seen | {name})
    return found


def _is_builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException) and not issubclass(value, Warning)


def test_every_medopt_exception_is_a_medopt_error() -> None:
    classes = exception_classes()
    bases_of: dict[str, list[str]] = {}
    for name, bases in classes.values():
        bases_of.setdefault(name, []).extend(bases)
    outside = []
    for where, (name, _) in classes.items():
        ancestors = _ancestors(name, bases_of)
        is_exception = any(_is_builtin_exception(a) for a in ancestors)
        warns = any(isinstance(getattr(builtins, a, None), type) and issubclass(getattr(builtins, a), Warning)
                    for a in ancestors)
        if is_exception and not warns and name != "MedoptError" and not name.startswith("_") \
                and "MedoptError" not in ancestors:
            outside.append(where)
    assert not outside, "exceptions outside the MedoptError family:\n" + "\n".join(outside)


def test_the_family_keeps_builtin_second_bases() -> None:
    from medopt.config import ConfigError
    from medopt.errors import MedoptError
    from medopt.registry import UnknownNameError
    from medopt.store.base import ArtifactNotFound, StoreError

    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, MedoptError)
    assert issubclass(ArtifactNotFound, KeyError) and issubclass(StoreError, RuntimeError)
    assert str(UnknownNameError("unknown model 'x'")) == "unknown model 'x'"  # KeyError's quotes stay off
