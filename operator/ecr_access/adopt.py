"""`ecr-access-operator adopt`: take out the foreign statements that grants make redundant, on request.

Why a command and never the operator: the operator owns only its own statements and leaves every
other one exactly as it found it (DESIGN §2.3, §2.6). The manual procedure's `AllowPull` for a
node role is someone's statement, even after a grant gives the role the same access; removing it
is a decision a person makes, once, with this command. Without `--apply` it only lists what it
would remove (and the statements only partly covered, which it never touches).

With `--apply`, a repository's statements go only once the grant's own statement is in its policy
with the role as a principal, so that the role never loses access in between; and through the
operator's kind of read-merge-write-verify loop (`repositories`): read, drop exactly the statements
listed (matched by their whole content, so a statement edited since it was listed stays), write,
re-read, and merge again if the policy changed under the write, a bounded number of times. ECR has
no conditional write: an edit landing between the read and the write is lost, as with the operator's
own writes; the re-read catches everything later. Each write is logged as an AUDIT line, as the
operator logs its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ecr_access import policy, redundancy
from ecr_access.model import GrantKey, GrantSpec, RepositoryRef
from ecr_access.ports import Accounts, AwsFault
from ecr_access.roles import RoleDirectory

logger = logging.getLogger(__name__)

RETRY_JITTER = (0.05, 0.5)  # the pause before merging again, as `repositories.RETRY_JITTER`


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One grant's repository, and the foreign statements there that name the grant's role."""

    key: GrantKey
    repo: RepositoryRef
    role_arn: str
    sid: str  # the grant's own statement
    judged: tuple[redundancy.Judged, ...]
    ready: bool  # the grant's own statement carries the role now

    @property
    def redundant(self) -> tuple[redundancy.Judged, ...]:
        return tuple(item for item in self.judged if item.redundant)


@dataclasses.dataclass(frozen=True)
class Removal:
    candidate: Candidate
    removed: tuple[Mapping[str, Any], ...] = ()
    skipped: str = ""  # why nothing was removed although something was listed
    failed: str = ""


async def find(targets: Iterable[tuple[GrantKey, GrantSpec]], *, accounts: Accounts, roles: RoleDirectory,
               cluster_id: str) -> tuple[list[Candidate], list[str]]:
    """The repositories of `targets` holding foreign statements that name their roles, and what
    could not be looked at (a role or policy that could not be read)."""
    prefix = policy.cluster_prefix(cluster_id)
    found, problems = [], []
    for key, spec in targets:
        try:
            info = await roles.principal(spec.role)
        except AwsFault as fault:
            problems.append(f"{key}: could not look up IAM role {spec.role.describe()}: {fault}")
            continue
        if info is None:
            problems.append(f"{key}: IAM role {spec.role.describe()} was not found: nothing to adopt")
            continue
        sid = policy.statement_sid(cluster_id, spec.actions)
        for repo in spec.repositories:
            try:
                document = policy.parse(await accounts.ecr(repo.registry_id).get_repository_policy(repo))
            except (AwsFault, policy.PolicyDocumentError) as problem:
                problems.append(f"{key}: could not read the policy of {repo.arn}: {problem}")
                continue
            judged = redundancy.judge(policy.statements(document), info.arn, spec.actions, prefix)
            if judged:
                found.append(Candidate(key, repo, info.arn, sid, tuple(judged), holds(document, prefix, sid, info.arn)))
    return found, problems


def holds(document: policy.Document | None, prefix: str, sid: str, role_arn: str) -> bool:
    """Whether the grant's own statement is in the policy with the role as a principal."""
    return role_arn in policy.owned_principals(document, prefix).get(sid, frozenset())


