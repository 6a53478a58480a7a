"""Factories: unique rows, made through the services where a service exists."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.models import (
    Agent,
    Credential,
    DocumentType,
    Dossier,
    Order,
    Product,
    ProductStep,
    Profile,
    Step,
    StepDocumentType,
)
from app.models.enums import AgentRole, DossierKind, OrderStatus, UserStatus
from app.security import hash_password, issue_token
from app.services import identity, search
from app.services.sessions import open_session
from app.services.workflow.steps import open_dossier

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_seq)}x{uuid.uuid4().hex[:6]}"


@dataclass
class Account:
    obj: Agent | Profile
    email: str
    token: str

    @property
    def id(self) -> str:
        return str(self.obj.id)


async def token_for(credential: Credential, **issue: Any) -> str:
    """An access token of a new session of `credential` (as a login would open);
    `issue` goes to `issue_token` (e.g. `now=` for a token issued in the past)."""
    tokens = await open_session(credential)
    if not issue:
        return tokens.access_token
    return issue_token(credential, tokens.session.id, **issue)[0]


async def _token_for(email: str) -> str:
    return await token_for(await Credential.get(email=email))


async def make_agent(role: AgentRole = AgentRole.AGENT, *, active: bool = True) -> Account:
    email = f"{unique('agent')}@example.com"
    agent = await identity.create_agent(
        None, email=email, name="Agent " + email.split("@")[0], password=PASSWORD, role=role
    )
    token = await _token_for(email)
    if not active:
        agent.active = False
        await agent.save()
    return Account(agent, email, token)


async def make_admin() -> Account:
    return await make_agent(AgentRole.ADMIN)


async def make_client(
    status: UserStatus = UserStatus.ACTIVE,
    *,
    full_name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> Account:
    email = email or f"{unique('client')}@example.com"
    profile = await Profile.create(
        full_name=full_name or "Client " + email.split("@")[0], phone=phone, status=status
    )
    await Credential.create(
        email=email,
        password_hash=await hash_password(PASSWORD),
        password_changed_at=datetime.now(UTC),
        profile=profile,
    )
    await search.index_clients([profile.id])  # as the services that write clients do
    return Account(profile, email, await _token_for(email))


async def make_product(
    steps: Sequence[Sequence[str]] = (("pdf",), (), ()),
    *,
    active: bool = True,
) -> Product:
    """A product whose i-th step asks for one document type per entry of steps[i]
    (each entry being that type's allowed extensions, comma-separated)."""
    product = await Product.create(
        code=unique("PRODUCT").upper(),
        name="Product",
        dossier_type=DossierKind.OTHER,
        price_amount=10_000,
        currency="eur",
        active=active,
    )
    for position, document_types in enumerate(steps, start=1):
        step = await Step.create(code=unique("STEP").upper(), label=f"Step {position}")
        await ProductStep.create(product=product, step=step, position=position)
        for extensions in document_types:
            document_type = await DocumentType.create(
                code=unique("DOC").upper(),
                label="Document",
                required_step=step,
                max_file_size_mb=5,
                allowed_extensions=extensions.split(","),
            )
            await StepDocumentType.create(step=step, document_type=document_type)
    return product


async def make_dossier(client: Account, product: Product | None = None) -> Dossier:
    """A paid order and the dossier it opened, first step started."""
    product = product or await make_product()
    order = await Order.create(
        user_id=client.obj.id,
        product_id=product.id,
        amount=product.price_amount,
        currency=product.currency,
        status=OrderStatus.PAID,
        paid_at=datetime.now(UTC),
    )
    return await open_dossier(order)
