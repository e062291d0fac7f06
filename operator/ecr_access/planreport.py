"""How a plan reads: a diff a person reviews (text), or a document a pipeline reads (`-o json`).

The text form has one line per change, each starting with `+` (added), `-` (removed) or `~`
(changed) and naming the repository or role, so that `grep` finds a principal's lines. The JSON
form is described in `JSON_FORM` (the command's help prints it); its keys are public once
pipelines read them, so add keys, never rename them.
"""

from __future__ import annotations

import json
from typing import Any

from ecr_access.plan import GrantPlan, Plan
from ecr_access.plandiff import RepositoryChange, RoleChange

JSON_FORM = """\
-o json prints one object:
  changes       true when AWS would change (the exit code is then 2)
  clusterId, sidPrefix, account, region, partition, policyMode, offline, delete
  grants[]      namespace, name,
                change: create | update | unchanged | delete | recheck (a live grant whose judging a policy,
                        namespace or account in the files changes),
                handling: apply | release | invalid | suspended | unwatched | absent,
                ready: {status, reason, message} as the grant's Ready condition would say (null once released),
                roleArn, role: {reason, message}, repositories[]: {arn, sid, ready, reason, message},
                warnings[]
  repositories[] arn, account, policy: create | update | delete,
                statements[]: {sid, change: add | remove | update, ours, principalsAdded[], principalsRemoved[],
                               actions[], fields[] (other keys that change), unaccounted[] (offline: removed
                               principals no grant in the files accounts for)}
  roles[]       arn, account, attach[], detach[] (managed policy ARNs), tagsSet[]: {key, value, was},
                tagsRemoved[]: {key, was}
  writes[]      account, operation, resource, detail: the writes an apply would make, in order
  problems[]    what kept the plan from reading AWS (the exit code is then 1)"""

OFFLINE_NOTE = "offline: no grant in the files wants it; a grant outside the files may"


def to_json(plan: Plan) -> dict[str, Any]:
    return {
        "changes": plan.changed, "clusterId": plan.cluster_id, "sidPrefix": plan.prefix, "account": plan.account,
        "region": plan.region, "partition": plan.partition, "policyMode": plan.policy_mode, "offline": plan.offline,
        "delete": plan.delete,
        "grants": [_grant_json(item) for item in plan.grants],
        "repositories": [{"arn": item.arn, "account": item.account, "policy": item.policy, "statements": [
            {"sid": change.sid, "change": change.change, "ours": change.ours,
             "principalsAdded": list(change.principals_added), "principalsRemoved": list(change.principals_removed),
             "actions": list(change.actions), "fields": list(change.fields), "unaccounted": list(change.unaccounted)}
            for change in item.statements]} for item in plan.repositories],
        "roles": [{"arn": item.arn, "account": item.account, "attach": list(item.attach), "detach": list(item.detach),
                   "tagsSet": [{"key": key, "value": value, "was": was} for key, value, was in item.tags_set],
                   "tagsRemoved": [{"key": key, "was": was} for key, was in item.tags_removed]}
                  for item in plan.roles],
        "writes": [{"account": item.account, "operation": item.operation, "resource": item.resource,
                    "detail": item.detail} for item in plan.writes],
        "problems": list(plan.problems),
    }


def _grant_json(item: GrantPlan) -> dict[str, Any]:
    outcome = item.outcome
    return {
        "namespace": item.key.namespace, "name": item.key.name, "change": item.change, "handling": item.handling,
        "ready": None if item.ready is None else {"status": item.ready.status, "reason": item.ready.reason,
                                                  "message": item.ready.message},
        "roleArn": outcome.role_arn if outcome else None,
        "role": {"reason": outcome.role.reason, "message": outcome.role.message} if outcome else None,
        "repositories": [{"arn": repo.arn, "sid": repo.sid, "ready": repo.finding.ok, "reason": repo.finding.reason,
                          "message": repo.finding.message} for repo in (outcome.repositories if outcome else ())],
        "warnings": _warnings(item),
    }


def _warnings(item: GrantPlan) -> list[str]:
    outcome = item.outcome
    return [*(outcome.notes if outcome else ()), *(left.message for left in (outcome.unsettled if outcome else ()))]


