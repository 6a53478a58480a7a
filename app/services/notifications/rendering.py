"""The words of a notification: its Jinja templates rendered in one language.

Templates live in `app/templates/notifications/<locale>/<code>.j2`, one per rule template,
with the blocks `title`, `message`, optionally `sms`, `text` and the HTML body (the page
extends `_layout.j2`). The same context renders them at once (the in-app row) and again
later in the delivery worker (the e-mail, the SMS), so it must stay JSON-safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, pass_context

from app.models.enums import Locale

APP_NAME = "Partners VRAI"
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "templates" / "notifications"

# CLDR's currencySpacing, which Babel does not apply: a symbol that ends (or starts) with a
# letter is kept apart from the digits by a no-break space ("CHF 1,500.00", not "CHF1,500.00").
_LETTER_BEFORE_DIGIT = re.compile(r"(?<=[^\W\d_])(?=\d)")
_DIGIT_BEFORE_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])")


@pass_context
def _money(ctx: Any, amount: Any, currency: Any = "eur") -> str:
    """Minor units to a localised amount: 150000 eur -> '1 500,00 €' / '€1,500.00'.

    Babel (CLDR) gives the symbol, its place and the separators for the locale; the
    currency's ISO 4217 exponent turns minor units into the amount (2 for most, 0 for
    JPY), as Stripe counts them."""
    code = str(currency or "eur").upper()
    try:
        value = Decimal(int(amount)).scaleb(-get_currency_precision(code))
    except (TypeError, ValueError):
        return ""
    formatted = format_currency(value, code, locale=normal_locale(ctx.get("locale")))
    return _DIGIT_BEFORE_LETTER.sub("\u00a0", _LETTER_BEFORE_DIGIT.sub("\u00a0", formatted))


@pass_context
def _date(ctx: Any, value: Any) -> str:
    """An ISO date or timestamp to a long date: '5 juin 2026' / 'June 5, 2026' (the
    calendar day of the timestamp as written, no time-zone conversion)."""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return ""
    return format_date(moment.date(), format="long", locale=normal_locale(ctx.get("locale")))


@lru_cache
def _environments() -> tuple[Environment, Environment]:
    """(text, html): the same templates, the html one with autoescaping."""
    envs = []
    for autoescape in (False, True):
        env = Environment(
            loader=FileSystemLoader(TEMPLATE_DIR),
            autoescape=autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["money"] = _money
        env.filters["date"] = _date
        envs.append(env)
    return envs[0], envs[1]


@dataclass(frozen=True)
class Rendered:
    title: str
    message: str
    sms: str
    text: str
    html: str


FOOTER = {
    "fr": "Message automatique de {app}, merci de ne pas y répondre.",
    "en": "An automatic message from {app}; please do not reply.",
}


def normal_locale(value: Any) -> str:
    return value if value in (Locale.FR.value, Locale.EN.value) else Locale.FR.value


def render_heading(template_code: str, locale: str, context: dict[str, Any]) -> tuple[str, str]:
    """Only the title and the message (what `render` gives them): re-wording a folded
    notification needs no e-mail body, which is rendered when the e-mail is sent."""
    locale = normal_locale(locale)
    template = _environments()[0].get_template(f"{locale}/{template_code}.j2")
    ctx = template.new_context({"app_name": APP_NAME, **context, "locale": locale})

    def block(block_name: str) -> str:
        render_block = template.blocks.get(block_name)
        return "".join(render_block(ctx)).strip() if render_block is not None else ""

    return block("title"), block("message")


def render(template_code: str, locale: str, context: dict[str, Any]) -> Rendered:
    """Title, message, SMS text and the e-mail's text and HTML bodies, in one language."""
    locale = normal_locale(locale)
    text_env, html_env = _environments()
    name = f"{locale}/{template_code}.j2"
    ctx = {"app_name": APP_NAME, **context, "locale": locale}
    template = text_env.get_template(name)

    def block(block_name: str) -> str:
        render_block = template.blocks.get(block_name)
        if render_block is None:
            return ""
        return "".join(render_block(template.new_context(ctx))).strip()

    title, message = block("title"), block("message")
    sms = block("sms") or " ".join(
        p for p in (f"{APP_NAME}: {message}", ctx.get("action_url")) if p
    )
    text = block("text") + "\n\n-- \n" + FOOTER[locale].format(app=APP_NAME) + "\n"
    html = html_env.get_template(name).render(ctx)
    return Rendered(title=title, message=message, sms=sms, text=text, html=html)
