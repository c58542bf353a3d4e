"""Property-based fuzzing of every operation in /openapi.json with schemathesis (issue 9).

Bounded: FUZZ_EXAMPLES examples per operation (env VOXSERVE_FUZZ_EXAMPLES overrides) against the
session's local-store app. Every response must be a non-5xx (503 with Retry-After is allowed:
it is the documented answer while a dependency is briefly unavailable), have a documented status
code, content type and headers, and match the documented schema.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

FUZZ_EXAMPLES = int(os.environ.get("VOXSERVE_FUZZ_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


def test_every_operation_of_the_openapi_spec(service):
    """One hypothesis run per operation (schemathesis' strategies; its pytest plugin does not
    support this pytest), each bounded to FUZZ_EXAMPLES examples; all failures reported together."""
    from hypothesis import given

    base = service["base"] + "/local"
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            case.call_and_validate(base_url=base, checks=CHECKS, timeout=120)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected: one report for every operation
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
