"""Abusive queries, GET, GraphiQL, error masking and introspection."""

from __future__ import annotations

import logging
import secrets

import httpx
import pytest
import strawberry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from app.api import Schema, build_schema
from app.errors import BadUserInput, Forbidden, NotFound, Unauthenticated
from app.http.graphql import DossierGraphQL
from app.main import RequestIdMiddleware, create_app
from app.models import Profile
from app.schema.extensions import ErrorTiers
from app.settings import Settings, get_settings
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import count_statements, error_codes, gql

ME = "{ me { ... on Profile { email } ... on Agent { email } } }"

NORMAL = """
query Normal {
  me { ... on Agent { email } }
  dossiers(first: 5) {
    nodes { id product { steps { step { documentTypes { code requiredStep { code } } } } } }
  }
}
"""

UPDATE_MY_NAME = """
mutation { updateMyProfile(input: {fullName: "Changed by GET"}) { userErrors { message } } }
"""

INTROSPECTION = "{ __schema { queryType { name } types { name } } }"
TYPE_INTROSPECTION = '{ __type(name: "Dossier") { name fields { name } } }'

PRODUCTION = {
    "env": "production",
    "secret_key": secrets.token_urlsafe(48),
    # a production start that knowingly logs messages and takes dummy payments
    "allow_dummy_payments": True,
    "allow_logged_email": True,
    "allow_logged_texts": True,
}


def deep_query(depth: int) -> str:
    """A chain of `depth` fields, each inside the previous one (the last a scalar), through
    the cycle Step -> documentTypes -> DocumentType -> requiredStep -> Step."""
    names = ["dossiers", "nodes", "product", "steps", "step"][: depth - 1]
    while len(names) < depth - 1:
        names.append("requiredStep" if names[-1] == "documentTypes" else "documentTypes")
    names.append("id")
    return "{ " + " { ".join(names) + " }" * len(names)


async def _statements_for(client, query: str, token: str) -> tuple[dict, int]:
    with count_statements() as statements:
        body = await gql(client, query, token=token, expect_errors=True)
    return body, len(statements)


# --- depth, aliases, tokens -----------------------------------------------------------


async def test_deep_query_is_refused_before_execution(client):
    agent = await make_agent()
    await make_dossier(await make_client())

    assert deep_query(20).count("{") == 20  # the operation and 19 fields with a selection
    body, statements = await _statements_for(client, deep_query(20), agent.token)
    assert body.get("data") is None
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert statements == 0  # not even the viewer was looked up

    # A normal query passes, and it does run SQL (so the zero above means something).
    with count_statements() as statements:
        data = await gql(client, NORMAL, token=agent.token)
    assert data["me"]["email"] == agent.email
    assert len(data["dossiers"]["nodes"]) == 1
    assert len(statements) > 0


async def test_depth_limit_boundary(client):
    agent = await make_agent()
    limit = get_settings().max_query_depth
    # `limit` fields with a selection set, nested, pass; one more is refused.
    await gql(client, deep_query(limit + 1), token=agent.token)
    body = await gql(client, deep_query(limit + 2), token=agent.token, expect_errors=True)
    assert body.get("data") is None
    assert f"maximum operation depth of {limit}" in body["errors"][0]["message"]


async def test_many_aliases_are_refused(client):
    account = await make_client()
    many = "{ " + " ".join(f"a{i}: me {{ __typename }}" for i in range(100)) + " }"
    body, statements = await _statements_for(client, many, account.token)
    assert body.get("data") is None
    assert "aliases" in body["errors"][0]["message"]
    assert statements == 0

    limit = get_settings().max_aliases
    at_limit = "{ " + " ".join(f"a{i}: me {{ __typename }}" for i in range(limit)) + " }"
    data = await gql(client, at_limit, token=account.token)
    assert len(data) == limit
    over = "{ " + " ".join(f"a{i}: __typename" for i in range(limit + 1)) + " }"
    body = await gql(client, over, token=account.token, expect_errors=True)
    assert body.get("data") is None


