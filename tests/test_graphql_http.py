"""GraphQL over HTTP: media types and status codes, GET, and the graphql-http audit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.http.graphql_http import GRAPHQL_RESPONSE_JSON, response_media_type
from app.models import Profile
from tests.factories import make_client, make_product
from tests.helpers import count_statements, error_codes
from tests.test_abuse import app_with

SPEC = {"accept": GRAPHQL_RESPONSE_JSON}
PRODUCTS = "query Products($first: Int) { products(first: $first) { totalCount } }"
AUDIT = Path(__file__).resolve().parent.parent / ".ci" / "graphql-http"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
        (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", "application/json"),
        (f"{GRAPHQL_RESPONSE_JSON};q=0", "application/json"),
        ("text/plain", "application/json"),
    ],
)
def test_the_media_type_follows_the_accept_header(accept, expected):
    assert response_media_type(accept) == expected


async def post(client, body, headers=None, token=None):
    headers = {"content-type": "application/json", **(headers or {})}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/graphql", json=body, headers=headers)


async def test_requests_that_never_ran_get_400_and_no_data_when_asked_for_the_spec(client):
    account = await make_client()
    refused = {
        "parse": {"query": "{ products {"},
        "validation": {"query": "{ productz { totalCount } }"},
        "variables": {"query": PRODUCTS, "variables": {"first": "ten"}},
    }
    for name, body in refused.items():
        response = await post(client, body, SPEC, token=account.token)
        assert response.status_code == 400, (name, response.text)
        assert response.headers["content-type"] == GRAPHQL_RESPONSE_JSON
        assert "data" not in response.json(), name
        assert response.json()["errors"], name

        # older clients (application/json, or no Accept) get what they always got
        legacy = await post(client, body, token=account.token)
        assert legacy.status_code == 200, name
        assert legacy.headers["content-type"] == "application/json"
        assert legacy.json()["data"] is None
        assert legacy.json()["errors"] == response.json()["errors"]

    bad_json = await client.post(
        "/graphql", content=b'{"query": ', headers={"content-type": "application/json", **SPEC}
    )
    assert bad_json.status_code == 400
    assert bad_json.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    assert "data" not in bad_json.json()


async def test_executed_requests_get_200_and_data_with_the_spec_media_type(client):
    account = await make_client()
    await make_product()
    ok = await post(client, {"query": PRODUCTS, "variables": {"first": 5}}, SPEC, account.token)
    assert ok.status_code == 200
    assert ok.headers["content-type"] == GRAPHQL_RESPONSE_JSON
    assert ok.json() == {"data": {"products": {"totalCount": 1}}}
    # a field error is an execution result: 200, with its data entry
    anonymous = await post(client, {"query": PRODUCTS}, SPEC)
    assert anonymous.status_code == 200
    assert "data" in anonymous.json()
    assert error_codes(anonymous.json()) == ["UNAUTHENTICATED"]


async def test_get_runs_queries_with_variables_and_extensions_as_json(client):
    account = await make_client()
    await make_product()
    response = await client.get(
        "/graphql",
        params={
            "query": PRODUCTS,
            "operationName": "Products",
            "variables": '{"first": 3}',
            "extensions": '{"some": "value"}',
        },
        headers={"authorization": f"Bearer {account.token}", **SPEC},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"products": {"totalCount": 1}}}
    assert response.headers["content-type"] == GRAPHQL_RESPONSE_JSON


async def test_mutations_and_subscriptions_over_get_are_405(client):
    account = await make_client()
    headers = {"authorization": f"Bearer {account.token}", **SPEC}
    mutation = 'mutation { updateMyProfile(input: {fullName: "By GET"}) { userErrors { code } } }'
    subscription = "subscription { notificationAdded { id } }"
    with count_statements() as statements:
        for document in (mutation, subscription):
            response = await client.get("/graphql", params={"query": document}, headers=headers)
            assert response.status_code == 405, response.text
            assert response.headers["allow"] == "POST"
            assert "data" not in response.json()
    assert statements == []
    assert (await Profile.get(id=account.obj.id)).full_name != "By GET"


async def test_rate_limited_requests_get_429_with_retry_after(database_url):
    app = app_with(redis_url="", rate_limit_points=30, rate_limit_window_seconds=60)
    account = await make_client()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as limited:
        statuses = []
        for _ in range(3):  # a 20-node page each: the second no longer fits
            response = await limited.get(
                "/graphql",
                params={"query": "{ products { totalCount } }"},
                headers={"authorization": f"Bearer {account.token}", **SPEC},
            )
            statuses.append(response.status_code)
        assert statuses[0] == 200
        assert statuses[-1] == 429
        assert int(response.headers["retry-after"]) >= 1
        assert error_codes(response.json()) == ["RATE_LIMITED"]
        assert "data" not in response.json()


def _npm_ready() -> str | None:
    """Why the audit cannot run here, or None (installs its pinned packages if needed)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed (the audit is npm's graphql-http)"
    if not (AUDIT / "node_modules" / "graphql-http").is_dir():
        installed = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=AUDIT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if installed.returncode != 0:
            return f"`npm ci` in .ci/graphql-http failed: {installed.stderr.strip()[-300:]}"
    return None


def test_the_graphql_over_http_audit_passes_on_a_live_server():
    """The same script `.ci/run` runs: every MUST and SHOULD audit of graphql-http."""
    reason = _npm_ready()
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "PYTHON": sys.executable}
    audit = subprocess.run(
        ["node", "audit.mjs"],
        cwd=AUDIT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout[-6000:] + audit.stderr[-3000:]
    assert "every MUST and SHOULD audit passes" in audit.stdout
