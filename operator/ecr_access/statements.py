"""The statements this cluster wants in one repository's policy, from every live grant naming it.

One shared statement per action set (DESIGN §2.3), whose principals are the resolved role ARNs of
the grants that want it, and the Retain hand-overs in flight. Derived from all the live grants,
never from the one being handled, which is what makes a sync's result independent of the order in
which grants are handled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ecr_access import handover, policy
from ecr_access.grants import LiveGrant
from ecr_access.model import RoleRef
from ecr_access.ports import RoleInfo


async def desired(
    cluster_id: str, grants: list[LiveGrant], resolve: Callable[[RoleRef], Awaitable[RoleInfo | None]],
    permitted: Callable[[LiveGrant, str], bool],
) -> tuple[list[policy.DesiredStatement], list[handover.Handover]]:
    """This cluster's statements for a repository, from every live grant naming it, and the Retain
    hand-overs in flight (their roles are not in the shared statements unless they do not fit).
    A grant whose role does not resolve is left out (syncing drops it where it was), and so is one
    that no EcrGrantPolicy permits on this repository: it is undone as a delete would undo it, with
    no hand-over (`tenancy`)."""
    wanted: dict[str, tuple[tuple[str, ...], set[str]]] = {}
    handovers = []
    for grant in grants:
        sid = policy.statement_sid(cluster_id, grant.spec.actions)
        entry = wanted.setdefault(sid, (grant.spec.actions, set()))
        info = await resolve(grant.spec.role)
        if info is None or not permitted(grant, info.arn):
            continue
        if grant.handing_over:
            handovers.append(handover.Handover(
                policy.retained_sid(cluster_id, grant.key.namespace, grant.key.name, grant.uid), sid,
                info.arn, grant.spec.actions))
        else:
            entry[1].add(info.arn)
    desired = [policy.DesiredStatement(sid, actions, frozenset(arns)) for sid, (actions, arns) in wanted.items()]
    return desired, handovers
