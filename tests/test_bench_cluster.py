"""The bench's private PostgreSQL cluster (bench/cluster.py): what `make bench` and
`make bench-scale` run on instead of reconfiguring a server they did not start."""

from __future__ import annotations

import asyncpg
import pytest

from bench.cluster import Cluster, find_bindir

pytestmark = pytest.mark.skipif(find_bindir() is None, reason="no PostgreSQL server binaries")


async def test_a_private_cluster_preloads_pg_stat_statements_and_leaves_nothing_behind():
    cluster = Cluster()
    assert cluster.start() == ""
    root = cluster.root
    assert root is not None
    assert root.exists()
    try:
        conn = await asyncpg.connect(cluster.url)
        try:
            assert "pg_stat_statements" in await conn.fetchval("SHOW shared_preload_libraries")
            assert await conn.fetchval("SHOW port") == str(cluster.port)
        finally:
            await conn.close()
    finally:
        cluster.stop()
    assert not root.exists()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(cluster.url, timeout=2)