def long_query(values: int) -> str:
    """One field whose argument is a list of `values` enum values (one token each)."""
    statuses = " ".join(["IN_PROGRESS"] * values)
    return f"{{ dossiers(filter: {{status: [{statuses}]}}) {{ totalCount }} }}"


async def test_huge_query_is_refused(client):
    account = await make_client()
    await make_dossier(account)
    limit = get_settings().max_tokens
    body, statements = await _statements_for(client, long_query(limit + 10), account.token)
    assert body.get("data") is None
    assert f"more than {limit} tokens" in body["errors"][0]["message"]
    assert statements == 0

    # The same shape under the limit runs.
    data = await gql(client, long_query(limit // 2), token=account.token)
    assert data["dossiers"]["totalCount"] == 1


# --- GET and GraphiQL -----------------------------------------------------------------


async def test_queries_over_get_run_with_the_same_limits(client):
    """GET runs queries (GraphQL over HTTP), authenticated and limited exactly as POST."""
    account = await make_client()
    headers = {"authorization": f"Bearer {account.token}", "accept": "application/json"}
    me = await client.get("/graphql", params={"query": ME}, headers=headers)
    assert me.status_code == 200, me.text
    assert me.json() == {"data": {"me": {"email": account.email}}}
    anonymous = await client.get("/graphql", params={"query": ME})
    assert error_codes(anonymous.json()) == ["UNAUTHENTICATED"]
    # a document past the depth limit is refused before anything runs, as over POST
    too_deep = deep_query(get_settings().max_query_depth + 2)
    with count_statements() as statements:
        response = await client.get("/graphql", params={"query": too_deep}, headers=headers)
    assert response.status_code == 200
    assert response.json()["data"] is None
    assert "exceeds maximum operation depth" in response.json()["errors"][0]["message"]
    assert statements == []


async def test_mutation_over_get_does_not_run(client):
    account = await make_client()
    original = account.obj.full_name
    headers = {"authorization": f"Bearer {account.token}", "accept": "application/json"}
    with count_statements() as statements:
        response = await client.get("/graphql", params={"query": UPDATE_MY_NAME}, headers=headers)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert statements == []
    assert (await Profile.get(id=account.obj.id)).full_name == original

    # The same mutation over POST does change the name.
    await gql(client, UPDATE_MY_NAME, token=account.token)
    assert (await Profile.get(id=account.obj.id)).full_name == "Changed by GET"


async def test_graphiql_is_served_in_development_only():
    development = create_app(Settings(env="development"), manage_db=False)
    production = create_app(Settings(**PRODUCTION), manage_db=False)
    async with _http(development) as http:
        response = await http.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "graphiql" in response.text.lower()
    async with _http(production) as http:
        response = await http.get("/graphql", headers={"accept": "text/html"})
        assert response.status_code == 404
        assert "graphiql" not in response.text.lower()


def _http(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


# --- error tiers, on a tiny schema using our extension --------------------------------


class Gone(NotFound):
    default_message = "It is gone."


@strawberry.type
class TinyQuery:
    @strawberry.field
    def ok(self) -> str:
        return "fine"

    @strawberry.field
    def boom(self) -> str | None:
        raise RuntimeError("database password is hunter2")

    @strawberry.field
    def not_found(self) -> str | None:
        raise NotFound("No such thing.")

    @strawberry.field
    def gone(self) -> str | None:
        raise Gone()

    @strawberry.field
    def forbidden(self) -> str | None:
        raise Forbidden()

    @strawberry.field
    def unauthenticated(self) -> str | None:
        raise Unauthenticated()

    @strawberry.field
    def bad_input(self) -> str | None:
        raise BadUserInput("Invalid cursor.")


@pytest.fixture
async def tiny():
    schema = Schema(query=TinyQuery, extensions=[ErrorTiers])
    app = Starlette(
        routes=[Route("/graphql", DossierGraphQL(schema, get_settings()), methods=["POST"])],
        middleware=[Middleware(RequestIdMiddleware)],
    )
    async with _http(app) as http:
        yield http


async def test_unexpected_error_is_masked_and_logged_with_the_request_id(tiny, caplog):
    caplog.set_level(logging.INFO)
    for sent in (None, "trace42abc"):
        caplog.clear()
        headers = {"x-request-id": sent} if sent else {}
        response = await tiny.post("/graphql", json={"query": "{ ok boom }"}, headers=headers)
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        if sent:
            assert request_id == sent
        body = response.json()
        assert body["data"] == {"ok": "fine", "boom": None}
        (error,) = body["errors"]
        assert error["message"] == "Unexpected error."
        assert error["path"] == ["boom"]
        assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        assert "hunter2" not in response.text
        assert "RuntimeError" not in response.text

        logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(logged) == 1, [r.getMessage() for r in logged]
        assert request_id in logged[0].getMessage()
        assert logged[0].exc_info is not None
        assert isinstance(logged[0].exc_info[1], RuntimeError)
        assert "hunter2" in str(logged[0].exc_info[1])


@pytest.mark.parametrize(
    ("field", "code", "message"),
    [
        ("notFound", "NOT_FOUND", "No such thing."),
        ("gone", "NOT_FOUND", "It is gone."),
        ("forbidden", "FORBIDDEN", "You are not allowed to do this."),
        ("unauthenticated", "UNAUTHENTICATED", "Authentication required."),
        ("badInput", "BAD_USER_INPUT", "Invalid cursor."),
    ],
)
async def test_access_errors_keep_their_code_and_are_not_logged(tiny, caplog, field, code, message):
    caplog.set_level(logging.INFO)
    response = await tiny.post("/graphql", json={"query": f"{{ ok {field} }}"})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"ok": "fine", field: None}
    assert body["errors"] == [
        {
            "message": message,
            "locations": [{"line": 1, "column": 6}],
            "path": [field],
            "extensions": {"code": code},
        }
    ]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_parse_and_validation_errors_pass_through(client, caplog):
    caplog.set_level(logging.INFO)
    account = await make_client()
    body = await gql(client, "{ nope }", token=account.token, expect_errors=True)
    assert body["errors"][0]["message"] == "Cannot query field 'nope' on type 'Query'."
    assert error_codes(body) != ["INTERNAL_SERVER_ERROR"]
    assert body.get("data") is None

    body = await gql(client, "{ me ", token=account.token, expect_errors=True)
    assert body["errors"][0]["message"].startswith("Syntax Error:")
    assert body.get("data") is None

    body = await gql(client, "{ dossiers(first: 1) { nodes { idd } } }", expect_errors=True)
    assert body["errors"][0]["message"].startswith("Cannot query field 'idd' on type 'Dossier'.")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- introspection --------------------------------------------------------------------


async def test_introspection_is_off_in_production_and_on_in_development():
    production = build_schema(Settings(**PRODUCTION))
    for query in (INTROSPECTION, TYPE_INTROSPECTION):
        result = await production.execute(query)
        assert result.errors, query
        assert result.data is None
        assert "introspection" in result.errors[0].message.lower()
    # Plain __typename is not introspection of the schema.
    result = await production.execute("{ __typename }")
    assert result.errors is None
    assert result.data == {"__typename": "Query"}

    development = build_schema(Settings(env="development"))
    result = await development.execute(INTROSPECTION)
    assert result.errors is None
    assert result.data["__schema"]["queryType"]["name"] == "Query"
    assert "Dossier" in {t["name"] for t in result.data["__schema"]["types"]}
    result = await development.execute(TYPE_INTROSPECTION)
    assert result.errors is None
    assert "currentStep" in {f["name"] for f in result.data["__type"]["fields"]}


async def test_introspection_over_http_in_production():
    app = create_app(Settings(**PRODUCTION), manage_db=False)
    async with _http(app) as http:
        response = await http.post("/graphql", json={"query": INTROSPECTION})
    body = response.json()
    assert body.get("data") is None
    assert body["errors"]