def to_text(plan: Plan) -> str:
    lines = [f"Plan for cluster {plan.cluster_id} (Sid prefix {plan.prefix}), policy mode {plan.policy_mode}, "
             f"account {plan.account} ({plan.partition}), region {plan.region}"
             + (", offline: the files are the whole cluster" if plan.offline else "")]
    if plan.grants:
        lines += ["", "Grants:", *(line for item in plan.grants for line in _grant_lines(item))]
    else:
        lines += ["", "No grant is affected."]
    changes = [line for item in plan.repositories for line in _repository_lines(item)]
    changes += [line for item in plan.roles for line in _role_lines(item)]
    if changes:
        lines += ["", "Changes in AWS:", *(f"  {line}" for line in changes)]
    if plan.problems:
        lines += ["", "Errors (the plan could not read AWS):", *(f"  {problem}" for problem in plan.problems)]
    lines += ["", _summary(plan)]
    return "\n".join(lines) + "\n"


def _grant_lines(item: GrantPlan) -> list[str]:
    head = f"  {item.key} ({item.change})"
    if item.handling == "unwatched":
        return [f"{head}: not in a namespace this operator watches (--namespace): the operator ignores it"]
    if item.handling == "absent":
        return [f"{head}: not in the cluster: nothing to release"]
    if item.ready is None:
        role = item.outcome.role_arn if item.outcome and item.outcome.role_arn else "its role"
        lines = [f"{head}: released: {role} leaves the policies of its repositories unless another grant wants it"]
    else:
        lines = [f"{head}: would be Ready={item.ready.status} ({item.ready.reason}): {item.ready.message}"]
    outcome = item.outcome
    for repo in outcome.repositories if outcome else ():
        message = f": {repo.finding.message}" if repo.finding.message else ""
        lines.append(f"      repository {repo.arn}: {repo.finding.reason}{message}")
    lines += [f"      warning: {warning}" for warning in _warnings(item)]
    return lines


def _repository_lines(item: RepositoryChange) -> list[str]:
    mark = {"create": "+", "update": "~", "delete": "-"}[item.policy]
    head = f"{mark} repository {item.arn}:"
    lines = [f"{head} policy created"] if item.policy == "create" else []
    for change in item.statements:
        if change.change == "add":
            lines.append(f"{head} + statement {change.sid} (Allow, {len(change.actions)} actions"
                         f"{'' if change.ours else ', foreign'})")
        elif change.change == "remove":
            lines.append(f"{head} - statement {change.sid}{'' if change.ours else ' (foreign)'}")
        elif change.fields:
            lines.append(f"{head} ~ statement {change.sid}: {', '.join(change.fields)} change")
        lines += [f"{head} + principal {principal} in Sid {change.sid}" for principal in change.principals_added]
        lines += [f"{head} - principal {principal} in Sid {change.sid}"
                  + (f" ({OFFLINE_NOTE})" if principal in change.unaccounted else "")
                  for principal in change.principals_removed]
    if item.policy == "delete":
        lines.append(f"{head} policy deleted (no statement left)")
    return lines


def _role_lines(item: RoleChange) -> list[str]:
    head = f"~ role {item.arn}:"
    lines = [f"{head} + managed policy {arn}" for arn in item.attach]
    lines += [f"{head} - managed policy {arn}" for arn in item.detach]
    lines += [f"{head} ~ tag {key} = {json.dumps(value)} (was {json.dumps(was) if was is not None else 'unset'})"
              for key, value, was in item.tags_set]
    lines += [f"{head} - tag {key} (was {json.dumps(was)})" for key, was in item.tags_removed]
    return lines


def _summary(plan: Plan) -> str:
    if plan.problems:
        return "Plan incomplete: see the errors above."
    if not plan.changed:
        return "No changes: AWS already holds what these grants ask for."
    parts = []
    if plan.repositories:
        parts.append(f"{len(plan.repositories)} repository polic{'y' if len(plan.repositories) == 1 else 'ies'}")
    if plan.roles:
        parts.append(f"{len(plan.roles)} role{'' if len(plan.roles) == 1 else 's'}")
    return f"Plan: {' and '.join(parts)} to change ({len(plan.writes)} writes)."


def exit_code(plan: Plan) -> int:
    """Like `terraform plan -detailed-exitcode`: 0 nothing to change, 2 changes, 1 the plan failed."""
    return 1 if plan.problems else 2 if plan.changed else 0
