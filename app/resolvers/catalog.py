from __future__ import annotations

import uuid
from typing import overload

import strawberry

from app import models as m
from app.context import Info
from app.errors import DomainError, NotFound
from app.schema.catalog import (
    ArchiveDocumentTypeInput,
    ArchiveProductInput,
    ArchiveStepInput,
    AttachDocumentTypeInput,
    CatalogErrorCode,
    CatalogUserError,
    CreateDocumentTypeInput,
    CreateProductInput,
    CreateStepInput,
    DetachDocumentTypeInput,
    DocumentTypePayload,
    DocumentTypeType,
    ProductPayload,
    ProductType,
    SetProductStepsInput,
    StepDocumentTypePayload,
    StepPayload,
    StepType,
    UnarchiveDocumentTypeInput,
    UnarchiveProductInput,
    UnarchiveStepInput,
    UpdateDocumentTypeInput,
    UpdateProductInput,
    UpdateStepInput,
)
from app.schema.common import Connection, paginate, parse_id, row_as, user_errors
from app.services import catalog, catalogue_links
from app.services.codes import CatalogErrorCode as Code


def _errors(error: DomainError) -> list[CatalogUserError]:
    return user_errors(error, CatalogUserError, CatalogErrorCode)


@overload
def _step_ref(value: str, field: list[str] | str) -> str: ...
@overload
def _step_ref(value: str | None, field: list[str] | str) -> str | None: ...
def _step_ref(value: str | None, field: list[str] | str) -> str | None:
    """A step id inside an input: malformed is reported like unknown, in the payload."""
    if value is None:
        return None
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise DomainError(Code.UNKNOWN_STEP, "No such step.", field) from None


