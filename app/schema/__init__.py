"""GraphQL types and their field resolvers, and what the schema is built with (execution,
extensions, limits). The root fields live in app.resolvers; app.api assembles the schema."""
