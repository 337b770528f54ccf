"""The models' parameter ranges, written once: in the annotations of their ``__init__``.

A parameter annotated with a constrained type (``PositiveInt``, :data:`Share`, …) is checked
against it by :func:`check_params` when the model is fitted, and by the training configuration
(:mod:`nbo.pipelines.config`) when a file is read, from the same annotation. ``__init__`` itself
only stores the values, as scikit-learn's conventions ask.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from sklearn.base import BaseEstimator

__all__ = ["LeafNodes", "Share", "check_params", "init_hints", "sub_estimator"]

Share = Annotated[float, Field(gt=0, le=1)]
"""A share in (0, 1]."""
LeafNodes = Annotated[int, Field(ge=2)]
"""Leaves of a tree: at least two."""

_ADAPTERS: dict[type, dict[str, TypeAdapter[Any]]] = {}


def init_hints(estimator: type[BaseEstimator]) -> dict[str, Any]:
    """The annotations of ``estimator.__init__``'s parameters, constraints included."""
    hints = typing.get_type_hints(estimator.__init__, include_extras=True)
    hints.pop("return", None)
    return hints


def sub_estimator(annotation: Any) -> type[BaseEstimator] | None:
    """The estimator class of a parameter annotated ``SomeEstimator | None``, if it is one."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    for option in (annotation, *options):
        if isinstance(option, type) and issubclass(option, BaseEstimator):
            return option
    return None


def check_params(estimator: BaseEstimator) -> None:
    """Raise ``ValueError`` naming each parameter outside what its annotation allows.

    Lenient about the kind of number (NumPy integers, ``3.0`` for an int pass), strict about
    the range. Sub-estimators check their own parameters when they are fitted.
    """
    kind = type(estimator)
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = {
            name: TypeAdapter(hint)
            for name, hint in init_hints(kind).items()
            if sub_estimator(hint) is None
        }
    problems = []
    for name, adapter in _ADAPTERS[kind].items():
        value = getattr(estimator, name)
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            problems.append(f"{name}: {exc.errors()[0]['msg']} (got {value!r})")
    if problems:
        raise ValueError(f"{kind.__name__}: {'; '.join(problems)}")
