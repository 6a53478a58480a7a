"""The demo world (idempotent): an admin, an agent, a client with a paid order and a
dossier in progress, two products of three steps each, and their document types."""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from app.models import (
    Credential,
    DocumentType,
    Dossier,
    DossierMember,
    Order,
    Product,
    ProductStep,
    Profile,
    Step,
    StepDocumentType,
)
from app.models.enums import AgentRole, DossierKind, OrderStatus, UserStatus
from app.security import hash_password_now
from app.services import identity
from app.services.search import index_clients
from app.services.workflow.steps import open_dossier

DEMO_PASSWORD = "partners-vrai-2026"  # documented demo credentials
ADMIN_EMAIL, AGENT_EMAIL, CLIENT_EMAIL = "admin@demo.test", "agent@demo.test", "client@demo.test"
RETURNING_EMAIL = "returning@demo.test"  # a returning client: a permit, then a company
CO_APPLICANT_EMAIL = "coapplicant@demo.test"  # a member of the client's dossier

STEPS = [
    ("IDENTITY", "Identity", "Who you are: identity document and photo.", 10),
    ("SUPPORTING_DOCUMENTS", "Supporting documents", "Address and income.", 20),
    ("FILING", "Filing", "We file your application; nothing to upload.", 30),
    ("ARTICLES", "Articles of association", "The company's statutes and capital.", 40),
    ("REGISTRATION", "Registration", "We register the company; nothing to upload.", 50),
]
# code, label, step code, max MB, extensions
DOCUMENT_TYPES = [
    ("ID_DOCUMENT", "Identity document", "IDENTITY", 10, ["pdf", "jpg", "jpeg", "png"]),
    ("ID_PHOTO", "Passport photo", "IDENTITY", 5, ["jpg", "jpeg", "png"]),
    ("PROOF_OF_ADDRESS", "Proof of address", "SUPPORTING_DOCUMENTS", 10, ["pdf", "jpg", "png"]),
    ("PROOF_OF_INCOME", "Proof of income", "SUPPORTING_DOCUMENTS", 10, ["pdf"]),
    ("DRAFT_ARTICLES", "Draft articles", "ARTICLES", 20, ["pdf", "docx"]),
    ("CAPITAL_DEPOSIT", "Capital deposit certificate", "ARTICLES", 10, ["pdf"]),
]
PRODUCTS = [
    (
        "RESIDENCE_PERMIT",
        "Residence permit application",
        "We prepare and file your residence permit application.",
        DossierKind.IMMIGRATION,
        150_000,
        [("IDENTITY", True, 72), ("SUPPORTING_DOCUMENTS", True, 168), ("FILING", True, None)],
    ),
    (
        "COMPANY_FORMATION",
        "Company formation (SAS)",
        "We set up your French SAS, from statutes to registration.",
        DossierKind.COMPANY_FORMATION,
        99_000,
        [("IDENTITY", True, 72), ("ARTICLES", True, 240), ("REGISTRATION", False, None)],
    ),
]


async def seed() -> dict[str, str]:
    admin, _ = await identity.ensure_admin(ADMIN_EMAIL, DEMO_PASSWORD, "Demo Admin")
    if not await Credential.filter(email=AGENT_EMAIL).exists():
        await identity.create_agent(
            None,
            email=AGENT_EMAIL,
            name="Demo Agent",
            password=DEMO_PASSWORD,
            role=AgentRole.AGENT,
        )

    steps = {}
    for code, label, description, position in STEPS:
        steps[code], _ = await Step.get_or_create(
            code=code, defaults={"label": label, "description": description, "position": position}
        )
    for code, label, step_code, max_mb, extensions in DOCUMENT_TYPES:
        document_type, _ = await DocumentType.get_or_create(
            code=code,
            defaults={
                "label": label,
                "required_step_id": steps[step_code].id,
                "max_file_size_mb": max_mb,
                "allowed_extensions": extensions,
            },
        )
        # what the step asks for (required_step_id only names the first such step)
        await StepDocumentType.get_or_create(
            step_id=steps[step_code].id, document_type_id=document_type.id
        )
    products = {}
    for code, name, description, dossier_type, price, product_steps in PRODUCTS:
        product, created = await Product.get_or_create(
            code=code,
            defaults={
                "name": name,
                "description": description,
                "dossier_type": dossier_type,
                "price_amount": price,
                "currency": "eur",
            },
        )
        products[code] = product
        if created:
            for position, (step_code, required, hours) in enumerate(product_steps, start=1):
                await ProductStep.create(
                    product_id=product.id,
                    step_id=steps[step_code].id,
                    position=position,
                    is_required=required,
                    estimated_duration_hours=hours,
                )

    await _demo_client(CLIENT_EMAIL, "Camille Demo", "+33612345678", [products["RESIDENCE_PERMIT"]])
    await _demo_client(
        RETURNING_EMAIL,
        "Rachid Retour",
        "+33698765432",
        [products["RESIDENCE_PERMIT"], products["COMPANY_FORMATION"]],
    )
    await _demo_member(CLIENT_EMAIL, CO_APPLICANT_EMAIL, "Lina Demo", "CO_APPLICANT")
    return {"admin": str(admin.id)}


async def _demo_member(owner_email: str, email: str, name: str, role: str) -> None:
    """A member (with their own account) of the owner's first dossier."""
    if await Credential.filter(email=email).exists():
        return
    owner = await Credential.get(email=owner_email)
    dossier = await Dossier.filter(user_id=owner.profile_id).order_by("created_at").first()
    if dossier is None:
        return
    async with in_transaction():
        profile = await Profile.create(full_name=name, status=UserStatus.ACTIVE)
        await Credential.create(
            email=email,
            password_hash=hash_password_now(DEMO_PASSWORD),
            password_changed_at=datetime.now(UTC),
            profile=profile,
        )
        await index_clients([profile.id])
        await DossierMember.create(dossier_id=dossier.id, profile_id=profile.id, role=role)


async def _demo_client(email: str, name: str, phone: str, bought: list[Product]) -> None:
    """A client with a paid order and a running dossier for each product of `bought`."""
    if await Credential.filter(email=email).exists():
        return
    async with in_transaction():
        client = await Profile.create(full_name=name, phone=phone, status=UserStatus.ACTIVE)
        await Credential.create(
            email=email,
            password_hash=hash_password_now(DEMO_PASSWORD),
            password_changed_at=datetime.now(UTC),
            profile=client,
        )
        await index_clients([client.id])
        for product in bought:
            order = await Order.create(
                user_id=client.id,
                product_id=product.id,
                amount=product.price_amount,
                currency=product.currency,
                status=OrderStatus.PAID,
                paid_at=datetime.now(UTC),
                metadata={"source": "seed"},
            )
            await open_dossier(order)
