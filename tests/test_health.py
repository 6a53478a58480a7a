"""Probes and the request id."""

from __future__ import annotations

import re

import httpx
import pytest

from app.main import create_app
from app.settings import Settings, get_settings

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok"


async def test_readyz(client, backend):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["checks"]["database"] == "ok"
    if backend.is_postgres:
        assert get_settings().redis_url == backend.redis_url
        assert body["checks"]["redis"] == "ok"
    else:
        assert "redis" not in body["checks"]


async def test_readyz_reports_an_unreachable_redis():
    settings = Settings(**{**get_settings().model_dump(), "redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(settings, manage_db=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/graphql", "/no-such-route"])
async def test_every_response_carries_a_request_id(client, path):
    first = await client.get(path, headers={"accept": "application/json"})
    second = await client.get(path, headers={"accept": "application/json"})
    assert GENERATED_ID.match(first.headers["x-request-id"])
    assert GENERATED_ID.match(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize("sane", ["abc123", "A" * 64, "0123456789abcdef0123456789abcdef", "7"])
async def test_a_sane_incoming_request_id_is_kept(client, sane):
    response = await client.get("/healthz", headers={"x-request-id": sane})
    assert response.headers.get_list("x-request-id") == [sane]
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"x-request-id": sane}
    )
    assert response.headers.get_list("x-request-id") == [sane]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("A" * 65, id="too-long"),
        pytest.param("x" * 10_000, id="much-too-long"),
        pytest.param("abc-123", id="dash"),
        pytest.param("abc 123", id="space"),
        pytest.param("<script>alert(1)</script>", id="markup"),
        pytest.param("id;rm -rf /", id="shell"),
        pytest.param("ab%0d%0aSet-Cookie:x=1", id="encoded-crlf"),
        pytest.param("", id="empty"),
        pytest.param(b"\xe9t\xe9", id="latin-1-letters"),
        pytest.param(b"\xb2\xb3", id="latin-1-superscript-digits"),
    ],
)
async def test_a_malicious_incoming_request_id_is_replaced(client, bad):
    response = await client.get("/healthz", headers={"x-request-id": bad})
    assert response.status_code == 200
    (echoed,) = response.headers.get_list("x-request-id")
    assert GENERATED_ID.match(echoed), echoed
