"""The bodies of the commands that answer for the operator from outside it (`plan`): connect as the
operator would, run, print, and say how it went in the exit code. `cli` parses the flags and
settings; the work is in `plan`, and the connection in `connect`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from ecr_access import connect, manifests, planreport
from ecr_access import plan as planning
from ecr_access.config import Config
from ecr_access.manifests import Objects
from ecr_access.watches import now

OFFLINE_HINT = " (to plan from the files alone: --offline --cluster-id ID)"


def _fail(command: str, error: object) -> int:
    print(f"ecr-access-operator {command}: {error}", file=sys.stderr)
    return 1


def _print(document: Any, text: str, output: str) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n" if output == "json" else text)
    sys.stdout.flush()


def plan(config: Config, files: Sequence[str], *, offline: bool, delete: bool, output: str) -> int:
    """0: no changes; 2: changes; 1: the plan failed (as `terraform plan -detailed-exitcode`)."""
    try:
        objects = manifests.read(files)
        if not objects:
            raise manifests.ManifestError(", ".join(files), "no object to plan")
        connection = connect.open_all(config, offline=offline, hint=OFFLINE_HINT)
    except (manifests.ManifestError, connect.ConnectError) as error:
        return _fail("plan", error)
    iam, ecr, others = connection.ports()
    assert connection.cluster_id is not None
    try:
        result = asyncio.run(planning.compute(
            connection.live or Objects(), objects, delete=delete, offline=offline, defaults=connection.defaults,
            config=config, cluster_id=connection.cluster_id, iam=iam, ecr=ecr, others=others, now=now))
    finally:
        connection.session.close()
    _print(planreport.to_json(result), planreport.to_text(result), output)
    return planreport.exit_code(result)
