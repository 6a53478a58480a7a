"""Accounts a firm can trust (issue 15), through the GraphQL API as clients use it:
sessions with rotating refresh tokens and logout, password recovery, invitations,
two-factor login, throttled attempts and the account's audit trail.

E-mails go through the outbox and the delivery worker to a real SMTP server (aiosmtpd);
time-based rules run on `app.clock`, moved forward instead of waited for.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from email.message import EmailMessage

import pyotp
import pytest

from app import clock
from app.models import AccountToken, Credential, Event
from app.models.enums import EventType
from app.services import outbox
from app.services.delivery import deliver_due
from app.settings import get_settings
from app.subscriptions import topics
from tests.factories import PASSWORD, make_admin, make_agent, make_client, make_dossier, unique
from tests.helpers import error_codes, gql
from tests.notifications_support import SmtpPeer, parts, peer_settings
from tests.test_chat import MESSAGE_ADDED, send
from tests.ws_support import Feed, error_codes_of, serve, settings_with, wait_until, ws_session

NEW_PASSWORD = "orchard-lantern-5531"
BROWSER = {"user-agent": "Mozilla/5.0 (test) Firefox/140.0"}

LOGIN = """
mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    token expiresAt refreshToken refreshExpiresAt
    session { id ipAddress userAgent current }
    twoFactor { token expiresAt enrolmentUri }
    userErrors { code field message retryAfter }
  }
}
"""
REFRESH = """
mutation($refreshToken: String!) {
  refreshSession(input: {refreshToken: $refreshToken}) {
    token refreshToken session { id } userErrors { code message }
  }
}
"""
ME = "{ me { __typename ... on Profile { id } ... on Agent { id } } }"
LOGOUT = "mutation { logout { ok } }"
LOGOUT_EVERYWHERE = "mutation { logoutEverywhere { ended } }"
MY_SESSIONS = """
{ mySessions(first: 10) { nodes { id ipAddress userAgent current lastUsedAt expiresAt } } }
"""
REVOKE = "mutation($id: ID!) { revokeSession(id: $id) { ok } }"
REQUEST_RESET = """
mutation($email: String!) {
  requestPasswordReset(input: {email: $email}) { ok userErrors { code message retryAfter } }
}
"""
RESET = """
mutation($input: ResetPasswordInput!) {
  resetPassword(input: $input) { ok userErrors { code field message } }
}
"""
CHANGE_PASSWORD = """
mutation($current: String!, $new: String!) {
  changePassword(input: {currentPassword: $current, newPassword: $new}) {
    token userErrors { code }
  }
}
"""
CREATE_AGENT = """
mutation($email: String!, $name: String!) {
  createAgent(input: {email: $email, name: $name}) { agent { id email } userErrors { code } }
}
"""
INVITE_CLIENT = """
mutation($email: String!, $name: String!) {
  inviteClient(input: {email: $email, fullName: $name}) { profile { id } userErrors { code } }
}
"""
RESEND = """
mutation($id: ID!) { resendInvitation(input: {accountId: $id}) { ok userErrors { code } } }
"""
ACCEPT = """
mutation($token: String!, $password: String!) {
  acceptInvitation(input: {token: $token, password: $password}) {
    token refreshToken viewer { __typename ... on Agent { id email } ... on Profile { id } }
    userErrors { code field message }
  }
}
"""
BEGIN_2FA = "mutation { beginTwoFactorEnrolment { otpauthUri secret userErrors { code } } }"
CONFIRM_2FA = """
mutation($code: String!) {
  confirmTwoFactorEnrolment(input: {code: $code}) { recoveryCodes userErrors { code } }
}
"""
COMPLETE_2FA = """
mutation($challenge: String!, $code: String!) {
  completeTwoFactorLogin(input: {challenge: $challenge, code: $code}) {
    token refreshToken recoveryCodes userErrors { code message retryAfter }
  }
}
"""
DISABLE_2FA = """
mutation($password: String!, $code: String!) {
  disableTwoFactor(input: {password: $password, code: $code}) { ok userErrors { code } }
}
"""
ACCOUNT_EVENTS = """
query($id: ID!) {
  accountEvents(accountId: $id, first: 20) { nodes { eventType payload } }
}
"""


@pytest.fixture(scope="module")
def smtp_server():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.reset()
    return smtp_server


async def login(client, email: str, password: str = PASSWORD, headers=None) -> dict:
    return (await gql(client, LOGIN, {"email": email, "password": password}, headers=headers))[
        "login"
    ]


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


async def me_codes(client, token: str) -> list[str | None]:
    body = await client.post(
        "/graphql", json={"query": ME}, headers={"authorization": f"Bearer {token}"}
    )
    return error_codes(body.json())


async def mails(smtp: SmtpPeer) -> list[EmailMessage]:
    """Everything the outbox and one delivery pass send now."""
    await outbox.drain(5)
    await outbox.dispatch()
    await deliver_due(settings=peer_settings(smtp=smtp))
    return list(smtp.accepted)


def link_token(message: EmailMessage) -> str:
    text, _ = parts(message)
    found = re.search(r"\?token=([A-Za-z0-9_.\-]+)", text)
    assert found, text
    return found.group(1)


def mail_code(message: EmailMessage) -> str:
    text, _ = parts(message)
    found = re.search(r"\b(\d{8})\b", text)
    assert found, text
    return found.group(1)


# --- sessions -----------------------------------------------------------------------------


async def test_a_login_opens_a_session_whose_refresh_token_rotates(client):
    account = await make_client()
    first = await login(client, account.email, headers=BROWSER)
    assert codes(first) == []
    assert first["session"]["userAgent"] == BROWSER["user-agent"]
    assert first["session"]["ipAddress"] == "127.0.0.1"
    assert first["session"]["current"] is True
    ttl = timedelta(minutes=get_settings().access_token_ttl_minutes)
    assert ttl == timedelta(minutes=15)  # the default: short, refreshed

    renewed = (await gql(client, REFRESH, {"refreshToken": first["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(renewed) == []
    assert renewed["session"]["id"] == first["session"]["id"]
    assert renewed["refreshToken"] != first["refreshToken"]
    assert await me_codes(client, renewed["token"]) == []
    # the refresh token is kept hashed only
    from app.models import AccountSession

    row = await AccountSession.get(id=first["session"]["id"])
    assert renewed["refreshToken"] not in (row.refresh_token_hash, str(row.id))
    # the new refresh token works in turn
    again = (await gql(client, REFRESH, {"refreshToken": renewed["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(again) == []


async def test_a_refresh_token_used_twice_ends_the_whole_session(client):
    account = await make_client()
    first = await login(client, account.email)
    renewed = (await gql(client, REFRESH, {"refreshToken": first["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(renewed) == []
    # an attacker (or the victim) presents the old one: the session is revoked
    replay = (await gql(client, REFRESH, {"refreshToken": first["refreshToken"]}))["refreshSession"]
    assert codes(replay) == ["REFRESH_TOKEN_REUSED"]
    assert replay["token"] is None
    assert await me_codes(client, renewed["token"]) == ["UNAUTHENTICATED"]
    later = (await gql(client, REFRESH, {"refreshToken": renewed["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(later) == ["SESSION_ENDED"]
    # a garbage token changes nothing and says so
    garbage = (await gql(client, REFRESH, {"refreshToken": "nope"}))["refreshSession"]
    assert codes(garbage) == ["INVALID_REFRESH_TOKEN"]


async def test_logout_ends_this_session_at_once_and_no_other(client):
    account = await make_client()
    phone, laptop = await login(client, account.email), await login(client, account.email)
    assert (await gql(client, LOGOUT, token=phone["token"]))["logout"]["ok"] is True
    assert await me_codes(client, phone["token"]) == ["UNAUTHENTICATED"]
    assert await me_codes(client, laptop["token"]) == []
    refused = (await gql(client, REFRESH, {"refreshToken": phone["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(refused) == ["SESSION_ENDED"]

    ended = (await gql(client, LOGOUT_EVERYWHERE, token=laptop["token"]))["logoutEverywhere"]
    assert ended["ended"] >= 1
    assert await me_codes(client, laptop["token"]) == ["UNAUTHENTICATED"]
    assert await me_codes(client, account.token) == ["UNAUTHENTICATED"]  # the factory's too


async def test_my_sessions_shows_each_login_and_one_can_be_revoked(client):
    account = await make_client()
    phone = await login(client, account.email, headers={"user-agent": "PartnersApp/2.1 iOS"})
    laptop = await login(client, account.email, headers=BROWSER)
    nodes = (await gql(client, MY_SESSIONS, token=laptop["token"]))["mySessions"]["nodes"]
    by_agent = {n["userAgent"]: n for n in nodes}
    assert by_agent["PartnersApp/2.1 iOS"]["current"] is False
    assert by_agent[BROWSER["user-agent"]]["current"] is True
    assert nodes[0]["userAgent"] == BROWSER["user-agent"]  # newest first

    await gql(client, REVOKE, {"id": phone["session"]["id"]}, token=laptop["token"])
    assert await me_codes(client, phone["token"]) == ["UNAUTHENTICATED"]
    nodes = (await gql(client, MY_SESSIONS, token=laptop["token"]))["mySessions"]["nodes"]
    assert phone["session"]["id"] not in {n["id"] for n in nodes}
    # someone else's session is not found (and stays alive)
    other = await make_client()
    theirs = await login(client, other.email)
    body = await gql(
        client, REVOKE, {"id": theirs["session"]["id"]}, token=laptop["token"], expect_errors=True
    )
    assert error_codes(body) == ["NOT_FOUND"]
    assert await me_codes(client, theirs["token"]) == []


async def test_sessions_expire_on_the_clock(client):
    account = await make_client()
    session = await login(client, account.email)
    clock.travel(timedelta(minutes=16))  # past the access token, not the session
    assert await me_codes(client, session["token"]) == ["UNAUTHENTICATED"]
    renewed = (await gql(client, REFRESH, {"refreshToken": session["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(renewed) == []
    assert await me_codes(client, renewed["token"]) == []
    clock.travel(timedelta(days=get_settings().refresh_token_ttl_days, minutes=1))  # idle
    late = (await gql(client, REFRESH, {"refreshToken": renewed["refreshToken"]}))["refreshSession"]
    assert codes(late) == ["SESSION_ENDED"]


async def test_changing_the_password_ends_the_other_sessions(client):
    account = await make_client()
    here, elsewhere = await login(client, account.email), await login(client, account.email)
    changed = (
        await gql(
            client, CHANGE_PASSWORD, {"current": PASSWORD, "new": NEW_PASSWORD}, token=here["token"]
        )
    )["changePassword"]
    assert codes(changed) == []
    assert await me_codes(client, changed["token"]) == []
    assert await me_codes(client, elsewhere["token"]) == ["UNAUTHENTICATED"]
    refused = (await gql(client, REFRESH, {"refreshToken": elsewhere["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(refused) == ["SESSION_ENDED"]
    kept = (await gql(client, REFRESH, {"refreshToken": here["refreshToken"]}))["refreshSession"]
    assert codes(kept) == []


async def test_logout_ends_a_running_subscription(client, live_server):
    owner = await make_client()
    dossier = await make_dossier(owner)
    session = await login(client, owner.email)
    settings = settings_with(subscription_recheck_seconds=0.2)
    async with serve(settings) as server, ws_session(server.ws_url, session["token"]) as ws:
        feed = Feed(ws, MESSAGE_ADDED, {"dossierId": str(dossier.id)}).start()
        hub = server.app.state.hub
        channel = topics.dossier_messages(dossier.id)
        await wait_until(lambda: hub.subscriber_count(channel) >= 1, what="subscribed")
        await send(client, owner, dossier.id, "before")
        assert (await feed.next())["messageAdded"]["node"]["content"] == "before"
        assert (await gql(client, LOGOUT, token=session["token"]))["logout"]["ok"] is True
        started = time.monotonic()
        items, ended = await feed.until_end(within=3)
        assert error_codes_of(ended.error) == ["UNAUTHENTICATED"]
        assert time.monotonic() - started < 1.5
        assert items == []


# --- password recovery ----------------------------------------------------------------------


async def test_a_forgotten_password_is_reset_with_the_e_mailed_link(client, smtp):
    account = await make_client()
    other_session = await login(client, account.email)
    asked = (await gql(client, REQUEST_RESET, {"email": account.email.upper()}))[
        "requestPasswordReset"
    ]
    assert asked == {"ok": True, "userErrors": []}
    (mail,) = await mails(smtp)
    assert mail["To"] == account.email
    token, code = link_token(mail), mail_code(mail)
    # only hashes are stored: neither secret is in any table we wrote
    row = await AccountToken.get(credential__email=account.email)
    assert token not in (row.token_hash, row.code_hash)
    assert code not in (row.code_hash or "")
    for event in await Event.filter(entity_id=account.obj.id):
        assert token not in str(event.payload)
        assert code not in str(event.payload)

    done = (await gql(client, RESET, {"input": {"token": token, "newPassword": NEW_PASSWORD}}))[
        "resetPassword"
    ]
    assert done == {"ok": True, "userErrors": []}
    assert codes(await login(client, account.email, NEW_PASSWORD)) == []
    assert codes(await login(client, account.email, PASSWORD)) == ["INVALID_CREDENTIALS"]
    assert await me_codes(client, other_session["token"]) == ["UNAUTHENTICATED"]
    refused = (await gql(client, REFRESH, {"refreshToken": other_session["refreshToken"]}))[
        "refreshSession"
    ]
    assert codes(refused) == ["SESSION_ENDED"]  # the session is over, not just its token
    # told by e-mail; the trail has the request and the reset
    smtp.reset()
    (notice,) = await mails(smtp)
    assert notice["To"] == account.email
    assert "mot de passe" in notice["Subject"]
    kinds = {e.event_type for e in await Event.filter(entity_id=account.obj.id)}
    assert {EventType.PASSWORD_RESET_REQUESTED, EventType.PASSWORD_RESET} <= kinds
    # the link works once
    again = (
        await gql(client, RESET, {"input": {"token": token, "newPassword": "x" + NEW_PASSWORD}})
    )["resetPassword"]
    assert codes(again) == ["TOKEN_USED"]


async def test_the_e_mailed_code_resets_too_and_dies_after_five_wrong_tries(client, smtp):
    account = await make_agent()
    await gql(client, REQUEST_RESET, {"email": account.email})
    (mail,) = await mails(smtp)
    code = mail_code(mail)
    wrong = str((int(code) + 1) % 10**8).zfill(8)
    reset = {"email": account.email, "newPassword": NEW_PASSWORD}
    answer = (await gql(client, RESET, {"input": {**reset, "code": wrong}}))["resetPassword"]
    assert codes(answer) == ["INVALID_CODE"]
    assert (
        codes((await gql(client, RESET, {"input": {**reset, "code": code}}))["resetPassword"]) == []
    )
    assert codes(await login(client, account.email, NEW_PASSWORD)) == []

    await mails(smtp)  # the "password changed" notice
    smtp.reset()
    await gql(client, REQUEST_RESET, {"email": account.email})
    (mail,) = await mails(smtp)
    code = mail_code(mail)
    wrong = str((int(code) + 1) % 10**8).zfill(8)
    reset["newPassword"] = "second-" + NEW_PASSWORD
    for _ in range(5):
        answer = (await gql(client, RESET, {"input": {**reset, "code": wrong}}))["resetPassword"]
        assert codes(answer) in (["INVALID_CODE"], ["RATE_LIMITED"])
    answer = (await gql(client, RESET, {"input": {**reset, "code": code}}))["resetPassword"]
    assert codes(answer) in (["INVALID_CODE"], ["RATE_LIMITED"])  # the right code too: dead
    assert codes(await login(client, account.email, NEW_PASSWORD)) == []


async def test_a_reset_link_expires_after_thirty_minutes(client, smtp):
    account = await make_client()
    await gql(client, REQUEST_RESET, {"email": account.email})
    (mail,) = await mails(smtp)
    clock.travel(timedelta(minutes=31))
    answer = (
        await gql(
            client, RESET, {"input": {"token": link_token(mail), "newPassword": NEW_PASSWORD}}
        )
    )["resetPassword"]
    assert codes(answer) == ["TOKEN_EXPIRED"]
    assert codes(await login(client, account.email, PASSWORD)) == []  # nothing changed


async def test_an_unknown_address_is_answered_the_same_in_the_same_time(client, smtp):
    account = await make_client()
    timings, answers = {}, {}
    for who, email in (("known", account.email), ("unknown", f"{unique('nobody')}@example.com")):
        started = time.monotonic()
        response = await client.post(
            "/graphql", json={"query": REQUEST_RESET, "variables": {"email": email}}
        )
        timings[who] = time.monotonic() - started
        answers[who] = response.json()
    assert answers["known"] == answers["unknown"]
    from app.services.recovery import RESET_ANSWER_SECONDS

    assert RESET_ANSWER_SECONDS >= 0.25  # well above what the known path's writes take
    assert min(timings.values()) >= RESET_ANSWER_SECONDS  # both wait for the same floor
    assert len(await mails(smtp)) == 1  # only the account gets an e-mail


async def test_reset_requests_are_throttled_per_address_and_account(client, smtp):
    account = await make_client()
    limit = get_settings().auth_failures_per_account
    for _ in range(limit):
        answer = (await gql(client, REQUEST_RESET, {"email": account.email}))[
            "requestPasswordReset"
        ]
        assert answer["ok"] is True
    refused = (await gql(client, REQUEST_RESET, {"email": account.email}))["requestPasswordReset"]
    assert codes(refused) == ["RATE_LIMITED"]
    assert refused["userErrors"][0]["retryAfter"] >= 1
    assert len(await mails(smtp)) == limit


# --- invitations ------------------------------------------------------------------------------


async def test_an_invited_agent_chooses_a_password_and_is_logged_in(client, smtp):
    admin = await make_admin()
    email = f"{unique('invited')}@example.com"
    created = (
        await gql(client, CREATE_AGENT, {"email": email, "name": "Inès Martin"}, token=admin.token)
    )["createAgent"]
    assert created["userErrors"] == []
    assert codes(await login(client, email, "")) == ["INVALID_CREDENTIALS"]  # no password yet
    (mail,) = await mails(smtp)
    assert mail["To"] == email
    token = link_token(mail)
    weak = (await gql(client, ACCEPT, {"token": token, "password": "short"}))["acceptInvitation"]
    assert codes(weak) == ["WEAK_PASSWORD"]
    accepted = (await gql(client, ACCEPT, {"token": token, "password": NEW_PASSWORD}))[
        "acceptInvitation"
    ]
    assert accepted["userErrors"] == []
    assert accepted["viewer"] == {
        "__typename": "Agent",
        "id": created["agent"]["id"],
        "email": email,
    }
    assert await me_codes(client, accepted["token"]) == []
    again = (await gql(client, ACCEPT, {"token": token, "password": NEW_PASSWORD}))[
        "acceptInvitation"
    ]
    assert codes(again) == ["TOKEN_USED"]
    resent = (await gql(client, RESEND, {"id": created["agent"]["id"]}, token=admin.token))[
        "resendInvitation"
    ]
    assert codes(resent) == ["ALREADY_ACCEPTED"]
    trail = (await gql(client, ACCOUNT_EVENTS, {"id": created["agent"]["id"]}, token=admin.token))[
        "accountEvents"
    ]["nodes"]
    kinds = [n["eventType"] for n in trail]
    assert {"INVITATION_SENT", "INVITATION_ACCEPTED", "LOGIN_SUCCEEDED"} <= set(kinds)


async def test_a_resent_invitation_voids_the_first_and_invitations_expire(client, smtp):
    agent = await make_agent()
    email = f"{unique('guest')}@example.com"
    invited = (
        await gql(
            client, INVITE_CLIENT, {"email": email, "name": "Hélène Dupont"}, token=agent.token
        )
    )["inviteClient"]
    assert invited["userErrors"] == []
    (first,) = await mails(smtp)
    resent = (await gql(client, RESEND, {"id": invited["profile"]["id"]}, token=agent.token))[
        "resendInvitation"
    ]
    assert resent == {"ok": True, "userErrors": []}
    smtp.reset()
    (second,) = await mails(smtp)
    old = (await gql(client, ACCEPT, {"token": link_token(first), "password": NEW_PASSWORD}))[
        "acceptInvitation"
    ]
    assert codes(old) == ["TOKEN_EXPIRED"]
    # an agent may not re-invite an agent (hidden: an admin's business)
    body = await gql(client, RESEND, {"id": agent.id}, token=agent.token, expect_errors=True)
    assert error_codes(body) == ["NOT_FOUND"]
    clock.travel(timedelta(days=get_settings().invitation_days, minutes=1))
    late = (await gql(client, ACCEPT, {"token": link_token(second), "password": NEW_PASSWORD}))[
        "acceptInvitation"
    ]
    assert codes(late) == ["TOKEN_EXPIRED"]


# --- two-factor -------------------------------------------------------------------------------


async def _enrolled(client, account) -> tuple[pyotp.TOTP, list[str]]:
    begun = (await gql(client, BEGIN_2FA, token=account.token))["beginTwoFactorEnrolment"]
    assert begun["otpauthUri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(begun["secret"])
    wrong = (await gql(client, CONFIRM_2FA, {"code": "000000"}, token=account.token))[
        "confirmTwoFactorEnrolment"
    ]
    if totp.at(clock.now()) != "000000":
        assert codes(wrong) == ["INVALID_CODE"]
    confirmed = (
        await gql(client, CONFIRM_2FA, {"code": totp.at(clock.now())}, token=account.token)
    )["confirmTwoFactorEnrolment"]
    assert confirmed["userErrors"] == []
    assert len(confirmed["recoveryCodes"]) == 10
    return totp, confirmed["recoveryCodes"]


async def test_two_factor_enrolment_login_and_recovery_codes_on_the_clock(client):
    account = await make_agent()
    totp, recovery = await _enrolled(client, account)
    clock.travel(timedelta(seconds=31))  # the enrolment's code is spent; a new step

    first = await login(client, account.email)
    assert first["token"] is None
    assert first["refreshToken"] is None
    challenge = first["twoFactor"]["token"]
    assert await me_codes(client, challenge) == ["UNAUTHENTICATED"]  # not an access token
    code = totp.at(clock.now())
    done = (await gql(client, COMPLETE_2FA, {"challenge": challenge, "code": code}))[
        "completeTwoFactorLogin"
    ]
    assert done["userErrors"] == []
    assert await me_codes(client, done["token"]) == []
    # the same code again (same time step) is refused: a code works once
    replay = await login(client, account.email)
    again = (
        await gql(client, COMPLETE_2FA, {"challenge": replay["twoFactor"]["token"], "code": code})
    )["completeTwoFactorLogin"]
    assert codes(again) == ["INVALID_CODE"]
    # a recovery code works once, in place of the app
    rescue = (
        await gql(
            client, COMPLETE_2FA, {"challenge": replay["twoFactor"]["token"], "code": recovery[0]}
        )
    )["completeTwoFactorLogin"]
    assert rescue["userErrors"] == []
    third = await login(client, account.email)
    spent = (
        await gql(
            client, COMPLETE_2FA, {"challenge": third["twoFactor"]["token"], "code": recovery[0]}
        )
    )["completeTwoFactorLogin"]
    assert codes(spent) == ["INVALID_CODE"]
    # the challenge itself lasts minutes
    clock.travel(timedelta(minutes=6))
    stale = (
        await gql(
            client,
            COMPLETE_2FA,
            {"challenge": third["twoFactor"]["token"], "code": totp.at(clock.now())},
        )
    )["completeTwoFactorLogin"]
    assert codes(stale) == ["INVALID_TOKEN"]


async def test_disabling_two_factor_takes_the_password_and_a_code(client):
    account = await make_client()
    totp, _ = await _enrolled(client, account)
    clock.travel(timedelta(seconds=31))
    no_password = (
        await gql(
            client,
            DISABLE_2FA,
            {"password": "wrong-one-entirely", "code": totp.at(clock.now())},
            token=account.token,
        )
    )["disableTwoFactor"]
    assert codes(no_password) == ["INVALID_CREDENTIALS"]
    off = (
        await gql(
            client,
            DISABLE_2FA,
            {"password": PASSWORD, "code": totp.at(clock.now())},
            token=account.token,
        )
    )["disableTwoFactor"]
    assert off == {"ok": True, "userErrors": []}
    assert (await login(client, account.email))["token"] is not None  # no challenge any more
    credential = await Credential.get(email=account.email)
    assert credential.totp_secret is None
    assert credential.recovery_code_hashes == []


async def test_admins_must_enrol_at_login_when_the_policy_requires_it(client, monkeypatch):
    admin, agent = await make_admin(), await make_agent()
    monkeypatch.setenv("REQUIRE_TWO_FACTOR", "admins")
    get_settings.cache_clear()
    try:
        assert (await login(client, agent.email))["token"] is not None  # agents: not required
        first = await login(client, admin.email)
        assert first["token"] is None
        uri = first["twoFactor"]["enrolmentUri"]
        assert uri
        assert uri.startswith("otpauth://totp/")
        totp = pyotp.parse_uri(uri)
        done = (
            await gql(
                client, COMPLETE_2FA, {"challenge": first["twoFactor"]["token"], "code": totp.now()}
            )
        )["completeTwoFactorLogin"]
        assert done["userErrors"] == []
        assert len(done["recoveryCodes"]) == 10
        # now in force; and it cannot be turned off while the policy requires it
        clock.travel(timedelta(seconds=31))
        off = (
            await gql(
                client,
                DISABLE_2FA,
                {"password": PASSWORD, "code": totp.at(clock.now())},
                token=done["token"],
            )
        )["disableTwoFactor"]
        assert codes(off) == ["TWO_FACTOR_REQUIRED"]
    finally:
        monkeypatch.delenv("REQUIRE_TWO_FACTOR")
        get_settings.cache_clear()


# --- throttling and the audit trail ----------------------------------------------------------


async def test_five_wrong_passwords_lock_the_account_until_the_delay_passes(client):
    account = await make_client()
    for _ in range(get_settings().auth_failures_per_account):
        assert codes(await login(client, account.email, "not-the-password")) == [
            "INVALID_CREDENTIALS"
        ]
    locked = await login(client, account.email)  # the right password, too soon
    assert codes(locked) == ["RATE_LIMITED"]
    assert locked["token"] is None
    retry = locked["userErrors"][0]["retryAfter"]
    assert 1 <= retry <= 60
    clock.travel(timedelta(seconds=retry + 1))
    assert codes(await login(client, account.email)) == []
    # the failures and the success are in the account's trail, with where they came from
    admin = await make_admin()
    trail = (await gql(client, ACCOUNT_EVENTS, {"id": account.id}, token=admin.token))[
        "accountEvents"
    ]["nodes"]
    kinds = [n["eventType"] for n in trail]
    assert kinds[0] == "LOGIN_SUCCEEDED"
    assert kinds.count("LOGIN_FAILED") == get_settings().auth_failures_per_account
    assert trail[-1]["payload"]["ipAddress"] == "127.0.0.1"


async def test_one_address_guessing_many_accounts_is_locked_out(client):
    limit = get_settings().auth_failures_per_address
    for n in range(limit):
        answer = await login(client, f"victim-{n}@example.com", "guess-guess-guess")
        assert codes(answer) == ["INVALID_CREDENTIALS"]
    fresh = await make_client()
    assert codes(await login(client, fresh.email)) == ["RATE_LIMITED"]


async def test_guessing_link_tokens_from_one_address_is_locked_out(client):
    limit = get_settings().auth_failures_per_address
    for n in range(limit):
        answer = (await gql(client, ACCEPT, {"token": f"guess-{n}", "password": NEW_PASSWORD}))[
            "acceptInvitation"
        ]
        assert codes(answer) == ["INVALID_TOKEN"]
    reset = {"token": "one-more-guess", "newPassword": NEW_PASSWORD}
    assert codes((await gql(client, RESET, {"input": reset}))["resetPassword"]) == ["RATE_LIMITED"]


async def test_housekeeping_deletes_sessions_and_tokens_long_over(client, smtp):
    from app.models import AccountSession
    from app.services.sessions import ENDED_KEPT_DAYS, purge_ended

    account = await make_client()
    ended = await login(client, account.email)
    live = await login(client, account.email)
    await gql(client, LOGOUT, token=ended["token"])
    await gql(client, REQUEST_RESET, {"email": account.email})
    assert await purge_ended() == 0  # nothing is old enough yet
    clock.travel(timedelta(days=ENDED_KEPT_DAYS, minutes=31))
    assert await purge_ended() == 2  # the logged-out session and the reset token
    assert not await AccountSession.filter(id=ended["session"]["id"]).exists()
    assert await AccountSession.filter(id=live["session"]["id"]).exists()  # still refreshable
    assert not await AccountToken.filter(credential__email=account.email).exists()
