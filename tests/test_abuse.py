"""Abusive GraphQL operations are refused before anything runs (issue 8, GraphQL abuse)."""

from __future__ import annotations

import httpx
import pytest

from app.main import create_app
from app.settings import get_settings
from tests.factories import make_agent, make_client
from tests.helpers import count_statements, gql


def app_with(**overrides):
    return create_app(get_settings().model_copy(update=overrides), manage_db=False)


@pytest.fixture
async def small_budget_client(database_url):
    app = app_with(max_nodes=150)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


@pytest.fixture
async def production_client(database_url):
    app = app_with(env="production", secret_key="p" * 40)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def test_a_thousand_directives_are_refused_before_execution(client):
    agent = await make_agent()
    fields = " ".join(f"a{i}: __typename @include(if: true)" for i in range(25))
    ok = await gql(client, "{ " + fields + " }", token=agent.token)
    assert len(ok) == 25
    with count_statements() as statements:
        # 100 directives: within the token limit, refused by the directive limit
        many = " ".join("@include(if: true)" for _ in range(100))
        body = await gql(
            client, "{ me { __typename " + many + " } }", token=agent.token, expect_errors=True
        )
        assert body["data"] is None
        assert any("more than 50 directives" in e["message"] for e in body["errors"])
        # 1,000: refused too (the parser's token limit stops it even earlier)
        many = " ".join("@include(if: true)" for _ in range(1000))
        body = await gql(
            client, "{ me { __typename " + many + " } }", token=agent.token, expect_errors=True
        )
        assert body["data"] is None
    assert statements == []


async def test_a_thousand_aliases_through_fragment_spreads_are_refused(client):
    agent = await make_agent()
    for count, expected in ((100, "aliases"), (1000, "tokens")):
        fragment = "fragment F on Query { " + " ".join(f"x{i}: __typename" for i in range(count))
        body = await gql(
            client, "{ ...F } " + fragment + " }", token=agent.token, expect_errors=True
        )
        assert body["data"] is None
        assert expected in body["errors"][0]["message"]


async def test_node_budget_counts_pages_across_connections(small_budget_client):
    agent = await make_agent()
    within = "{ products(first: 50) { totalCount } steps(first: 50) { totalCount } }"
    data = await gql(small_budget_client, within, token=agent.token)
    assert data["products"]["totalCount"] == 0
    over = "{ products(first: 100) { totalCount } steps(first: 100) { totalCount } }"
    with count_statements() as statements:
        body = await gql(small_budget_client, over, token=agent.token, expect_errors=True)
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    assert statements == []
    # sizes passed as variables count too, and so does the default page size
    as_variables = """query($n: Int) { products(first: $n) { totalCount }
                                        steps(first: $n) { totalCount } }"""
    body = await small_budget_client.post(
        "/graphql",
        json={"query": as_variables, "variables": {"n": 80}},
        headers={"authorization": f"Bearer {agent.token}"},
    )
    assert body.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
    defaults = " ".join(f"p{i}: products {{ totalCount }}" for i in range(8))  # 8 x 20
    body = await gql(
        small_budget_client, "{ " + defaults + " }", token=agent.token, expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_a_page_over_the_cap_is_refused(client):
    agent = await make_agent()
    body = await gql(
        client, "{ products(last: 101) { totalCount } }", token=agent.token, expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_one_megabyte_query_is_refused(client):
    agent = await make_agent()
    # a megabyte of real tokens: the parser stops at the token limit, nothing runs
    query = "{ me { " + "__typename " * (1024 * 1024 // 11) + "} }"
    assert len(query) > 1024 * 1024 - 100
    with count_statements() as statements:
        body = await gql(client, query, token=agent.token, expect_errors=True)
    assert body["data"] is None
    assert "tokens" in body["errors"][0]["message"]
    assert statements == []


async def test_batched_arrays_and_other_content_types_are_refused(client):
    client_account = await make_client()
    auth = {"authorization": f"Bearer {client_account.token}"}
    batch = [{"query": "{ __typename }"}, {"query": "{ __typename }"}]
    assert (await client.post("/graphql", json=batch, headers=auth)).status_code == 400
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = await client.post(
            "/graphql",
            content='{"query": "{ __typename }"}',
            headers={**auth, "content-type": content_type},
        )
        assert response.status_code in (400, 415), content_type


async def test_mutations_over_get_are_refused(client):
    account = await make_client()
    mutation = 'mutation { updateMyProfile(input: {fullName: "Via GET"}) { userErrors { code } } }'
    response = await client.get(
        "/graphql",
        params={"query": mutation},
        headers={"authorization": f"Bearer {account.token}", "accept": "application/json"},
    )
    assert response.status_code != 200 or "errors" in response.json()
    me = await gql(client, "{ me { ... on Profile { fullName } } }", token=account.token)
    assert me["me"]["fullName"] != "Via GET"


async def test_production_hides_introspection_and_suggestions(production_client, client):
    account = await make_client()
    typo = "{ mee { __typename } }"
    dev = await gql(client, typo, token=account.token, expect_errors=True)
    assert "Did you mean" in dev["errors"][0]["message"]
    prod = await gql(production_client, typo, token=account.token, expect_errors=True)
    assert "Did you mean" not in prod["errors"][0]["message"]
    assert "Cannot query field 'mee'" in prod["errors"][0]["message"]
    introspection = await gql(
        production_client,
        "{ __schema { types { name } } }",
        token=account.token,
        expect_errors=True,
    )
    assert introspection["data"] is None
    assert (
        await production_client.get("/graphql", headers={"accept": "text/html"})
    ).status_code in (404, 405)


PRODUCTS_PAGE = "{ products { totalCount } }"  # costs the default page size: 20 nodes


async def _client_for(**overrides):
    app = app_with(**overrides)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.parametrize("redis", ["configured", "unreachable"])
async def test_rate_limit_by_query_cost_per_viewer(backend, redis):
    if redis == "configured" and not backend.redis_url:
        pytest.skip("no Redis on the embedded backend (the unreachable case covers memory)")
    url = backend.redis_url if redis == "configured" else "redis://127.0.0.1:1/0"
    # Redis configured but unreachable: each process limits alone to a quarter of the
    # budget (RATE_LIMIT_FALLBACK_SHARE; tests/test_ratelimit.py), so 200 there is 50 here.
    points = 50 if redis == "configured" else 200
    limited = await _client_for(
        redis_url=url, rate_limit_points=points, rate_limit_window_seconds=60
    )
    async with limited:
        alice, bob = await make_client(), await make_client()
        for _ in range(2):  # 2 x 20 of 50 points
            await gql(limited, PRODUCTS_PAGE, token=alice.token)
        body = await gql(limited, PRODUCTS_PAGE, token=alice.token, expect_errors=True)
        assert body["data"] is None
        error = body["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] >= 1
        # somebody else still has their own budget
        assert (await gql(limited, PRODUCTS_PAGE, token=bob.token))["products"]["totalCount"] == 0
        # a cheap query still fits in what is left
        assert await gql(limited, "{ me { __typename } }", token=alice.token)


async def test_rate_limit_is_shared_across_processes_through_redis(backend):
    if not backend.redis_url:
        pytest.skip("needs Redis")
    first = await _client_for(redis_url=backend.redis_url, rate_limit_points=50)
    second = await _client_for(redis_url=backend.redis_url, rate_limit_points=50)
    async with first, second:
        alice = await make_client()
        await gql(first, PRODUCTS_PAGE, token=alice.token)
        await gql(second, PRODUCTS_PAGE, token=alice.token)
        body = await gql(first, PRODUCTS_PAGE, token=alice.token, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
