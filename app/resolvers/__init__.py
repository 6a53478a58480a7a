"""Thin resolvers: authorise, decode input, call a service, map DomainError to userErrors."""
