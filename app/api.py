"""The one Strawberry schema: the per-domain roots of app.resolvers merged, with the types of
app.schema, the limits and the error handling attached."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from app import tracing
from app.resolvers.audit import AuditQuery
from app.resolvers.catalog import CatalogMutation, CatalogQuery
from app.resolvers.chasing import ChasingQuery
from app.resolvers.desk import DeskMutation, DeskQuery
from app.resolvers.documents import DocumentMutation, DocumentQuery
from app.resolvers.dossiers import DossierQuery
from app.resolvers.identity import IdentityMutation, IdentityQuery
from app.resolvers.members import MemberMutation, MemberQuery
from app.resolvers.messages import MessageMutation
from app.resolvers.notifications import NotificationMutation, NotificationQuery
from app.resolvers.opening import OpeningMutation
from app.resolvers.payments import PaymentMutation, PaymentQuery
from app.resolvers.persisted import PersistedMutation
from app.resolvers.phone import PhoneMutation, PhoneQuery
from app.resolvers.privacy import PrivacyMutation
from app.resolvers.reports import ReportMutation, ReportQuery
from app.resolvers.search import SearchQuery
from app.resolvers.workflow import WorkflowMutation
from app.schema.execution import Executor, lean_resolvers
from app.schema.extensions import AccountState, DispatchEvents, ErrorTiers, FreshLoaders
from app.schema.limits import DirectiveLimiter, NulGuard, node_budget
from app.schema.observability import operation_metrics
from app.schema.ratelimit import RateLimiter, rate_limit
from app.schema.search import SEARCH_HIT_TYPES
from app.schema.subscriptions import Subscription
from app.schema.workflow import TIMELINE_TYPES
from app.services.throttle import deployment_prefix
from app.settings import Settings, get_settings

Query = merge_types(
    "Query",
    (
        IdentityQuery,
        CatalogQuery,
        DossierQuery,
        PaymentQuery,
        NotificationQuery,
        DocumentQuery,
        ChasingQuery,
        MemberQuery,
        ReportQuery,
        AuditQuery,
        DeskQuery,
        SearchQuery,
        PhoneQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        IdentityMutation,
        CatalogMutation,
        PaymentMutation,
        OpeningMutation,
        NotificationMutation,
        DocumentMutation,
        WorkflowMutation,
        MessageMutation,
        MemberMutation,
        PrivacyMutation,
        ReportMutation,
        DeskMutation,
        PhoneMutation,
        PersistedMutation,
    ),
)


class Schema(strawberry.Schema):
    # Whether the schema runs with the shortcuts of app.compat (FAST_PATHS): the executor
    # and lean resolvers here, joined pages in the list resolvers, shared live events.
    fast_paths = True

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Logging happens in ErrorTiers, for unexpected errors only (with the request id)."""


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or get_settings()
    # The limits' validation rules are built once, so that a document's parse and
    # validation are cached across requests (ValidationCache keys on the document and the
    # rule classes; a rule class built per request would never hit). Parsing and
    # validating the same operation again was most of a small request's time.
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
        *DirectiveLimiter(settings.max_directives).validation_rules,
    ]
    # Factories, so each request gets fresh extension instances.
    extensions: list[Any] = [
        # first: it times the whole operation and reads the outcome once errors are masked
        operation_metrics(settings.metrics_max_operations),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=256),
        lambda: AddValidationRules(rules),
        lambda: ValidationCache(maxsize=256),
        NulGuard,
        node_budget(settings.max_nodes),
        rate_limit(
            RateLimiter(
                settings.redis_url,
                settings.rate_limit_points,
                settings.rate_limit_window_seconds,
                fallback_share=settings.rate_limit_fallback_share,
                key_prefix=deployment_prefix(settings),
            )
        ),
        FreshLoaders,
        AccountState,
        lambda: DispatchEvents(after_response=settings.dispatch_after_response),
        lambda: ErrorTiers(hide_suggestions=settings.is_production),
    ]
    if not settings.introspection_enabled:
        extensions.append(DisableIntrospection)
    if settings.otel_enabled:
        extensions.insert(1, tracing.graphql_extension())
    built = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        types=[*TIMELINE_TYPES, *SEARCH_HIT_TYPES],
        execution_context_class=Executor if settings.fast_paths else None,
    )
    built.fast_paths = settings.fast_paths
    if settings.fast_paths:
        lean_resolvers(built)
    return built


schema = build_schema()
