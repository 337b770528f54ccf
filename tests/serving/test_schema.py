"""Schemathesis over the OpenAPI schema, with all its checks: the schema is the whole contract.

The run is schemathesis' own engine, as ``schemathesis run --checks all`` runs it (examples,
coverage, fuzzing and stateful phases; every check: no server error, status codes, content
types, headers and bodies as documented, schema-valid data accepted, schema-invalid data
refused, authentication enforced), in-process on the synthetic club's plan, with the project's
``schemathesis.toml``. One check is added: a request that fits the schema and gets a 422 was
refused by a documented rule, never by the request models' validation (which would mean the
schema and the models disagree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import schemathesis
from pydantic_core.core_schema import ErrorType
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from nbo.serving.app import create_app
from nbo.settings import Settings
from tests.serving.conftest import KEYS, TODAY

pytestmark = pytest.mark.slow  # the registry fixture trains a model

CONFIG = Path(__file__).parents[2] / "schemathesis.toml"
EXAMPLES = 40  # per operation and phase


VALIDATION_ERRORS = frozenset(get_args(ErrorType))  # pydantic's, json_invalid included


@schemathesis.check
def refused_only_by_a_documented_rule(ctx: Any, response: Any, case: Any) -> None:
    """A schema-valid request's 422 names the rules it breaks (a sentence, or errors of the
    rule's own types, as the events route's), never a validation error of the models."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if not _within_bounds(case.body):
        return  # not schema-valid after all (see _within_bounds): its 422 is right
    if response.status_code == 422:
        detail = response.json()["detail"]
        kinds = {e.get("type") for e in detail} if isinstance(detail, list) else set()
        assert not kinds & VALIDATION_ERRORS, f"a request that fits the schema failed: {detail}"


def _within_bounds(value: object) -> bool:
    """Whether every integer in ``value`` is below 2**63, the member ids' exclusive maximum.

    Schemathesis' generator, in its "positive" (schema-valid) mode, draws integers a few
    hundred above that bound (2**63 + 190, 2**63 + 191: within a double's rounding of it):
    those requests are schema-invalid and answered 422, as they should be.
    """
    if isinstance(value, dict):
        return all(_within_bounds(v) for v in value.values())
    if isinstance(value, list):
        return all(_within_bounds(v) for v in value)
    return not (isinstance(value, int) and not isinstance(value, bool) and value >= 2**63)


def _config() -> SchemathesisConfig:
    """The project's file, with the run's admin key, seed and budget."""
    run = f'seed = 18\nheaders = {{ "X-API-Key" = "admin-key" }}\n{CONFIG.read_text()}'
    return SchemathesisConfig.from_str(
        f"{run}\n[generation]\nmax-examples = {EXAMPLES}\n", base_dir=str(CONFIG.parent)
    )


@pytest.fixture(scope="module")
def api_schema(
    plan_dir: Path, synth_club: Path, tmp_path_factory: pytest.TempPathFactory
) -> schemathesis.BaseSchema:
    folder = tmp_path_factory.mktemp("schema")
    app = create_app(
        Settings(
            api_keys=KEYS,
            plan_dir=plan_dir,
            data_dir=synth_club,
            today=TODAY,
            database_url=f"sqlite:///{folder / 'nbo.db'}",
        )
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())


def test_every_answer_is_as_the_schema_says(api_schema: schemathesis.BaseSchema) -> None:
    assert "admin-key" in str(api_schema.config.headers)
    failures: list[str] = []
    phases: set[str] = set()
    for event in from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished):
            phases.add(event.phase.value)
            for checks in event.recorder.checks.values():
                failures += [
                    f"{event.label} [{c.name}] {c.failure_info.failure.title}: "
                    f"{c.failure_info.code_sample}"
                    for c in checks
                    if c.failure_info is not None
                ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"{type(event).__name__}: {event}")
    assert not failures, "\n".join(sorted(set(failures)))
    assert {"examples", "coverage", "fuzzing"} <= phases, phases
