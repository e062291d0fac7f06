"""bench.memory's grouping of retained blocks (the runs themselves are a measurement, not a test)."""

from __future__ import annotations

from bench import memory

SITE = "/venv/lib/python3.11/site-packages"


def test_a_block_belongs_to_the_innermost_owner_not_to_the_stdlib() -> None:
    parsed_in_kopf = ["/usr/lib/python3.11/json/decoder.py", f"{SITE}/aiohttp/client_reqrep.py",
                      f"{SITE}/kopf/_cogs/clients/api.py", "/src/operator/ecr_access/cli.py"]
    assert memory.owner_of(parsed_in_kopf) == "kopf"
    assert memory.owner_of(["/usr/lib/python3.11/json/decoder.py", f"{SITE}/botocore/loaders.py"]) == "botocore"
    assert memory.owner_of(["/src/operator/ecr_access/spec.py", f"{SITE}/kopf/_core/engines/indexing.py"]) == \
        "ecr_access"
    assert memory.owner_of(["/usr/lib/python3.11/asyncio/queues.py"]) == "other"
