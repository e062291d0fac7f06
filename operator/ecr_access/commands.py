"""The bodies of `plan`, `adopt` and `whoami`: connect as the operator would, run, print, and say
how it went in the exit code. `cli` parses the flags and settings; the work is in `plan`, `adopt`
and `whoami`, and the connection in `connect`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from ecr_access import adopt, connect, manifests, planreport, whoami
from ecr_access import plan as planning
from ecr_access.clusterview import View
from ecr_access.config import Config
from ecr_access.manifests import Objects
from ecr_access.model import GrantKey, GrantSpec
from ecr_access.ports import Accounts, AwsFault
from ecr_access.roles import RoleDirectory
from ecr_access.spec import SpecError, parse_spec
from ecr_access.watches import FINALIZER, now

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
    for problem in result.problems:  # the report says it too; a pipeline that keeps stdout still sees why it failed
        _fail("plan", problem)
    return planreport.exit_code(result)


def whoami_command(config: Config, *, output: str) -> int:
    """0: the identity, the cluster and every EcrAccessAccount in use answered; 1 otherwise."""
    try:
        connection = connect.open_all(config, tolerate_cluster=True)
        identity = whoami.collect(connection)
    except (connect.ConnectError, AwsFault) as error:
        return _fail("whoami", error)
    _print(whoami.to_json(identity), whoami.to_text(identity), output)
    return 1 if identity.problems or any(item.used and not item.assumed for item in identity.accounts) else 0


def adopt_command(config: Config, files: Sequence[str], *, apply: bool, output: str) -> int:
    """Without --apply: 0 nothing redundant, 2 some. With --apply: 0 done, 1 anything left undone."""
    try:
        given = manifests.read(files) if files else None
        connection = connect.open_all(config)
    except (manifests.ManifestError, connect.ConnectError) as error:
        return _fail("adopt", error)
    assert connection.cluster_id is not None and connection.live is not None
    defaults = connection.defaults
    live = connection.live.copy()
    if given is not None:
        live.accounts.update(given.accounts)  # an account in the files is used to read its repositories
    view = View(live, defaults, enforce=config.policy_mode == "Enforce", finalizer=FINALIZER,
                watched=config.effective_namespaces)
    targets: list[tuple[GrantKey, GrantSpec]] = []
    problems: list[str] = []
    if given is None:
        targets = [(key, entry.spec) for key, entry in view.entries.items() if not entry.handing_over]
    for key, body in (given.grants if given is not None else {}).items():
        try:
            targets.append((key, parse_spec(body.get("spec"), defaults)))
        except SpecError as error:
            problems.append(f"{key}: the spec is invalid: {error}")
    iam, ecr, others = connection.ports()
    others.bind(view.account, view.account_ids)
    reach = Accounts(defaults.account, iam, ecr, others)

    async def work() -> tuple[list[adopt.Candidate], list[str], list[adopt.Removal] | None]:
        candidates, unread = await adopt.find(targets, accounts=reach, cluster_id=connection.cluster_id or "",
                                              roles=RoleDirectory(reach, cache_ttl=config.role_cache_ttl))
        removals = None
        if apply:
            removals = [await adopt.remove(item, accounts=reach, cluster_id=connection.cluster_id or "",
                                           attempts=config.write_attempts) for item in candidates if item.redundant]
        return candidates, unread, removals

    try:
        candidates, unread, removals = asyncio.run(work())
    finally:
        connection.session.close()
    problems += unread
    _print(adopt.to_json(candidates, problems, removals), adopt.render(candidates, problems, removals), output)
    if problems or any(item.failed or item.skipped for item in removals or []):
        return 1
    return 2 if removals is None and any(item.redundant for item in candidates) else 0