async def remove(candidate: Candidate, *, accounts: Accounts, cluster_id: str, attempts: int,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> Removal:
    """Remove the candidate's redundant statements, as the module docstring says."""
    prefix, repo = policy.cluster_prefix(cluster_id), candidate.repo
    wanted = {canonical(item.statement) for item in candidate.redundant}
    if not wanted:
        return Removal(candidate, skipped="no statement there is redundant as a whole")
    ecr = accounts.ecr(repo.registry_id)
    removed: list[Mapping[str, Any]] = []
    try:
        document = policy.parse(await ecr.get_repository_policy(repo))
        for attempt in range(1, attempts + 1):
            if not holds(document, prefix, candidate.sid, candidate.role_arn):
                return Removal(candidate, tuple(removed), skipped=(
                    f"the grant's statement {candidate.sid} does not carry {candidate.role_arn} in the policy (yet): "
                    "adopt removes nothing until it does (is the grant Ready?)"))
            statements = policy.statements(document)
            targets = [item for item in statements if canonical(item) in wanted]
            if not targets:
                note = "" if removed else "the statements were edited or removed since they were listed: kept"
                return Removal(candidate, tuple(removed), skipped=note)
            assert document is not None  # it holds our statement
            written = {**document, "Statement": [item for item in statements if canonical(item) not in wanted]}
            await ecr.set_repository_policy(repo, policy.serialize(written))
            for item in targets:
                _audit(candidate, item)
            removed.extend(targets)
            document = policy.parse(await ecr.get_repository_policy(repo))
            if policy.equivalent(document, written):
                return Removal(candidate, tuple(removed))
            logger.warning("Repository %s policy changed while adopt wrote it (attempt %d): merging again", repo.arn,
                           attempt)
            await sleep(random.uniform(*RETRY_JITTER))
    except (AwsFault, policy.PolicyDocumentError) as problem:
        return Removal(candidate, tuple(removed), failed=str(problem))
    return Removal(candidate, tuple(removed), failed=f"the policy kept changing under concurrent writers "
                   f"({attempts} times); run adopt again")


def canonical(statement: Mapping[str, Any]) -> str:
    """A statement's whole content, for matching it exactly (its form aside: key order, spacing)."""
    return json.dumps(statement, sort_keys=True)


def _audit(candidate: Candidate, statement: Mapping[str, Any]) -> None:
    principals = redundancy.aws_principals(statement.get("Principal")) or []
    logger.info("AUDIT SetRepositoryPolicy %s: principals added none, removed %s with the foreign statement %s; for "
                "grants ['%s'], whose statement %s keeps them; requested by adopt", candidate.repo.arn,
                sorted(principals), json.dumps(statement.get("Sid", "(no Sid)")), candidate.key, candidate.sid)


def render(candidates: list[Candidate], problems: list[str], removals: list[Removal] | None) -> str:
    """The listing (a diff of the statements to remove), or with `removals` what `--apply` did."""
    lines: list[str] = []
    done = {id(item.candidate): item for item in removals or []}
    for candidate in candidates:
        state = "carries the role" if candidate.ready else "does not carry the role yet"
        lines.append(f"{candidate.key}: repository {candidate.repo.arn}, role {candidate.role_arn}, "
                     f"statement {candidate.sid} ({state})")
        for item in candidate.judged:
            if item.redundant:
                lines.append(f"  - statement {item.sid}: redundant with {candidate.sid}")
                lines += [f"  -   {line}" for line in json.dumps(item.statement, indent=2).splitlines()]
            else:
                lines.append(f"  = statement {item.sid}: partly covered: {item.reason}; left alone")
        removal = done.get(id(candidate))
        if removal is not None:
            if removal.removed:
                lines.append(f"  removed {len(removal.removed)} statement{'s' if len(removal.removed) > 1 else ''}")
            if removal.skipped or removal.failed:
                lines.append(f"  {'skipped' if removal.skipped else 'failed'}: {removal.skipped or removal.failed}")
        elif candidate.redundant and not candidate.ready:
            lines.append(f"  --apply would skip it: the grant's statement does not carry {candidate.role_arn} yet")
    lines += [f"error: {problem}" for problem in problems]
    count = sum(len(item.redundant) for item in candidates)
    if removals is None:
        lines.append(f"Found {count} redundant statement{'' if count == 1 else 's'}"
                     + (": run again with --apply to remove them." if count else "."))
    else:
        gone = sum(len(item.removed) for item in removals)
        lines.append(f"Removed {gone} of {count} redundant statement{'' if count == 1 else 's'}.")
    return "\n".join(lines) + "\n"


def to_json(candidates: list[Candidate], problems: list[str], removals: list[Removal] | None) -> dict[str, Any]:
    """The listing (and what `--apply` did) as one object: `applied`, `candidates[]` (namespace,
    name, repository, roleArn, sid, ready, redundant[] and partlyCovered[] {statement, reason},
    with --apply removed[], skipped, failed), `problems[]`."""
    done = {id(item.candidate): item for item in removals or []}

    def entry(candidate: Candidate) -> dict[str, Any]:
        removal = done.get(id(candidate))
        found: dict[str, Any] = {
            "namespace": candidate.key.namespace, "name": candidate.key.name, "repository": candidate.repo.arn,
            "roleArn": candidate.role_arn, "sid": candidate.sid, "ready": candidate.ready,
            "redundant": [dict(item.statement) for item in candidate.judged if item.redundant],
            "partlyCovered": [{"statement": dict(item.statement), "reason": item.reason}
                              for item in candidate.judged if not item.redundant]}
        if removal is not None:
            found.update(removed=[dict(item) for item in removal.removed], skipped=removal.skipped or None,
                         failed=removal.failed or None)
        return found

    return {"applied": removals is not None, "candidates": [entry(item) for item in candidates],
            "problems": list(problems)}
