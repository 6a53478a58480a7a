"""Identity through the GraphQL API: login, tokens, `me`, agents, own profile, passwords."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from app.models import Agent, Credential, Event, Profile
from app.models.enums import AgentRole, Locale
from app.security import JWT_ALGORITHM, hash_password, issue_token, verify_password
from app.services.sessions import open_session
from app.settings import get_settings
from tests.factories import PASSWORD, make_admin, make_agent, make_client, token_for
from tests.helpers import error_codes, gql

NEW_PASSWORD = "a-much-better-passphrase"

LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    token
    expiresAt
    viewer {
      __typename
      ... on Profile { id email fullName }
      ... on Agent { id email name role }
    }
    userErrors { field message code }
  }
}
"""

ME = """
query Me {
  me {
    __typename
    ... on Profile { id email fullName phone status locale }
    ... on Agent { id email name role active locale }
  }
}
"""

CREATE_AGENT = """
mutation CreateAgent($input: CreateAgentInput!) {
  createAgent(input: $input) {
    agent { id email name role active locale }
    userErrors { field message code }
  }
}
"""

UPDATE_AGENT = """
mutation UpdateAgent($input: UpdateAgentInput!) {
  updateAgent(input: $input) {
    agent { id email name role active locale }
    userErrors { field message code }
  }
}
"""

UPDATE_MY_PROFILE = """
mutation UpdateMyProfile($input: UpdateMyProfileInput!) {
  updateMyProfile(input: $input) {
    viewer {
      __typename
      ... on Profile { id fullName phone locale }
      ... on Agent { id name locale }
    }
    userErrors { field message code }
  }
}
"""

CHANGE_PASSWORD = """
mutation ChangePassword($input: ChangePasswordInput!) {
  changePassword(input: $input) {
    token
    expiresAt
    userErrors { field message code }
  }
}
"""

