"""Training configuration as data: every model's hyperparameters and the evaluation, from YAML.

Each model's section is generated from its estimator's ``__init__`` signature (names, types,
defaults), so a default lives in one place, the estimator, and a new parameter is configurable
the moment it exists. A parameter that is itself an estimator (``ProductAffinity.cf``) gets a
nested section generated the same way. Types are strict: ``n_rankers: "5"`` or ``n_rankers:
5.0`` is an error naming the field, as is a name no estimator has.

    config = load_config("train.yaml")  # every section optional; missing values: defaults
    affinity = config.estimator("affinity")  # a ProductAffinity with the section's parameters

See ``docs/train.example.yaml`` for every parameter with its default.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, create_model
from sklearn.base import BaseEstimator

from nbo.errors import NboError
from nbo.models.affinity import ProductAffinity
from nbo.models.purchase import OfferPurchase
from nbo.models.response import OfferResponse
from nbo.models.timing import VisitTiming
from nbo.models.uplift import OfferUplift
from nbo.yamlfile import read_yaml

__all__ = [
    "ESTIMATORS",
    "EvaluationConfig",
    "ModelName",
    "TrainConfig",
    "TrainConfigError",
    "estimator_section",
    "flatten",
    "load_config",
]

ModelName = Literal["affinity", "purchase", "response", "uplift", "timing"]

ESTIMATORS: dict[str, type[BaseEstimator]] = {
    "affinity": ProductAffinity,
    "purchase": OfferPurchase,
    "response": OfferResponse,
    "uplift": OfferUplift,
    "timing": VisitTiming,
}
"""The bundle's models by config section, in training order."""

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrainConfigError(NboError):
    """A training configuration file is invalid (the file and the field path named)."""


def _sub_estimator(annotation: Any) -> type[BaseEstimator] | None:
    """The estimator class of a parameter annotated ``SomeEstimator | None``, if it is one."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    for option in (annotation, *options):
        if isinstance(option, type) and issubclass(option, BaseEstimator):
            return option
    return None


_SECTIONS: dict[str, type[BaseModel]] = {}


def estimator_section(estimator: type[BaseEstimator]) -> type[BaseModel]:
    """A strict pydantic model of ``estimator``'s ``__init__`` parameters and their defaults."""
    key = f"{estimator.__module__}.{estimator.__qualname__}"
    if key not in _SECTIONS:
        _SECTIONS[key] = _section(estimator)
    return _SECTIONS[key]


def _section(estimator: type[BaseEstimator]) -> type[BaseModel]:
    hints = typing.get_type_hints(estimator.__init__)
    fields: dict[str, Any] = {}
    for name, parameter in inspect.signature(estimator.__init__).parameters.items():
        if name == "self":
            continue
        sub = _sub_estimator(hints[name])
        if sub is not None:  # a configured sub-estimator: its own section, its own defaults
            section = estimator_section(sub)
            fields[name] = (section, Field(default_factory=section))
        else:
            fields[name] = (hints[name], parameter.default)
    model: type[BaseModel] = create_model(
        f"{estimator.__name__}Config",
        __config__=_STRICT,
        __doc__=f"Parameters of {estimator.__module__}.{estimator.__name__}.",
        **fields,
    )
    return model


def _build(estimator: type[BaseEstimator], section: BaseModel) -> BaseEstimator:
    """``estimator`` made from a section of :func:`estimator_section` (sub-sections too)."""
    hints = typing.get_type_hints(estimator.__init__)
    params: dict[str, Any] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        sub = _sub_estimator(hints[name])
        params[name] = _build(sub, value) if sub is not None and value is not None else value
    return estimator(**params)


class EvaluationConfig(BaseModel):
    """How a trained bundle is evaluated."""

    model_config = _STRICT

    windows_days: list[PositiveInt] = Field(default=[14, 28], min_length=1)
    """Like-for-like promotion windows: the days of each evaluation window before the end."""
    max_members: PositiveInt | None = 50_000
    """Members sampled for the holdout evaluation (None: every member)."""


_TrainConfigBase: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "_TrainConfigBase",
    __config__=_STRICT,
    **{
        name: (estimator_section(estimator), Field(default_factory=estimator_section(estimator)))
        for name, estimator in ESTIMATORS.items()
    },
)


class TrainConfig(_TrainConfigBase):  # type: ignore[misc, valid-type]
    """Every model's hyperparameters (one section per model) and the evaluation settings.

    The model sections are generated from the estimators' signatures; every section and
    every field is optional, a missing one takes the estimator's default.
    """

    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    def estimator(self, name: ModelName) -> BaseEstimator:
        """The unfitted model of section ``name`` with the section's parameters."""
        section: BaseModel = getattr(self, name)
        return _build(ESTIMATORS[name], section)

    def to_yaml(self) -> str:
        """Every value of the configuration as YAML that :func:`load_config` reads back."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def flatten(config: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every value of ``config`` by dotted path (``affinity.cf.factors``), e.g. MLflow params."""
    flat: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            flat |= flatten(value, f"{prefix}{name}.")
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """The training configuration in the YAML file at ``path`` (an empty file: the defaults).

    Raises :class:`TrainConfigError` naming the file and each bad field's path, e.g.
    ``train.yaml: affinity.n_rankers: Input should be a valid integer``.
    """
    document = read_yaml(path, TrainConfigError, "training configuration")
    if document is None:
        document = {}
    if not isinstance(document, dict):
        sections = ", ".join([*ESTIMATORS, "evaluation"])
        raise TrainConfigError(
            f"{Path(path)}: expected a mapping of sections ({sections}), "
            f"got {type(document).__name__}"
        )
    try:
        config: TrainConfig = TrainConfig.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise TrainConfigError(f"{Path(path)}: {problems}") from None
    return config
