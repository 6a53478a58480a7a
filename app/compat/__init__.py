"""Every use of another library's private parts, one module per library.

The speed shortcuts (our executor, lean resolvers, live events executed once for all
subscribers, joined pages, batched writes, the supervised broadcast backend) rely on
names and signatures that those libraries do not promise to keep: graphql-core's
`ExecutionContext.execute_field` and per-event executor, strawberry's field definitions
and WebSocket handler internals, Tortoise's query building and row hydration,
broadcaster's memory backend. They are used here, behind small functions and classes,
and nowhere else; `tests/test_compat.py` pins each one (the versions, and the
signatures and attributes relied on), so an upgrade that moves one fails in one named
test saying which shortcut to revisit.

`FAST_PATHS=false` runs the schema on strawberry's and graphql-core's own execution,
without the shortcuts (see `app.api.build_schema`).
"""
