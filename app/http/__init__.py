"""Everything that speaks HTTP: the GraphQL endpoint (and its WebSocket), the request body
limits, signed file downloads, the payment pages and the Stripe webhook."""
