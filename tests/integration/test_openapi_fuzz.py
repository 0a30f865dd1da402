"""The OpenAPI spec is true: schemathesis fuzzes /predict and /invocations of a real
`mlrig serve` (uvicorn, 127.0.0.1, the trained wine model) with its full check set, in positive
and negative mode, plus raw bytes; zero 5xx, every 4xx a JSON body naming the problem, and the
prediction log holds exactly the rows answered 2xx — nothing refused reaches the store.

A real server rather than the ASGI app in-process: the case generation, not the transport,
sets the pace (≈40–70 ms a case on this 2-core machine, ≈3 ms of it HTTP), and the real
server also proves the raw-ASGI fast path and uvicorn's own handling of odd bodies.

The whole check set runs on every case (``CHECKS.get_all()``): not_a_server_error,
status_code_conformance, content_type_conformance, response_headers_conformance,
response_schema_conformance, negative_data_rejection, positive_data_acceptance,
missing_required_header, unsupported_method, allow_header_conformance, and the stateful
ones (use_after_free, ensure_resource_availability, ignored_auth,
object_level_authorization), which pass trivially here: the spec has no links between
operations and no security scheme (an unset predict token means open).

Where a check cannot apply, the exception is narrow and stated where it is made:
- JSON Schema cannot say "ids unique within the request", "one id field per request" nor
  "equally long columns"; a positive case that breaks one of these documented rules must
  instead get the 4xx that names it (positive_data_acceptance is not asked of that case alone).
- A ``text/csv`` body is a JSON Schema string: the schema cannot state CSV's grammar, so
  positive/negative acceptance cannot be judged from it for that media type; the other checks
  still run, and the CSV grammar itself is fuzzed against an exact oracle in
  tests/unit/serving/test_parser_fuzz.py.
- 413 is accepted as a rejection of a negative case (too many records): it is HTTP's status
  for "payload too large"; schemathesis' default list only lacks it.

Cases per operation and mode come from MLRIG_FUZZ_CASES (default 1,000, i.e. 2,000 per
operation); ``python bench/fuzz.py`` runs more and prints the table.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WINE_ROW, Server, stored_predictions

CASES = int(os.environ.get("MLRIG_FUZZ_CASES", "1000"))
MAX_ROWS = 5  # a small batch limit, so the fuzzer reaches it (413) and bodies stay small


@dataclass
class Tally:
    """What one fuzz run saw."""

    operation: str
    mode: str
    cases: int = 0
    ok: int = 0
    rows: int = 0  # predictions answered 2xx
    client_errors: int = 0
    server_errors: int = 0
    cross_field: int = 0  # positive cases refused by a documented rule JSON Schema cannot state
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def row(self) -> list[str]:
        return [
            self.operation,
            self.mode,
            str(self.cases),
            str(self.client_errors),
            str(self.server_errors),
            str(len(self.failures)),
        ]


def _id_text(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else value


def unstated_rule(path: str, body: Any) -> str | None:
    """The text of the 4xx a schema-valid ``body`` must get for breaking one of the documented
    rules JSON Schema cannot state; None when it breaks none. For /predict, in the order the
    server checks them: equally long columns, then record by record one id field and unique
    ids."""
    if path == "/predict":
        pairs = _predict_id_pairs(body)
        if isinstance(pairs, str):
            return pairs
        name, seen = None, set()
        for key, value in pairs:
            if name is not None and key != name:
                return "one id field"
            name = key
            if value is not None:
                if _id_text(value) in seen:
                    return "duplicate id"
                seen.add(_id_text(value))
        return None
    for key in ("inputs", "instances"):
        columns = body.get(key) if isinstance(body, dict) else None
        if isinstance(columns, dict) and len({len(v) for v in columns.values()}) > 1:
            return "equally long"
    return None


def _predict_id_pairs(body: Any) -> list[tuple[str, Any]] | str:
    """(id field, id) per record of a schema-valid /predict body, in record order (in a valid
    body, any key that is not a feature, a nested record or a column is an id field)."""
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        body = body["records"]
    if isinstance(body, list):
        return [(k, r[k]) for r in body for k in r if k not in WINE_ROW]
    if any(isinstance(v, list) for v in body.values()):
        if len({len(v) for v in body.values()}) > 1:
            return "equally long"
        return [(k, v) for k, values in body.items() if k not in WINE_ROW for v in values]
    nested = next((v for v in body.values() if isinstance(v, dict)), None)
    if nested is not None:
        beside = [(k, v) for k, v in body.items() if not isinstance(v, dict)]
        return beside + [(k, v) for k, v in nested.items() if k not in WINE_ROW]
    return [(k, v) for k, v in body.items() if k not in WINE_ROW]


def fuzz(
    url: str,
    path: str,
    media_type: str,
    mode: str,
    cases: int,
    judge_acceptance: bool = True,
) -> Tally:
    """Send ``cases`` schemathesis cases for POST ``path`` with ``media_type`` bodies and
    validate every answer with all checks; failures are collected, not raised."""
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import CHECKS, load_all_checks
    from schemathesis.schemas import PayloadAlternatives
    from schemathesis.specs.openapi.checks import (
        negative_data_rejection,
        positive_data_acceptance,
    )

    load_all_checks()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    checks = CHECKS.get_all()
    if not judge_acceptance:
        checks = [c for c in checks if c not in (positive_data_acceptance, negative_data_rejection)]
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    operation = schema[path]["POST"]
    # One media type per run: the operation with only that body (filtering the drawn cases
    # would throw away half of /invocations' generation, the costly part).
    bodies = [b for b in operation.body.items if b.media_type == media_type]
    assert bodies, f"{path} documents no {media_type} body"
    operation = dataclasses.replace(operation, body=PayloadAlternatives(bodies))
    strategy = operation.as_strategy(generation_mode=generation)
    tally = Tally(f"POST {path} ({media_type})", mode)
    session = requests.Session()
    started = time.perf_counter()

    @given(case=strategy)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure here reproduces
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def one(case: Any) -> None:
        assert case.media_type == media_type
        response = case.call(base_url=url, session=session)
        _count(tally, response.status_code, response)
        rule = unstated_rule(path, case.body) if mode == "positive" and judge_acceptance else None
        skip: list[Callable[..., Any]] = []
        if rule is not None:
            tally.cross_field += 1
            skip = [positive_data_acceptance]
            if response.status_code not in (400, 422) or rule not in response.text:
                tally.failures.append(f"{rule}: got {response.status_code} {response.text[:200]}")
        try:
            case.validate_response(response, checks=[c for c in checks if c not in skip])
        except (AssertionError, BaseExceptionGroup) as exc:
            tally.failures.append(_first_lines(exc, case))

    one()
    tally.seconds = time.perf_counter() - started
    return tally


def raw_fuzz(url: str, path: str, cases: int) -> Tally:
    """Arbitrary bytes with assorted content types (the parsers below any schema)."""
    import httpx
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    tally = Tally(f"POST {path} (raw bytes)", "raw")
    types = ["application/json", "text/csv", "text/plain", "application/x-www-form-urlencoded"]
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=30) as client:

        @given(
            body=st.binary(max_size=400)
            | st.text(max_size=200).map(str.encode)
            | st.sampled_from([b"\xef\xbb\xbf", b"[" * 3000, b"a\r\r\n\rb", b"1e400", b"NaN"]),
            content_type=st.sampled_from(types),
        )
        @settings(
            max_examples=cases,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def one(body: bytes, content_type: str) -> None:
            response = client.post(path, content=body, headers={"content-type": content_type})
            _count(tally, response.status_code, response)

        one()
    tally.seconds = time.perf_counter() - started
    return tally


def _count(tally: Tally, status: int, response: Any) -> None:
    tally.cases += 1
    if status >= 500:
        tally.server_errors += 1
        tally.failures.append(f"{status}: {response.text[:200]}")
    elif status >= 400:
        tally.client_errors += 1
        try:
            error = response.json().get("error")
        except ValueError:
            error = None
        if not isinstance(error, str) or not error:
            tally.failures.append(f"{status} without a JSON error message: {response.text[:200]}")
    elif 200 <= status < 300:
        tally.ok += 1
        tally.rows += len(response.json()["predictions"])


def _first_lines(exc: BaseException, case: Any) -> str:
    inner = getattr(exc, "exceptions", [exc])
    titles = "; ".join(str(e).strip().split("\n")[0] for e in inner)
    return f"{titles} <- {str(case.body)[:300]}"


def logged_rows(home: Path) -> int:
    return len(stored_predictions(home))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained_template: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("fuzz") / ".mlrig"
    shutil.copytree(trained_template, home)
    srv = Server(home, env={"MLRIG_SERVING__MAX_BATCH_ROWS": str(MAX_ROWS)})
    srv.wait_ready()
    yield srv
    srv.stop()


def _assert_clean(tallies: list[Tally], home: Path, before: int) -> None:
    failures = [f"{t.operation} {t.mode}: {f}" for t in tallies for f in t.failures]
    assert not failures, f"{len(failures)} failures, first: " + "\n".join(failures[:10])
    assert all(t.server_errors == 0 for t in tallies)
    answered = sum(t.rows for t in tallies)
    assert logged_rows(home) - before == answered  # nothing refused reached the store


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_the_spec_is_true_under_schemathesis_with_all_checks(server: Server, path: str) -> None:
    before = logged_rows(server.home)
    tallies = [
        fuzz(server.url, path, "application/json", mode, CASES) for mode in ("positive", "negative")
    ]
    _assert_clean(tallies, server.home, before)
    positive = tallies[0]
    # the fuzz reached real predictions and real refusals, not only one kind of answer
    assert positive.ok > CASES // 2 and tallies[1].client_errors > CASES // 2


@pytest.mark.slow
def test_csv_bodies_and_raw_bytes_never_get_a_5xx_and_never_reach_the_store(server: Server) -> None:
    before = logged_rows(server.home)
    tallies = [
        fuzz(server.url, "/invocations", "text/csv", mode, CASES // 5, judge_acceptance=False)
        for mode in ("positive", "negative")
    ]
    tallies += [raw_fuzz(server.url, path, CASES // 2) for path in ("/predict", "/invocations")]
    _assert_clean(tallies, server.home, before)
    assert sum(t.client_errors for t in tallies) > CASES // 2
