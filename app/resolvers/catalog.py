from __future__ import annotations

import uuid
from typing import overload

import strawberry

from app import models as m
from app.context import Info
from app.errors import DomainError, NotFound
from app.schema.catalog import (
    CatalogErrorCode,
    CatalogUserError,
    CreateDocumentTypeInput,
    CreateProductInput,
    CreateStepInput,
    DocumentTypePayload,
    DocumentTypeType,
    ProductPayload,
    ProductType,
    SetProductStepsInput,
    StepPayload,
    StepType,
    UpdateDocumentTypeInput,
    UpdateProductInput,
)
from app.schema.common import Connection, paginate, parse_id, row_as, user_errors
from app.services import catalog
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


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="Products; inactive ones only for agents who ask for them.")
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        include_inactive: bool = False,
    ) -> Connection[ProductType]:
        viewer = await info.context.require_viewer()
        queryset = m.Product.all()
        if not (include_inactive and viewer.is_agent):
            queryset = queryset.filter(active=True)
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
        if product is None or (not product.active and not viewer.is_agent):
            raise NotFound("No such product.")
        return row_as(ProductType, product)

    @strawberry.field(description="Workflow steps, in position order.")
    async def steps(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[StepType]:
        await info.context.require_viewer()
        return await paginate(
            m.Step.all(),
            first=first,
            after=after,
            last=last,
            before=before,
            order=("position", "code", "id"),
        )

    @strawberry.field(description="Document types, optionally those a step asks for.")
    async def document_types(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        step_id: strawberry.ID | None = None,
    ) -> Connection[DocumentTypeType]:
        await info.context.require_viewer()
        queryset = m.DocumentType.all()
        if step_id is not None:
            queryset = queryset.filter(required_step_id=parse_id(step_id, what="step"))
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
        )
        try:
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
            )
            document_type = await catalog.update_document_type(admin, document_type_id, changes)
        except DomainError as error:
            return DocumentTypePayload(user_errors=_errors(error))
        return DocumentTypePayload(document_type=row_as(DocumentTypeType, document_type))