def _renewal_ref(value: str) -> uuid.UUID:
    """A product to renew with: a malformed id is no product, like a missing one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise DomainError(
            Code.UNKNOWN_PRODUCT, "No such product to renew with.", "renewalProductId"
        ) from None


@strawberry.type
class CatalogQuery:
    @strawberry.field(
        description="Products; inactive and archived ones only for agents who ask for them."
    )
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_inactive: bool = False,
        include_archived: bool = False,
    ) -> Connection[ProductType]:
        viewer = await info.context.require_viewer()
        queryset = m.Product.all()
        if not (include_inactive and viewer.is_agent):
            queryset = queryset.filter(active=True)
        if not (include_archived and viewer.is_agent):
            queryset = queryset.filter(archived_at__isnull=True)
        return await paginate(
            queryset, first=first, after=after, last=last, before=before, order=("code", "id")
        )

    @strawberry.field(description="One product by id or code.")
    async def product(
        self, info: Info, id: strawberry.ID | None = None, code: str | None = None
    ) -> ProductType:
        viewer = await info.context.require_viewer()
        if (id is None) == (code is None):
            raise NotFound("Pass exactly one of `id` and `code`.")
        if code is not None:
            product = await m.Product.filter(code=code.strip().upper()).first()
        else:
            product = await info.context.loaders.product.load(parse_id(id, what="product"))
        if product is None or (not catalog.product_on_sale(product) and not viewer.is_agent):
            raise NotFound("No such product.")
        return row_as(ProductType, product)

    @strawberry.field(
        description="Workflow steps, in position order; archived ones only for agents who "
        "ask for them."
    )
    async def steps(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_archived: bool = False,
    ) -> Connection[StepType]:
        viewer = await info.context.require_viewer()
        queryset = m.Step.all()
        if not (include_archived and viewer.is_agent):
            queryset = queryset.filter(archived_at__isnull=True)
        return await paginate(
            queryset,
            first=first,
            after=after,
            last=last,
            before=before,
            order=("position", "code", "id"),
        )

    @strawberry.field(
        description="Document types, optionally those a step asks for; archived ones only "
        "for agents who ask for them."
    )
    async def document_types(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        step_id: strawberry.ID | None = None,
        include_archived: bool = False,
    ) -> Connection[DocumentTypeType]:
        viewer = await info.context.require_viewer()
        queryset = m.DocumentType.all()
        if step_id is not None:
            queryset = queryset.filter(step_links__step_id=parse_id(step_id, what="step"))
        if not (include_archived and viewer.is_agent):
            queryset = queryset.filter(archived_at__isnull=True)
        return await paginate(
            queryset, first=first, after=after, last=last, before=before, order=("code", "id")
        )


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="Add a product (admins only).")
    async def create_product(self, info: Info, input: CreateProductInput) -> ProductPayload:
        admin = await info.context.require_admin()
        try:
            product = await catalog.create_product(
                admin,
                code=input.code,
                name=input.name,
                description=input.description,
                dossier_type=input.dossier_type,
                price_amount=input.price_amount,
                currency=input.currency,
                initial_status=input.initial_status,
                active=input.active,
                link_amount_min=input.link_amount_min,
                link_amount_max=input.link_amount_max,
                allow_promotion_codes=input.allow_promotion_codes,
            )
        except DomainError as error:
            return ProductPayload(user_errors=_errors(error))
        return ProductPayload(product=row_as(ProductType, product))

    @strawberry.mutation(description="Change a product (admins only).")
    async def update_product(self, info: Info, input: UpdateProductInput) -> ProductPayload:
        admin = await info.context.require_admin()
        changes = catalog.ProductChanges(
            name=input.name.value if input.name else None,
            description=input.description.value if input.description else None,
            description_set=input.description is not None,
            price_amount=input.price_amount.value if input.price_amount else None,
            currency=input.currency.value if input.currency else None,
            initial_status=input.initial_status.value if input.initial_status else None,
            active=input.active.value if input.active else None,
            link_amount_min=input.link_amount_min.value if input.link_amount_min else None,
            link_amount_min_set=input.link_amount_min is not None,
            link_amount_max=input.link_amount_max.value if input.link_amount_max else None,
            link_amount_max_set=input.link_amount_max is not None,
            allow_promotion_codes=(
                input.allow_promotion_codes.value if input.allow_promotion_codes else None
            ),
            renewal_product_set=input.renewal_product_id is not None,
        )
        try:
            if input.renewal_product_id is not None and input.renewal_product_id.value:
                changes.renewal_product_id = _renewal_ref(input.renewal_product_id.value)
            product = await catalog.update_product(
                admin, parse_id(input.id, what="product"), changes
            )
        except DomainError as error:
            return ProductPayload(user_errors=_errors(error))
        return ProductPayload(product=row_as(ProductType, product))

    @strawberry.mutation(description="Add a workflow step (admins only).")
    async def create_step(self, info: Info, input: CreateStepInput) -> StepPayload:
        admin = await info.context.require_admin()
        try:
            step = await catalog.create_step(
                admin,
                code=input.code,
                label=input.label,
                description=input.description,
                position=input.position,
            )
        except DomainError as error:
            return StepPayload(user_errors=_errors(error))
        return StepPayload(step=row_as(StepType, step))

    @strawberry.mutation(description="Change a workflow step (admins only).")
    async def update_step(self, info: Info, input: UpdateStepInput) -> StepPayload:
        admin = await info.context.require_admin()
        changes = catalog.StepChanges(
            label=input.label.value if input.label else None,
            description=input.description.value if input.description else None,
            description_set=input.description is not None,
            position=input.position.value if input.position else None,
        )
        try:
            step = await catalog.update_step(admin, parse_id(input.step_id, what="step"), changes)
        except DomainError as error:
            return StepPayload(user_errors=_errors(error))
        return StepPayload(step=row_as(StepType, step))

    @strawberry.mutation(description="Set a product's workflow, in order (admins only).")
    async def set_product_steps(self, info: Info, input: SetProductStepsInput) -> ProductPayload:
        admin = await info.context.require_admin()
        product_id = parse_id(input.product_id, what="product")
        try:
            specs = [
                catalog.ProductStepSpec(
                    step_id=_step_ref(s.step_id, ["steps", str(i), "stepId"]),
                    is_required=s.is_required,
                    estimated_duration_hours=s.estimated_duration_hours,
                )
                for i, s in enumerate(input.steps)
            ]
            product = await catalog.set_product_steps(admin, product_id, specs)
        except DomainError as error:
            return ProductPayload(user_errors=_errors(error))
        return ProductPayload(product=row_as(ProductType, product))

    @strawberry.mutation(description="Add a document type (admins only).")
    async def create_document_type(
        self, info: Info, input: CreateDocumentTypeInput
    ) -> DocumentTypePayload:
        admin = await info.context.require_admin()
        try:
            document_type = await catalog.create_document_type(
                admin,
                code=input.code,
                label=input.label,
                description=input.description,
                required_step_id=_step_ref(input.required_step_id, "requiredStepId"),
                max_file_size_mb=input.max_file_size_mb,
                allowed_extensions=input.allowed_extensions,
                per_member_role=input.per_member_role,
                requires_expiry=input.requires_expiry,
                min_validity_days=input.min_validity_days,
            )
        except DomainError as error:
            return DocumentTypePayload(user_errors=_errors(error))
        return DocumentTypePayload(document_type=row_as(DocumentTypeType, document_type))

    @strawberry.mutation(description="Change a document type (admins only).")
    async def update_document_type(
        self, info: Info, input: UpdateDocumentTypeInput
    ) -> DocumentTypePayload:
        admin = await info.context.require_admin()
        document_type_id = parse_id(input.id, what="document type")
        try:
            changes = catalog.DocumentTypeChanges(
                label=input.label.value if input.label else None,
                description=input.description.value if input.description else None,
                description_set=input.description is not None,
                required_step_id=_step_ref(input.required_step_id.value, "requiredStepId")
                if input.required_step_id
                else None,
                required_step_set=input.required_step_id is not None,
                max_file_size_mb=input.max_file_size_mb.value if input.max_file_size_mb else None,
                allowed_extensions=input.allowed_extensions.value
                if input.allowed_extensions
                else None,
                requires_expiry=input.requires_expiry.value if input.requires_expiry else None,
                min_validity_days=input.min_validity_days.value
                if input.min_validity_days
                else None,
                min_validity_set=input.min_validity_days is not None,
            )
            document_type = await catalog.update_document_type(admin, document_type_id, changes)
        except DomainError as error:
            return DocumentTypePayload(user_errors=_errors(error))
        return DocumentTypePayload(document_type=row_as(DocumentTypeType, document_type))

    # --- archiving: nothing in the catalogue is deleted -----------------------------------

    @strawberry.mutation(
        description="Archive a product: it is not sold any more, its dossiers go on (admins only)."
    )
    async def archive_product(self, info: Info, input: ArchiveProductInput) -> ProductPayload:
        return await _archive_product(info, input.product_id, archived=True)

    @strawberry.mutation(description="Put an archived product back (admins only).")
    async def unarchive_product(self, info: Info, input: UnarchiveProductInput) -> ProductPayload:
        return await _archive_product(info, input.product_id, archived=False)

    @strawberry.mutation(
        description="Archive a step: no workflow takes it, no new dossier runs it; running "
        "dossiers keep theirs (admins only)."
    )
    async def archive_step(self, info: Info, input: ArchiveStepInput) -> StepPayload:
        return await _archive_step(info, input.step_id, archived=True)

    @strawberry.mutation(description="Put an archived step back (admins only).")
    async def unarchive_step(self, info: Info, input: UnarchiveStepInput) -> StepPayload:
        return await _archive_step(info, input.step_id, archived=False)

    @strawberry.mutation(
        description="Archive a document type: new dossiers get no document of it; existing "
        "documents stay (admins only)."
    )
    async def archive_document_type(
        self, info: Info, input: ArchiveDocumentTypeInput
    ) -> DocumentTypePayload:
        return await _archive_document_type(info, input.document_type_id, archived=True)

    @strawberry.mutation(description="Put an archived document type back (admins only).")
    async def unarchive_document_type(
        self, info: Info, input: UnarchiveDocumentTypeInput
    ) -> DocumentTypePayload:
        return await _archive_document_type(info, input.document_type_id, archived=False)

    # --- which document types a step asks for ---------------------------------------------

    @strawberry.mutation(
        description="A step asks for a document type (the steps of several products may "
        "ask for one type) (admins only)."
    )
    async def attach_document_type(
        self, info: Info, input: AttachDocumentTypeInput
    ) -> StepDocumentTypePayload:
        admin = await info.context.require_admin()
        step_id = parse_id(input.step_id, what="step")
        document_type_id = parse_id(input.document_type_id, what="document type")
        try:
            step, document_type = await catalogue_links.attach_document_type(
                admin, step_id, document_type_id, position=input.position
            )
        except DomainError as error:
            return StepDocumentTypePayload(user_errors=_errors(error))
        return StepDocumentTypePayload(
            step=row_as(StepType, step), document_type=row_as(DocumentTypeType, document_type)
        )

    @strawberry.mutation(
        description="A step no longer asks for a document type; the documents dossiers "
        "already have stay (admins only)."
    )
    async def detach_document_type(
        self, info: Info, input: DetachDocumentTypeInput
    ) -> StepDocumentTypePayload:
        admin = await info.context.require_admin()
        step_id = parse_id(input.step_id, what="step")
        document_type_id = parse_id(input.document_type_id, what="document type")
        try:
            step, document_type = await catalogue_links.detach_document_type(
                admin, step_id, document_type_id
            )
        except DomainError as error:
            return StepDocumentTypePayload(user_errors=_errors(error))
        return StepDocumentTypePayload(
            step=row_as(StepType, step), document_type=row_as(DocumentTypeType, document_type)
        )


async def _archive_product(info: Info, product_id: str, *, archived: bool) -> ProductPayload:
    admin = await info.context.require_admin()
    product = await catalog.set_archived(
        admin, m.Product, parse_id(product_id, what="product"), archived=archived
    )
    return ProductPayload(product=row_as(ProductType, product))


async def _archive_step(info: Info, step_id: str, *, archived: bool) -> StepPayload:
    admin = await info.context.require_admin()
    step = await catalog.set_archived(
        admin, m.Step, parse_id(step_id, what="step"), archived=archived
    )
    return StepPayload(step=row_as(StepType, step))


async def _archive_document_type(
    info: Info, document_type_id: str, *, archived: bool
) -> DocumentTypePayload:
    admin = await info.context.require_admin()
    document_type = await catalog.set_archived(
        admin,
        m.DocumentType,
        parse_id(document_type_id, what="document type"),
        archived=archived,
    )
    return DocumentTypePayload(document_type=row_as(DocumentTypeType, document_type))
