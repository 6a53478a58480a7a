"""Plain pages for the links that e-mails and notifications carry, when no front end is
configured (PUBLIC_APP_URL is this server, the embedded default): `/register?token=…`,
`/pay?token=…`, `/reset-password?token=…`, `/accept-invitation?token=…`, `/login`,
`/account`, `/dossiers/…`, `/orders/…` and `/`. Server-rendered HTML with the headers of
every page of ours, no script: each says what to do (the GraphQL operation to run, in
GraphiQL when it is on) and, for a token, its state (valid, used, expired), read without
consuming it. A real front end at PUBLIC_APP_URL answers these paths itself."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from string import Template

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.http.payment_pages import _page as plain_page
from app.models.enums import AccountTokenPurpose
from app.services.link_states import TokenState, account_token_state, payment_link_state

STATE_TEXT = {
    TokenState.VALID: ("valid", "This link is valid: it has not been used yet."),
    TokenState.USED: ("used", "This link was already used: it works once."),
    TokenState.EXPIRED: ("expired", "This link has expired: ask for a new one."),
    TokenState.REVOKED: ("withdrawn", "This link was withdrawn by the firm."),
    TokenState.UNKNOWN: (
        "not valid",
        "This link is not valid: check that it was copied whole, or use the newest e-mail.",
    ),
}


def _where(request: Request) -> str:
    """Where to run the operation: GraphiQL when it is on, the endpoint otherwise."""
    if request.app.state.settings.graphiql_enabled:
        return "open <a href='/graphql'>GraphiQL</a> (this server's <code>/graphql</code>) and run"
    return "send to this server's GraphQL endpoint (<code>POST /graphql</code>)"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _operation(text: str) -> str:
    return f"<pre><code>{html.escape(text)}</code></pre>"


def _state(state: TokenState) -> str:
    word, sentence = STATE_TEXT[state]
    return f"<p class='state' data-state='{state.value}'><strong>{word}</strong>: {sentence}</p>"


def _token(request: Request) -> str:
    return request.query_params.get("token", "")[:512]


async def register(request: Request) -> Response:
    token = _token(request)
    state, link = await payment_link_state(token)
    body = "<h1>Register and pay</h1>" + _state(state)
    if link is not None and state == TokenState.VALID:
        body += f"<p>For <strong>{html.escape(link.product.name)}</strong>.</p>"
    if state == TokenState.VALID:
        body += f"<p>{_sentence(_where(request))}:</p>" + _operation(
            "mutation { registerWithPaymentLink(input: {\n"
            f'  token: "{token}"\n'
            '  fullName: "Your name", phone: "+33612345678", password: "a long passphrase"\n'
            "}) { token checkoutUrl userErrors { code message } } }"
        )
        body += "<p>then open its <code>checkoutUrl</code> to pay.</p>"
    return plain_page("Register and pay", body)


async def pay(request: Request) -> Response:
    token = _token(request)
    state, link = await payment_link_state(token)
    body = "<h1>Pay for a new dossier</h1>" + _state(state)
    if link is not None and state == TokenState.VALID:
        body += f"<p>For <strong>{html.escape(link.product.name)}</strong>.</p>"
    if state == TokenState.VALID:
        body += f"<p>Log in (<a href='/login'>how</a>), then {_where(request)}:</p>"
        body += _operation(
            f'mutation {{ redeemPaymentLink(input: {{token: "{token}"}}) {{\n'
            "  checkoutUrl userErrors { code message } } }"
        )
        body += "<p>then open its <code>checkoutUrl</code> to pay.</p>"
    return plain_page("Pay for a new dossier", body)


async def reset_password(request: Request) -> Response:
    token = _token(request)
    state = await account_token_state(AccountTokenPurpose.PASSWORD_RESET, token)
    body = "<h1>Choose a new password</h1>" + _state(state)
    if state == TokenState.VALID:
        body += f"<p>{_sentence(_where(request))}:</p>" + _operation(
            f'mutation {{ resetPassword(input: {{token: "{token}",\n'
            '  newPassword: "a new long passphrase"}) { ok userErrors { code message } } }'
        )
        body += "<p>Every session of the account ends; then log in with the new password.</p>"
    else:
        body += "<p>Ask for a new link with <code>requestPasswordReset</code>.</p>"
    return plain_page("Choose a new password", body)


async def accept_invitation(request: Request) -> Response:
    token = _token(request)
    state = await account_token_state(AccountTokenPurpose.INVITATION, token)
    body = "<h1>Choose your password</h1>" + _state(state)
    if state == TokenState.VALID:
        body += f"<p>{_sentence(_where(request))}:</p>" + _operation(
            f'mutation {{ acceptInvitation(input: {{token: "{token}",\n'
            '  password: "a long passphrase"}) { token userErrors { code message } } }'
        )
        body += "<p>You are then logged in: its <code>token</code> is your access token.</p>"
    else:
        body += "<p>Ask the firm to send the invitation again.</p>"
    return plain_page("Choose your password", body)


LOGIN = (
    'mutation { login(input: {email: "you@example.com", password: "…"}) {\n'
    "  token userErrors { code message } } }"
)


def _logged_in_page(
    title: str, what: str, operation: str
) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        names = {k: html.escape(v) for k, v in request.path_params.items()}
        body = (
            f"<h1>{html.escape(title)}</h1><p>{Template(what).safe_substitute(names)}</p>"
            f"<p>{_sentence(_where(request))} the login, then put its token in the headers "
            '(<code>{"Authorization": "Bearer &lt;token&gt;"}</code>):</p>'
            + _operation(LOGIN)
            + "<p>then:</p>"
            + _operation(Template(operation).safe_substitute(request.path_params))
        )
        return plain_page(title, body)

    return page


home = _logged_in_page(
    "Partners VRAI",
    "This server has no web app of its own: everything is in its GraphQL API.",
    "{ me { ... on Profile { fullName } ... on Agent { name role } } }",
)
login = _logged_in_page(
    "Log in",
    "Log in with your e-mail address and password.",
    "{ me { ... on Profile { fullName } } }",
)
account = _logged_in_page(
    "Your account",
    "Your account and your data exports.",
    "{ me { ... on Profile { fullName email } } }",
)
dossiers = _logged_in_page(
    "Your dossiers",
    "Your dossiers, their steps and documents.",
    "{ dossiers(first: 10) { nodes { id reference status } } }",
)
dossier = _logged_in_page(
    "A dossier",
    "Dossier <code>$dossier_id</code>: its steps, the documents asked for, the chat.",
    '{ dossier(id: "$dossier_id") { reference status currentStep { step { label } } } }',
)
dossier_messages = _logged_in_page(
    "A dossier's messages",
    "The chat of dossier <code>$dossier_id</code>.",
    '{ dossier(id: "$dossier_id") { messages(first: 20) { nodes { content senderName } } } }',
)
dossier_document = _logged_in_page(
    "A document",
    "Document <code>$document_id</code> of dossier <code>$dossier_id</code>.",
    '{ dossier(id: "$dossier_id") { currentStep { documents { id status } } } }',
)
order = _logged_in_page(
    "An order",
    "Order <code>$order_id</code>: its payment.",
    "{ orders(first: 10) { nodes { id status amount dossierId } } }",
)


def routes() -> list[Route]:
    """The paths the links carry (app.services.account_links, payments.links,
    notifications.facts, payment_pages); `/payment/…` is app.http.payment_pages'."""
    get = ["GET"]
    return [
        Route("/", home, methods=get),
        Route("/register", register, methods=get),
        Route("/pay", pay, methods=get),
        Route("/reset-password", reset_password, methods=get),
        Route("/accept-invitation", accept_invitation, methods=get),
        Route("/login", login, methods=get),
        Route("/account", account, methods=get),
        Route("/dossiers", dossiers, methods=get),
        Route("/dossiers/{dossier_id}", dossier, methods=get),
        Route("/dossiers/{dossier_id}/messages", dossier_messages, methods=get),
        Route("/dossiers/{dossier_id}/documents/{document_id}", dossier_document, methods=get),
        Route("/orders/{order_id}", order, methods=get),
    ]
