"""Fuzzing /graphql with schemathesis (a tool no one here wrote).

A real server (`python -m app serve`, a subprocess) on the run's database with the demo
world seeded; schemathesis loads the schema from it by introspection and, for every query
and mutation, generates operations (arguments, inputs and selection sets drawn from the
schema) sent as the demo client, agent, admin or anonymously. Every answer must be:

- never a 5xx;
- a GraphQL response (a JSON object) that keeps the schema's promises (schemathesis'
  own response checks: no null where the schema says non-null, and so on);
- never a masked unexpected error ("Unexpected error." / INTERNAL_SERVER_ERROR): an
  expected failure is a user error or a coded error, anything else is a bug.

`make test` runs a few examples per operation (FUZZ_EXAMPLES, default 3); `make fuzz` runs
many more. A failure names the operation and the smallest case hypothesis found, with the
curl command that reproduces it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults_support import app_env, login, web_process

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.graphql import nodes  # noqa: E402

pytestmark = pytest.mark.fuzz
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
MASKED_MESSAGE = "Unexpected error."

# Custom scalars: schemathesis needs a strategy for each one used in an argument.
schemathesis.graphql.scalar(
    "DateTime",
    st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
)
schemathesis.graphql.scalar("JSON", st.just(nodes.Object([])))
# A file can only come in a multipart request: inline, anything goes (it must be refused
# as a user error, never crash).
schemathesis.graphql.scalar("Upload", st.text(max_size=20).map(nodes.String))


@dataclass
class FuzzServer:
    url: str
    tokens: dict[str, str]


@pytest.fixture
async def fuzz_server(database_url: str, backend: Any) -> AsyncIterator[FuzzServer]:
    from app.seed import seed

    await seed()  # the demo world, in the run's database
    env = app_env(
        DATABASE_URL=database_url,
        REDIS_URL=backend.redis_url,
        RATE_LIMIT_POINTS="1000000000",  # the fuzzer is not the abuse under test here
    )
    async with web_process(env) as server, httpx.AsyncClient(base_url=server.url) as http:
        tokens = {
            who: await login(http, f"{who}@demo.test") for who in ("client", "agent", "admin")
        }
        yield FuzzServer(server.url, tokens)
        assert server.process.returncode is None, server.output()


def _problems(response: Any) -> list[str]:
    problems = []
    if response.status_code >= 500:
        problems.append(f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return [*problems, "not JSON"]
    for error in (body.get("errors") or []) if isinstance(body, dict) else []:
        code = (error.get("extensions") or {}).get("code")
        if code == "INTERNAL_SERVER_ERROR" or error.get("message") == MASKED_MESSAGE:
            problems.append(f"masked unexpected error at {error.get('path')}")
    return problems


def test_no_server_errors_and_no_masked_errors(fuzz_server):
    schema = schemathesis.graphql.from_url(fuzz_server.url + "/graphql")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30  # every query and mutation
    failures: dict[str, str] = {}
    tokens = fuzz_server.tokens

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), who=st.sampled_from([None, *tokens]))
        def fuzz(case: Any, who: str | None) -> None:
            headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
            response = case.call(headers=headers, timeout=30)
            schema.validate_response(case.operation, response, case=case)
            problems = _problems(response)
            assert not problems, (
                f"{problems} as {who or 'anonymous'}\n{case.as_curl_command(headers)}\n"
                f"{response.content[:2000]!r}"
            )

        try:
            fuzz()
        except Exception as failure:  # one operation's failure; go on with the others
            failures[operation.label] = f"{type(failure).__name__}: {failure}"

    assert not failures, "\n\n".join(f"{label}: {why}" for label, why in failures.items())


# --- what the fuzzer found, pinned -------------------------------------------------------
# `paymentLink(token: "\u0000")` was answered "Unexpected error." on PostgreSQL: its text
# columns cannot hold U+0000, so the driver failed. Every string argument is affected, so
# the NUL character is refused before anything runs (app/schema/limits.py, NulGuard).

NUL_CASES = [
    pytest.param('{ paymentLink(token: "\\u0000") { state } }', {}, id="literal"),
    pytest.param(
        "query($t: String!) { paymentLink(token: $t) { state } }", {"t": "a\x00b"}, id="variable"
    ),
    pytest.param(
        "query($f: DossierFilter) { dossiers(filter: $f) { totalCount } }",
        {"f": {"status": ["CREATED"], "clientId": "a\x00"}},
        id="nested",
    ),
]


@pytest.mark.parametrize(("query", "variables"), NUL_CASES)
async def test_text_with_a_nul_character_is_refused_as_bad_input(client, query, variables):
    from tests.factories import make_client
    from tests.helpers import error_codes, gql

    account = await make_client()
    body = await gql(client, query, variables, token=account.token, expect_errors=True)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == "Text may not contain the NUL character (U+0000)."


async def test_a_message_with_a_nul_character_is_refused_and_nothing_is_stored(client):
    from app.models import Message
    from tests.factories import make_client, make_dossier
    from tests.helpers import error_codes, gql

    account = await make_client()
    dossier = await make_dossier(account)
    send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id } } }"
    variables = {"i": {"dossierId": str(dossier.id), "content": "hello\x00world"}}
    body = await gql(client, send, variables, token=account.token, expect_errors=True)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await Message.filter(dossier_id=dossier.id).count() == 0
    # the same message without it goes through
    variables["i"]["content"] = "hello world"
    assert (await gql(client, send, variables, token=account.token))["sendMessage"]["message"]
