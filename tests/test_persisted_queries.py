"""Persisted queries (Apollo's APQ), trusted documents, and the cache headers of GETs."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from app.http.graphql_http import GRAPHQL_RESPONSE_JSON
from app.services.persisted_queries import MemoryStore, document_hash, read_manifest
from app.services.throttle import deployment_prefix
from app.settings import get_settings
from tests.factories import make_admin, make_agent, make_client
from tests.helpers import count_statements, error_codes, gql
from tests.test_abuse import app_with

SPEC = {"accept": GRAPHQL_RESPONSE_JSON}
REGISTER = """
mutation Register($input: RegisterTrustedDocumentsInput!) {
  registerTrustedDocuments(input: $input) {
    documents { sha256Hash operationName }
    userErrors { field code message }
  }
}
"""


def unique(document: str) -> str:
    """The document with a comment of its own: a hash no earlier run has persisted."""
    return f"{document} # {uuid.uuid4().hex}"


def persisted(document: str) -> dict:
    return {"persistedQuery": {"version": 1, "sha256Hash": document_hash(document)}}


async def post(client, body, headers=None):
    return await client.post(
        "/graphql", json=body, headers={"content-type": "application/json", **(headers or {})}
    )


async def get(client, document_or_hash: dict, headers=None, **params):
    query = {"extensions": json.dumps(document_or_hash), **params}
    return await client.get("/graphql", params=query, headers=headers or {})


async def test_apq_round_trip_miss_register_then_hit_over_get(client):
    account = await make_client()
    auth = {"authorization": f"Bearer {account.token}"}
    document = unique("query Me { me { ... on Profile { fullName } } }")
    extensions = persisted(document)

    # 1. the hash alone: not known yet (200 for older clients, 404 with the spec's type)
    miss = await post(client, {"extensions": extensions}, auth)
    assert miss.status_code == 200
    assert error_codes(miss.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert miss.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    spec_miss = await get(client, extensions, {**auth, **SPEC})
    assert spec_miss.status_code == 404
    assert "data" not in spec_miss.json()

    # 2. the client resends with the document: it runs and is persisted
    registered = await post(client, {"query": document, "extensions": extensions}, auth)
    assert registered.json() == {"data": {"me": {"fullName": account.obj.full_name}}}

    # 3. the hash alone now runs, over POST and GET
    hit = await post(client, {"extensions": extensions}, auth)
    assert hit.json() == registered.json()
    over_get = await get(client, extensions, auth, operationName="Me")
    assert over_get.status_code == 200
    assert over_get.json() == registered.json()
    # an authenticated answer is never for a shared cache
    assert over_get.headers["cache-control"] == "private, no-store"
    assert "Authorization" in over_get.headers["vary"]


async def test_a_hash_that_is_not_the_documents_is_refused_and_nothing_is_kept(client):
    account = await make_client()
    auth = {"authorization": f"Bearer {account.token}"}
    document = unique("{ me { __typename } }")
    other = unique("{ __typename }")
    lie = persisted(other)
    with count_statements() as statements:
        refused = await post(client, {"query": document, "extensions": lie}, auth)
    assert refused.status_code == 400
    assert error_codes(refused.json()) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert statements == []  # refused before anything ran
    # the lying hash names nothing
    after = await post(client, {"extensions": lie}, auth)
    assert error_codes(after.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    bad = await post(client, {"extensions": {"persistedQuery": {"version": 2}}}, auth)
    assert bad.status_code == 400
    assert error_codes(bad.json()) == ["PERSISTED_QUERY_INVALID"]


async def test_get_cache_headers_are_public_only_for_anonymous_error_free_persisted_queries(
    client,
):
    document = unique("query Ping { __typename }")
    extensions = persisted(document)
    await post(client, {"query": document, "extensions": extensions})

    public = await get(client, extensions)
    assert public.status_code == 200
    assert public.json() == {"data": {"__typename": "Query"}}
    max_age = get_settings().public_cache_max_age_seconds
    assert public.headers["cache-control"] == f"public, max-age={max_age}"
    assert {v.strip() for v in public.headers["vary"].split(",")} == {
        "Accept",
        "Authorization",
        "Cookie",
    }

    account = await make_client()
    for credentials in ({"authorization": f"Bearer {account.token}"}, {"cookie": "a=b"}):
        private = await get(client, extensions, credentials)
        assert private.status_code == 200
        assert private.headers["cache-control"] == "private, no-store"

    # anonymous but answered with an error (a field that needs a login): private
    secret = unique("{ me { __typename } }")
    await post(client, {"query": secret, "extensions": persisted(secret)})
    refused = await get(client, persisted(secret))
    assert error_codes(refused.json()) == ["UNAUTHENTICATED"]
    assert refused.headers["cache-control"] == "private, no-store"

    # the full document over GET is no persisted query: never public
    full = await client.get("/graphql", params={"query": document})
    assert full.headers["cache-control"] == "private, no-store"


async def test_apq_documents_live_in_redis_under_the_deployments_prefix(backend, client):
    if not backend.redis_url:
        pytest.skip("the embedded default keeps documents in process memory")
    import redis.asyncio as redis

    document = unique("{ __typename }")
    await post(client, {"query": document, "extensions": persisted(document)})
    connection = redis.from_url(backend.redis_url)
    try:
        key = f"{deployment_prefix(get_settings())}apq:{document_hash(document)}"
        assert (await connection.get(key)).decode() == document
        assert 0 < await connection.ttl(key) <= get_settings().persisted_query_ttl_seconds
    finally:
        await connection.aclose()


async def test_the_memory_store_keeps_a_bounded_number_for_a_while():
    store = MemoryStore(size=2, ttl=60)
    for name in ("a", "b", "c"):
        await store.put(name, name.upper())
    assert [await store.get(name) for name in ("a", "b", "c")] == [None, "B", "C"]
    expired = MemoryStore(size=2, ttl=-1)
    await expired.put("a", "A")
    assert await expired.get("a") is None


# --- trusted documents ------------------------------------------------------------------

PING = "query Ping { __typename }"


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({document_hash(PING): PING}))
    return path


def trusted_client(manifest):
    app = app_with(trusted_documents=True, trusted_documents_manifest=str(manifest))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_trusted_mode_refuses_unregistered_operations_before_parsing(manifest):
    account = await make_client()
    auth = {"authorization": f"Bearer {account.token}"}
    async with trusted_client(manifest) as trusted:
        with count_statements() as statements:
            for body in (
                {"query": "{ me { __typename } }"},
                {"query": "{ this does not even parse"},  # refused, not a syntax error
                {"extensions": persisted("{ me { __typename } }")},
            ):
                refused = await post(trusted, body, {**auth, **SPEC})
                assert refused.status_code == 403, body
                assert error_codes(refused.json()) == ["PERSISTED_QUERY_NOT_TRUSTED"], body
                assert "data" not in refused.json()
            legacy = await post(trusted, {"query": "{ me { __typename } }"}, auth)
            assert legacy.status_code == 200
            assert error_codes(legacy.json()) == ["PERSISTED_QUERY_NOT_TRUSTED"]
        # refused on the hash: no token read, no query run (the table is asked: 1 lookup)
        assert all("trusted_documents" in s for s in statements), statements

        # sending a document with its hash does not register it in trusted mode
        document = "{ me { __typename } }"
        await post(trusted, {"query": document, "extensions": persisted(document)}, auth)
        again = await post(trusted, {"extensions": persisted(document)}, auth)
        assert error_codes(again.json()) == ["PERSISTED_QUERY_NOT_TRUSTED"]

        # the manifest's operation runs, in full or by its hash, over POST and GET
        assert (await post(trusted, {"query": PING})).json() == {"data": {"__typename": "Query"}}
        by_hash = await post(trusted, {"extensions": persisted(PING)})
        assert by_hash.json() == {"data": {"__typename": "Query"}}
        over_get = await get(trusted, persisted(PING))
        assert over_get.json() == {"data": {"__typename": "Query"}}
        assert over_get.headers["cache-control"].startswith("public")


async def test_admins_register_trusted_documents_which_then_run(client, manifest):
    admin = await make_admin()
    agent = await make_agent()
    account = await make_client()
    document = "query MyName { me { ... on Profile { fullName } } }"
    variables = {"input": {"documents": [{"document": document}]}}

    denied = await gql(client, REGISTER, variables, token=agent.token, expect_errors=True)
    assert error_codes(denied) == ["FORBIDDEN"]
    wrong = {"input": {"documents": [{"document": document, "sha256Hash": "0" * 64}]}}
    mismatch = await gql(client, REGISTER, wrong, token=admin.token)
    assert [e["code"] for e in mismatch["registerTrustedDocuments"]["userErrors"]] == [
        "HASH_MISMATCH"
    ]
    invalid = {"input": {"documents": [{"document": "{ nope }"}]}}
    bad = await gql(client, REGISTER, invalid, token=admin.token)
    assert bad["registerTrustedDocuments"]["userErrors"][0]["code"] == "INVALID_DOCUMENT"

    auth = {"authorization": f"Bearer {account.token}"}
    async with trusted_client(manifest) as trusted:
        before = await post(trusted, {"query": document}, auth)
        assert error_codes(before.json()) == ["PERSISTED_QUERY_NOT_TRUSTED"]

        done = await gql(client, REGISTER, variables, token=admin.token)
        assert done["registerTrustedDocuments"] == {
            "documents": [{"sha256Hash": document_hash(document), "operationName": "MyName"}],
            "userErrors": [],
        }
        expected = {"data": {"me": {"fullName": account.obj.full_name}}}
        assert (await post(trusted, {"query": document}, auth)).json() == expected
        by_hash = await post(trusted, {"extensions": persisted(document)}, auth)
        assert by_hash.json() == expected
    # registering it again changes nothing
    again = await gql(client, REGISTER, variables, token=admin.token)
    assert (
        again["registerTrustedDocuments"]["documents"]
        == done["registerTrustedDocuments"]["documents"]
    )


def test_manifests_of_both_formats_are_read_and_checked(tmp_path):
    apollo = tmp_path / "apollo.json"
    apollo.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [
                    {"id": document_hash(PING), "body": PING, "name": "Ping", "type": "query"}
                ],
            }
        )
    )
    assert read_manifest(apollo) == {document_hash(PING): PING}
    lying = tmp_path / "lying.json"
    lying.write_text(json.dumps({"0" * 64: PING}))
    with pytest.raises(ValueError, match="not the SHA-256"):
        read_manifest(lying)


async def test_trusted_mode_refuses_unregistered_operations_over_the_websocket(tmp_path):
    from gql import gql as document_of
    from gql.transport.exceptions import TransportQueryError
    from graphql import parse, print_ast

    printed = print_ast(parse(PING))  # the text gql sends
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({document_hash(printed): printed}))

    from tests.ws_support import error_codes_of, serve, settings_with, ws_session

    account = await make_client()
    settings = settings_with(trusted_documents=True, trusted_documents_manifest=str(manifest))
    async with serve(settings) as served, ws_session(served.ws_url, account.token) as session:
        with pytest.raises(TransportQueryError) as refused:
            async for _ in session.subscribe(
                document_of("subscription { notificationAdded { id } }")
            ):
                pass
        assert error_codes_of(refused.value) == ["PERSISTED_QUERY_NOT_TRUSTED"]
        # the manifest's operation runs over the socket too
        assert await session.execute(document_of(PING)) == {"__typename": "Query"}