AGENTS = """
query Agents($first: Int, $after: String, $last: Int, $before: String,
             $includeInactive: Boolean! = false) {
  agents(first: $first, after: $after, last: $last, before: $before,
         includeInactive: $includeInactive) {
    totalCount
    edges { cursor node { id email active } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


# --- helpers -----------------------------------------------------------------------------


async def login(client, email: str, password: str) -> dict:
    data = await gql(client, LOGIN, {"email": email, "password": password})
    return data["login"]


async def me_error_codes(client, *, token: str | None = None, header: str | None = None):
    headers = {"authorization": header} if header is not None else None
    body = await gql(client, ME, token=token, headers=headers, expect_errors=True)
    assert body.get("data") is None
    return error_codes(body)


async def me(client, token: str) -> dict:
    return (await gql(client, ME, token=token))["me"]


async def token_claims(email: str) -> dict:
    credential = await Credential.get(email=email)
    token = await token_for(credential)
    return jwt.decode(token, options={"verify_signature": False})


async def agent_state() -> list[dict]:
    return [
        {k: v for k, v in row.items() if k != "updated_at"}
        for row in await Agent.all().order_by("id").values()
    ]


async def credential_state() -> list[dict]:
    return await Credential.all().order_by("id").values("id", "email", "password_hash")


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


# --- login and tokens --------------------------------------------------------------------


async def test_client_logs_in_and_token_works_for_me(client):
    account = await make_client()
    before = datetime.now(UTC)
    payload = await login(client, account.email, PASSWORD)
    assert payload["userErrors"] == []
    assert payload["token"]
    assert payload["viewer"] == {
        "__typename": "Profile",
        "id": account.id,
        "email": account.email,
        "fullName": account.obj.full_name,
    }
    expires = datetime.fromisoformat(payload["expiresAt"])
    ttl = timedelta(minutes=get_settings().access_token_ttl_minutes)
    assert before + ttl - timedelta(minutes=1) <= expires <= datetime.now(UTC) + ttl
    viewer = await me(client, payload["token"])
    assert viewer["__typename"] == "Profile"
    assert viewer["id"] == account.id
    assert viewer["email"] == account.email


async def test_agent_logs_in_with_email_in_any_case(client):
    account = await make_agent()
    payload = await login(client, "  " + account.email.upper() + " ", PASSWORD)
    assert payload["userErrors"] == []
    assert payload["viewer"]["__typename"] == "Agent"
    assert payload["viewer"]["id"] == account.id
    viewer = await me(client, payload["token"])
    assert viewer["__typename"] == "Agent"
    assert viewer["email"] == account.email


@pytest.mark.parametrize(
    "which",
    ["wrong_password", "unknown_email", "malformed_email", "empty_password"],
)
async def test_login_failures_are_indistinguishable(client, which):
    account = await make_client()
    email, password = {
        "wrong_password": (account.email, "not-the-password"),
        "unknown_email": ("nobody-" + account.email, PASSWORD),
        "malformed_email": ("not an email", PASSWORD),
        "empty_password": (account.email, ""),
    }[which]
    payload = await login(client, email, password)
    assert payload["token"] is None
    assert payload["expiresAt"] is None
    assert payload["viewer"] is None
    assert payload["userErrors"] == [
        {"field": None, "message": "Wrong email or password.", "code": "INVALID_CREDENTIALS"}
    ]


async def test_wrong_password_and_unknown_email_answer_the_same(client):
    account = await make_agent()
    wrong_password = await login(client, account.email, PASSWORD + "!")
    unknown_email = await login(client, "ghost@example.com", PASSWORD)
    assert wrong_password == unknown_email
    assert codes(wrong_password) == ["INVALID_CREDENTIALS"]


async def test_hashing_leaves_the_event_loop_free():
    """argon2 runs in the hashing pool (PASSWORD_HASH_WORKERS threads): while a password
    is hashed or verified, the event loop goes on serving everything else. (`make bench`'s
    login flood measures what it changes for a logged-in client.)"""
    ticks = 0
    running = True

    async def ticker() -> None:
        nonlocal ticks
        while running:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    seen = []
    hashed = await hash_password(PASSWORD)
    seen.append(ticks)
    assert await verify_password(hashed, PASSWORD)
    seen.append(ticks)
    assert not await verify_password(None, PASSWORD)  # an unknown account: the dummy hash
    seen.append(ticks)
    running = False
    await ticking
    assert seen[0] > 0
    assert seen[0] < seen[1] < seen[2]


async def test_me_without_token_is_unauthenticated(client):
    assert await me_error_codes(client) == ["UNAUTHENTICATED"]


async def test_expired_token_is_unauthenticated(client):
    account = await make_client()
    credential = await Credential.get(email=account.email)
    session = (await open_session(credential)).session
    fresh, _ = issue_token(credential, session.id)
    expired, expires_at = issue_token(
        credential, session.id, now=datetime.now(UTC) - timedelta(hours=2)
    )
    assert expires_at < datetime.now(UTC)
    # the same credential with a current token works: only the expiry differs
    assert (await me(client, fresh))["id"] == account.id
    assert await me_error_codes(client, token=expired) == ["UNAUTHENTICATED"]


async def test_token_signed_with_another_key_is_unauthenticated(client):
    account = await make_client()
    claims = await token_claims(account.email)
    good = jwt.encode(claims, get_settings().secret_key, algorithm=JWT_ALGORITHM)
    forged = jwt.encode(claims, "another-key-" + "y" * 40, algorithm=JWT_ALGORITHM)
    assert (await me(client, good))["id"] == account.id
    assert await me_error_codes(client, token=forged) == ["UNAUTHENTICATED"]


async def test_unsigned_token_is_unauthenticated(client):
    account = await make_client()
    claims = await token_claims(account.email)
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert await me_error_codes(client, token=unsigned) == ["UNAUTHENTICATED"]


async def test_token_for_unknown_credential_is_unauthenticated(client):
    account = await make_client()
    claims = await token_claims(account.email)
    claims["sub"] = str(uuid.uuid4())
    token = jwt.encode(claims, get_settings().secret_key, algorithm=JWT_ALGORITHM)
    assert await me_error_codes(client, token=token) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "garbage",
    ],
)
async def test_garbage_authorization_is_unauthenticated(client, header):
    await make_client()
    assert await me_error_codes(client, header=header) == ["UNAUTHENTICATED"]


async def test_me_for_a_client_returns_profile_fields(client):
    account = await make_client()
    await Profile.filter(id=account.obj.id).update(phone="+33612345678", locale=Locale.EN)
    assert await me(client, account.token) == {
        "__typename": "Profile",
        "id": account.id,
        "email": account.email,
        "fullName": account.obj.full_name,
        "phone": "+33612345678",
        "status": "ACTIVE",
        "locale": "EN",
    }


async def test_me_for_an_agent_returns_agent_fields(client):
    account = await make_admin()
    assert await me(client, account.token) == {
        "__typename": "Agent",
        "id": account.id,
        "email": account.email,
        "name": account.obj.name,
        "role": "ADMIN",
        "active": True,
        "locale": "FR",
    }


# --- createAgent / updateAgent: admins only -----------------------------------------------


async def _refused_actor_token(actor: str) -> str | None:
    if actor == "agent":
        return (await make_agent()).token
    if actor == "client":
        return (await make_client()).token
    return None


@pytest.mark.parametrize(
    ("actor", "code"),
    [("agent", "FORBIDDEN"), ("client", "FORBIDDEN"), ("anonymous", "UNAUTHENTICATED")],
)
async def test_create_agent_refused_to_non_admins(client, actor, code):
    token = await _refused_actor_token(actor)
    agents, credentials = await agent_state(), await credential_state()
    events = await Event.all().count()
    body = await gql(
        client,
        CREATE_AGENT,
        {
            "input": {
                "email": "intruder@example.com",
                "name": "Intruder",
                "password": PASSWORD,
                "role": "ADMIN",
            }
        },
        token=token,
        expect_errors=True,
    )
    assert error_codes(body) == [code]
    assert body["data"] is None
    assert await agent_state() == agents
    assert await credential_state() == credentials
    assert await Event.all().count() == events
    assert not await Credential.filter(email="intruder@example.com").exists()


@pytest.mark.parametrize(
    ("actor", "code"),
    [("agent", "FORBIDDEN"), ("client", "FORBIDDEN"), ("anonymous", "UNAUTHENTICATED")],
)
async def test_update_agent_refused_to_non_admins(client, actor, code):
    target = await make_agent()
    token = await _refused_actor_token(actor)
    agents = await agent_state()
    events = await Event.all().count()
    body = await gql(
        client,
        UPDATE_AGENT,
        {"input": {"id": target.id, "name": "Hijacked", "role": "ADMIN", "active": False}},
        token=token,
        expect_errors=True,
    )
    assert error_codes(body) == [code]
    assert body["data"] is None
    assert await agent_state() == agents
    assert await Event.all().count() == events
    refreshed = await Agent.get(id=target.obj.id)
    assert (refreshed.name, refreshed.role, refreshed.active) == (
        target.obj.name,
        AgentRole.AGENT,
        True,
    )


async def test_an_agent_cannot_promote_themself(client):
    account = await make_agent()
    body = await gql(
        client,
        UPDATE_AGENT,
        {"input": {"id": account.id, "role": "ADMIN"}},
        token=account.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["FORBIDDEN"]
    assert (await Agent.get(id=account.obj.id)).role == AgentRole.AGENT


async def test_admin_creates_an_agent_who_can_log_in(client):
    admin = await make_admin()
    data = await gql(
        client,
        CREATE_AGENT,
        {
            "input": {
                "email": "  New.Agent@Example.COM ",
                "name": "  New Agent ",
                "password": NEW_PASSWORD,
                "locale": "EN",
            }
        },
        token=admin.token,
    )
    payload = data["createAgent"]
    assert payload["userErrors"] == []
    agent = payload["agent"]
    assert agent["email"] == "new.agent@example.com"
    assert agent["name"] == "New Agent"
    assert agent["role"] == "AGENT"
    assert agent["active"] is True
    assert agent["locale"] == "EN"

    stored = await Agent.get(id=agent["id"])
    assert stored.email == "new.agent@example.com"
    credential = await Credential.get(email="new.agent@example.com")
    assert str(credential.agent_id) == agent["id"]  # type: ignore[attr-defined]
    assert credential.password_hash != NEW_PASSWORD  # hashed, not stored in clear

    session = await login(client, "NEW.AGENT@example.com", NEW_PASSWORD)
    assert session["userErrors"] == []
    viewer = await me(client, session["token"])
    assert viewer["__typename"] == "Agent"
    assert viewer["id"] == agent["id"]
    assert viewer["role"] == "AGENT"
    # a plain agent is not an admin
    body = await gql(client, AGENTS, token=session["token"], expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]


async def test_admin_creates_another_admin(client):
    admin = await make_admin()
    data = await gql(
        client,
        CREATE_AGENT,
        {
            "input": {
                "email": "second.admin@example.com",
                "name": "Second",
                "password": NEW_PASSWORD,
                "role": "ADMIN",
            }
        },
        token=admin.token,
    )
    assert data["createAgent"]["agent"]["role"] == "ADMIN"
    session = await login(client, "second.admin@example.com", NEW_PASSWORD)
    listed = await gql(client, AGENTS, token=session["token"])
    assert listed["agents"]["totalCount"] == 2


@pytest.mark.parametrize("owner", ["agent", "client", "agent_other_case", "client_other_case"])
async def test_create_agent_with_a_taken_email(client, owner):
    admin = await make_admin()
    existing = await (make_agent() if owner.startswith("agent") else make_client())
    email = existing.email.upper() if owner.endswith("other_case") else existing.email
    agents, credentials = await agent_state(), await credential_state()
    data = await gql(
        client,
        CREATE_AGENT,
        {"input": {"email": email, "name": "Copycat", "password": NEW_PASSWORD}},
        token=admin.token,
    )
    payload = data["createAgent"]
    assert payload["agent"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("EMAIL_TAKEN", ["email"])]
    assert await agent_state() == agents
    assert await credential_state() == credentials


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"password": "short"}, "WEAK_PASSWORD", ["password"]),
        ({"password": ""}, "WEAK_PASSWORD", ["password"]),
        ({"password": "x" * 257}, "WEAK_PASSWORD", ["password"]),
        ({"password": "nine-char"}, "WEAK_PASSWORD", ["password"]),  # 10 at least
        ({"password": "qwertyuiop"}, "WEAK_PASSWORD", ["password"]),  # a common one
        ({"password": "Password123"}, "WEAK_PASSWORD", ["password"]),  # in any case
        ({"password": "my-valid@example.com"}, "WEAK_PASSWORD", ["password"]),  # the e-mail
        ({"password": "just-VALID-2026"}, "WEAK_PASSWORD", ["password"]),  # its local part
        ({"name": "Jeanne Dupont", "password": "dupont-77-x"}, "WEAK_PASSWORD", ["password"]),
        ({"email": "not-an-email"}, "INVALID_EMAIL", ["email"]),
        ({"name": "   "}, "REQUIRED", ["name"]),
        ({"name": "n" * 201}, "TOO_LONG", ["name"]),
    ],
)
async def test_create_agent_validation(client, override, code, field):
    admin = await make_admin()
    agents, credentials = await agent_state(), await credential_state()
    events = await Event.all().count()
    agent_input = {"email": "valid@example.com", "name": "Valid", "password": NEW_PASSWORD}
    data = await gql(
        client, CREATE_AGENT, {"input": {**agent_input, **override}}, token=admin.token
    )
    payload = data["createAgent"]
    assert payload["agent"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)]
    assert await agent_state() == agents
    assert await credential_state() == credentials
    assert await Event.all().count() == events


async def test_deactivated_agent_loses_access(client):
    admin = await make_admin()
    target = await make_agent()
    assert (await me(client, target.token))["id"] == target.id

    data = await gql(
        client, UPDATE_AGENT, {"input": {"id": target.id, "active": False}}, token=admin.token
    )
    payload = data["updateAgent"]
    assert payload["userErrors"] == []
    assert payload["agent"]["active"] is False
    assert payload["agent"]["name"] == target.obj.name  # absent fields unchanged
    assert (await Agent.get(id=target.obj.id)).active is False

    # the token issued before the deactivation stops working
    assert await me_error_codes(client, token=target.token) == ["UNAUTHENTICATED"]
    # and a new login is refused, saying why
    session = await login(client, target.email, PASSWORD)
    assert session["token"] is None
    assert codes(session) == ["ACCOUNT_DISABLED"]
    # a wrong password still reveals nothing about the account
    assert codes(await login(client, target.email, "wrong-password")) == ["INVALID_CREDENTIALS"]

    # reactivated, they can log in again
    data = await gql(
        client, UPDATE_AGENT, {"input": {"id": target.id, "active": True}}, token=admin.token
    )
    assert data["updateAgent"]["agent"]["active"] is True
    session = await login(client, target.email, PASSWORD)
    assert session["userErrors"] == []
    assert (await me(client, session["token"]))["id"] == target.id


@pytest.mark.parametrize(
    ("change", "field"),
    [({"active": False}, ["active"]), ({"role": "AGENT"}, ["role"])],
)
async def test_admin_cannot_deactivate_or_demote_themself(client, change, field):
    admin = await make_admin()
    data = await gql(
        client,
        UPDATE_AGENT,
        {"input": {"id": admin.id, "name": "Changed too", **change}},
        token=admin.token,
    )
    payload = data["updateAgent"]
    assert payload["agent"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("CANNOT_MODIFY_SELF", field)
    ]
    stored = await Agent.get(id=admin.obj.id)
    assert (stored.active, stored.role, stored.name) == (True, AgentRole.ADMIN, admin.obj.name)
    assert (await me(client, admin.token))["role"] == "ADMIN"


async def test_admin_can_rename_themself_and_demote_another_admin(client):
    admin = await make_admin()
    other = await make_admin()
    data = await gql(
        client, UPDATE_AGENT, {"input": {"id": admin.id, "name": "Chief"}}, token=admin.token
    )
    assert data["updateAgent"]["userErrors"] == []
    assert data["updateAgent"]["agent"]["name"] == "Chief"

    data = await gql(
        client, UPDATE_AGENT, {"input": {"id": other.id, "role": "AGENT"}}, token=admin.token
    )
    assert data["updateAgent"]["agent"]["role"] == "AGENT"
    body = await gql(client, AGENTS, token=other.token, expect_errors=True)
    assert error_codes(body) == ["FORBIDDEN"]


async def test_update_agent_changes_only_given_fields(client):
    admin = await make_admin()
    target = await make_agent()
    data = await gql(
        client,
        UPDATE_AGENT,
        {"input": {"id": target.id, "role": "ADMIN", "locale": "EN"}},
        token=admin.token,
    )
    agent = data["updateAgent"]["agent"]
    assert (agent["name"], agent["role"], agent["locale"], agent["active"]) == (
        target.obj.name,
        "ADMIN",
        "EN",
        True,
    )
    # the promotion takes effect on the agent's existing token
    listed = await gql(client, AGENTS, token=target.token)
    assert listed["agents"]["totalCount"] == 2

    data = await gql(
        client, UPDATE_AGENT, {"input": {"id": target.id, "name": "  "}}, token=admin.token
    )
    assert [(e["code"], e["field"]) for e in data["updateAgent"]["userErrors"]] == [
        ("REQUIRED", ["name"])
    ]
    assert (await Agent.get(id=target.obj.id)).name == target.obj.name


@pytest.mark.parametrize("agent_id", ["not-a-uuid", "", str(uuid.uuid4()), "client"])
async def test_update_agent_with_malformed_or_unknown_id_is_not_found(client, agent_id):
    admin = await make_admin()
    if agent_id == "client":  # a profile's id is not an agent's
        agent_id = (await make_client()).id
    agents = await agent_state()
    body = await gql(
        client,
        UPDATE_AGENT,
        {"input": {"id": agent_id, "name": "Nobody"}},
        token=admin.token,
        expect_errors=True,
    )
    assert error_codes(body) == ["NOT_FOUND"]
    assert body["data"] is None
    assert await agent_state() == agents


# --- updateMyProfile ---------------------------------------------------------------------


async def test_client_updates_their_profile(client):
    account = await make_client()
    data = await gql(
        client,
        UPDATE_MY_PROFILE,
        {"input": {"fullName": "  Jeanne Martin ", "phone": "+33 6 12 34 56 78", "locale": "EN"}},
        token=account.token,
    )
    payload = data["updateMyProfile"]
    assert payload["userErrors"] == []
    assert payload["viewer"] == {
        "__typename": "Profile",
        "id": account.id,
        "fullName": "Jeanne Martin",
        "phone": "+33612345678",
        "locale": "EN",
    }
    viewer = await me(client, account.token)
    assert (viewer["fullName"], viewer["phone"], viewer["locale"]) == (
        "Jeanne Martin",
        "+33612345678",
        "EN",
    )
    stored = await Profile.get(id=account.obj.id)
    assert (stored.full_name, stored.phone, stored.locale) == (
        "Jeanne Martin",
        "+33612345678",
        Locale.EN,
    )

    # only the locale: the rest stays
    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"locale": "FR"}}, token=account.token)
    assert data["updateMyProfile"]["viewer"]["fullName"] == "Jeanne Martin"
    assert data["updateMyProfile"]["viewer"]["phone"] == "+33612345678"
    assert data["updateMyProfile"]["viewer"]["locale"] == "FR"

    # phone: null clears it
    data = await gql(client, UPDATE_MY_PROFILE, {"input": {"phone": None}}, token=account.token)
    assert data["updateMyProfile"]["viewer"]["phone"] is None
    assert (await Profile.get(id=account.obj.id)).phone is None
    assert (await Profile.get(id=account.obj.id)).full_name == "Jeanne Martin"


async def test_agent_updates_their_name(client):
    account = await make_agent()
    data = await gql(
        client,
        UPDATE_MY_PROFILE,
        {"input": {"fullName": "Agent Smith", "locale": "EN"}},
        token=account.token,
    )
    payload = data["updateMyProfile"]
    assert payload["userErrors"] == []
    assert payload["viewer"] == {
        "__typename": "Agent",
        "id": account.id,
        "name": "Agent Smith",
        "locale": "EN",
    }
    assert (await Agent.get(id=account.obj.id)).name == "Agent Smith"
    assert (await me(client, account.token))["name"] == "Agent Smith"


async def test_agent_phone_is_not_applicable(client):
    account = await make_agent()
    data = await gql(
        client,
        UPDATE_MY_PROFILE,
        {"input": {"fullName": "Should Not Stick", "phone": "+33612345678"}},
        token=account.token,
    )
    payload = data["updateMyProfile"]
    assert payload["viewer"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("NOT_APPLICABLE", ["phone"])
    ]
    assert (await Agent.get(id=account.obj.id)).name == account.obj.name


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"fullName": "   "}, "REQUIRED", ["fullName"]),
        ({"fullName": "x" * 201}, "TOO_LONG", ["fullName"]),
        ({"phone": "1" * 33}, "TOO_LONG", ["phone"]),
    ],
)
async def test_update_my_profile_validation(client, change, code, field):
    account = await make_client()
    data = await gql(client, UPDATE_MY_PROFILE, {"input": change}, token=account.token)
    payload = data["updateMyProfile"]
    assert payload["viewer"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, field)]
    stored = await Profile.get(id=account.obj.id)
    assert (stored.full_name, stored.phone) == (account.obj.full_name, None)


async def test_update_my_profile_needs_a_token(client):
    body = await gql(client, UPDATE_MY_PROFILE, {"input": {"fullName": "Anon"}}, expect_errors=True)
    assert error_codes(body) == ["UNAUTHENTICATED"]


# --- changePassword ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["client", "agent"])
async def test_change_password(client, kind):
    account = await (make_client() if kind == "client" else make_agent())
    old_token = (await login(client, account.email, PASSWORD))["token"]
    assert (await me(client, old_token))["id"] == account.id

    data = await gql(
        client,
        CHANGE_PASSWORD,
        {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}},
        token=old_token,
    )
    payload = data["changePassword"]
    assert payload["userErrors"] == []
    new_token = payload["token"]
    assert new_token
    assert datetime.fromisoformat(payload["expiresAt"]) > datetime.now(UTC)

    # the new token works, every older one is refused
    assert (await me(client, new_token))["id"] == account.id
    assert await me_error_codes(client, token=old_token) == ["UNAUTHENTICATED"]
    assert await me_error_codes(client, token=account.token) == ["UNAUTHENTICATED"]

    # the old password no longer logs in, the new one does
    assert codes(await login(client, account.email, PASSWORD)) == ["INVALID_CREDENTIALS"]
    session = await login(client, account.email, NEW_PASSWORD)
    assert session["userErrors"] == []
    assert (await me(client, session["token"]))["id"] == account.id


async def test_quick_successive_password_changes_each_revoke_older_tokens(client):
    # Start at the top of a second so that the account's creation, its first token and the
    # first change share one second (tokens carry whole seconds).
    await asyncio.sleep(1.02 - datetime.now(UTC).microsecond / 1_000_000)
    account = await make_client()
    tokens = [account.token]
    passwords = [PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "-2", NEW_PASSWORD + "-3"]
    for current, new in itertools.pairwise(passwords):
        data = await gql(
            client,
            CHANGE_PASSWORD,
            {"input": {"currentPassword": current, "newPassword": new}},
            token=tokens[-1],
        )
        assert data["changePassword"]["userErrors"] == []
        tokens.append(data["changePassword"]["token"])
    assert (await me(client, tokens[-1]))["id"] == account.id
    for old in tokens[:-1]:
        assert await me_error_codes(client, token=old) == ["UNAUTHENTICATED"]
    assert (await login(client, account.email, passwords[-1]))["userErrors"] == []


async def test_change_password_with_wrong_current_password(client):
    account = await make_client()
    hash_before = (await Credential.get(email=account.email)).password_hash
    data = await gql(
        client,
        CHANGE_PASSWORD,
        {"input": {"currentPassword": "not-my-password", "newPassword": NEW_PASSWORD}},
        token=account.token,
    )
    payload = data["changePassword"]
    assert payload["token"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("INVALID_CREDENTIALS", ["currentPassword"])
    ]
    # nothing changed: the token still works, the old password still logs in
    assert (await Credential.get(email=account.email)).password_hash == hash_before
    assert (await me(client, account.token))["id"] == account.id
    assert (await login(client, account.email, PASSWORD))["userErrors"] == []
    assert codes(await login(client, account.email, NEW_PASSWORD)) == ["INVALID_CREDENTIALS"]


@pytest.mark.parametrize(
    ("new_password", "code"),
    [("short", "WEAK_PASSWORD"), (PASSWORD, "SAME_PASSWORD")],
)
async def test_change_password_rejects_bad_new_password(client, new_password, code):
    account = await make_client()
    data = await gql(
        client,
        CHANGE_PASSWORD,
        {"input": {"currentPassword": PASSWORD, "newPassword": new_password}},
        token=account.token,
    )
    payload = data["changePassword"]
    assert payload["token"] is None
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, ["newPassword"])]
    assert (await me(client, account.token))["id"] == account.id
    assert (await login(client, account.email, PASSWORD))["userErrors"] == []


async def test_password_refusals_say_why(client):
    admin = await make_admin()

    async def refusal(password: str) -> str:
        agent_input = {"email": "jeanne@example.com", "name": "Jeanne Dupont",
                       "password": password}  # fmt: skip
        data = await gql(client, CREATE_AGENT, {"input": agent_input}, token=admin.token)
        (error,) = data["createAgent"]["userErrors"]
        return error["message"]

    assert "10 to 256 characters" in await refusal("too-short")
    assert "most common" in await refusal("1234567890")
    assert "e-mail address or name" in await refusal("jeanne-2026-spring")
    assert "e-mail address or name" in await refusal("spring-DUPONT-2026")


async def test_a_new_password_must_not_contain_the_own_email(client):
    account = await make_client()
    local = account.email.split("@")[0]
    data = await gql(
        client,
        CHANGE_PASSWORD,
        {"input": {"currentPassword": PASSWORD, "newPassword": f"{local}-and-more"}},
        token=account.token,
    )
    assert [e["code"] for e in data["changePassword"]["userErrors"]] == ["WEAK_PASSWORD"]
    assert (await login(client, account.email, PASSWORD))["userErrors"] == []


async def test_change_password_needs_a_token(client):
    body = await gql(
        client,
        CHANGE_PASSWORD,
        {"input": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}},
        expect_errors=True,
    )
    assert error_codes(body) == ["UNAUTHENTICATED"]


# --- the agents list ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "code"),
    [("agent", "FORBIDDEN"), ("client", "FORBIDDEN"), ("anonymous", "UNAUTHENTICATED")],
)
async def test_agents_list_is_admin_only(client, actor, code):
    await make_admin()
    token = await _refused_actor_token(actor)
    body = await gql(client, AGENTS, token=token, expect_errors=True)
    assert error_codes(body) == [code]
    assert body["data"] is None


async def test_agents_list_is_paginated(client):
    admin = await make_admin()
    others = [await make_agent() for _ in range(6)]
    inactive = await make_agent(active=False)
    expected_ids = {admin.id, *(a.id for a in others)}

    everything = (await gql(client, AGENTS, {"first": 100}, token=admin.token))["agents"]
    assert everything["totalCount"] == 7
    order = [edge["node"]["id"] for edge in everything["edges"]]
    assert set(order) == expected_ids
    assert inactive.id not in order
    assert everything["pageInfo"]["hasNextPage"] is False

    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await gql(client, AGENTS, {"first": 3, "after": after}, token=admin.token))[
            "agents"
        ]
        pages += 1
        assert page["totalCount"] == 7
        assert len(page["edges"]) <= 3
        seen += [edge["node"]["id"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert pages < 10
    assert pages == 3
    assert seen == order  # same order, no duplicates, nothing missed

    tail = (await gql(client, AGENTS, {"last": 2}, token=admin.token))["agents"]
    assert [edge["node"]["id"] for edge in tail["edges"]] == order[-2:]
    assert tail["pageInfo"]["hasPreviousPage"] is True
    before = (
        await gql(
            client,
            AGENTS,
            {"last": 2, "before": tail["pageInfo"]["startCursor"]},
            token=admin.token,
        )
    )["agents"]
    assert [edge["node"]["id"] for edge in before["edges"]] == order[-4:-2]

    with_inactive = (
        await gql(client, AGENTS, {"first": 100, "includeInactive": True}, token=admin.token)
    )["agents"]
    assert with_inactive["totalCount"] == 8
    listed = {edge["node"]["id"]: edge["node"]["active"] for edge in with_inactive["edges"]}
    assert listed[inactive.id] is False

    body = await gql(client, AGENTS, {"first": 101}, token=admin.token, expect_errors=True)
    assert error_codes(body) == ["BAD_USER_INPUT"]
