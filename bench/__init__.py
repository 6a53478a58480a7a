"""Benchmarks: the API against hand-written SQL on the same machine, in the same run.

`make bench` (see bench/README.md). Nothing here runs in the test suite; the statement
count budgets are also asserted by tests/test_statement_counts.py, which imports the
GraphQL documents from bench/queries.py so both measure the same operations.
"""
