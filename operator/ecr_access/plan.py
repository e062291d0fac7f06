"""`ecr-access-operator plan`: what applying (or deleting) some objects would change in AWS, and the
verdict each grant would get, before anything is applied; like `terraform plan`, it never writes.

How it gets the operator's answers: it builds the indexes the operator would have once the files
are applied (`clusterview`: the cluster's grants, EcrGrantPolicies, namespace labels and
EcrAccessAccounts, with the files' objects created or updated over them, or with `--delete` their
grants deleting) and runs the operator's own `Reconciler` for every grant the files affect: an
apply for a grant created or updated (its applied record, `ecraccess.io/applied`, read from the
live object as the handlers read it, so what an edit drops is recomputed without it), a release
for a deleted one, and an apply of every live grant whose judging a file's policy, namespace or
account changes. The reconciler talks to AWS through planning ports (`planning`): reads reach
AWS, writes land in an overlay. The plan is the difference between AWS and the overlay
(`plandiff`), with each grant's verdict (`Outcome`, and the Ready condition `status` makes of
it), so every verdict the operator can reach (InvalidSpec, NotPermitted, a denying repository
policy, ...) comes out as the operator would write it. The rendering is `planreport`.

Offline (`--offline`), the files are the whole cluster: a principal another grant outside the
files wants shows as removed, marked as not accounted for by the files, and a Retain grant's
hand-over statement is named for a grant without a UID (the cluster gives it one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from ecr_access import accounts, changeset, grants, plandiff, policy, status
from ecr_access.clusterview import View
from ecr_access.conditions import Outcome
from ecr_access.config import Config
from ecr_access.manifests import Objects
from ecr_access.metrics import Metrics
from ecr_access.model import Defaults, GrantKey, RepositoryRef
from ecr_access.planning import Journal, PlanningAccounts, PlanningEcr, PlanningIam, Write
from ecr_access.ports import EcrPort, IamPort, OtherAccounts
from ecr_access.reconcile import ApplyMode, Reconciler
from ecr_access.spec import SpecError, parse_spec
from ecr_access.watches import FINALIZER

# Grants planned at once: their AWS reads overlap, as in a drift pass (`drift.CONCURRENCY`); the
# overlay's final state does not depend on the order (every sync derives from all live grants).
CONCURRENCY = 16
# Verdicts that say the plan could not read AWS (the planner's credentials, or AWS not answering):
# a plan that rests on them is not a plan (exit 1). Writes never fail in a plan, so these come from reads.
UNREAD = frozenset({"AccessDenied", "AwsUnavailable", "Throttled", "AccountUnavailable", "RepositoryUnreachable"})


class BindableAccounts(OtherAccounts, Protocol):
    """The assumed sessions (`aws.accounts.AssumedAccounts`), bound to the plan's view of accounts."""

    def bind(self, lookup: Callable[[str], accounts.AccountSpec | None], listing: Callable[[], Iterable[str]]) -> None:
        ...


@dataclasses.dataclass(frozen=True)
class Ready:
    """The Ready condition a grant would report."""

    status: str
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class GrantPlan:
    key: GrantKey
    change: str  # create | update | unchanged | delete | recheck (a live grant the files' other objects affect)
    handling: str  # apply | release | invalid | suspended | unwatched | absent
    ready: Ready | None = None  # None: released (the grant is gone)
    outcome: Outcome | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    cluster_id: str
    account: str
    region: str
    partition: str
    policy_mode: str
    offline: bool
    delete: bool
    grants: tuple[GrantPlan, ...]
    repositories: tuple[plandiff.RepositoryChange, ...]
    roles: tuple[plandiff.RoleChange, ...]
    writes: tuple[Write, ...]
    problems: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return policy.cluster_prefix(self.cluster_id)

    @property
    def changed(self) -> bool:
        return bool(self.repositories or self.roles)


async def compute(
    live: Objects, files: Objects, *, delete: bool, offline: bool, defaults: Defaults, config: Config,
    cluster_id: str, iam: IamPort, ecr: EcrPort, others: BindableAccounts, now: Callable[[], str],
) -> Plan:
    """The plan for applying `files` over the cluster's `live` objects (or deleting them). `iam`,
    `ecr`, `others`: the real adapters of the operator's own account and the assumed sessions."""
    if offline and delete:
        live = files.copy()  # offline, the files are what exists
    after = changeset.deleted(live, files, now(), FINALIZER) if delete else changeset.overlaid(live, files)
    enforce = config.policy_mode == "Enforce"
    before_view = View(live, defaults, enforce=enforce, finalizer=FINALIZER, watched=config.effective_namespaces)
    view = View(after, defaults, enforce=enforce, finalizer=FINALIZER, watched=config.effective_namespaces)
    others.bind(view.account, view.account_ids)
    journal = Journal()
    own_iam, own_ecr = PlanningIam(iam, defaults.account, journal), PlanningEcr(ecr, defaults.account, journal)
    reach = PlanningAccounts(others, journal)
    # A sync that waits for a burst of requests (a release's) changes when it runs, never what it finds.
    config = dataclasses.replace(config, coalesce_window=0.0)
    reconciler = Reconciler(own_iam, own_ecr, cluster_id=cluster_id, account=defaults.account, config=config,
                            others=reach, metrics=Metrics())
    removing = changeset.removed_keys(live, files) | set(files.grants) if delete else set()
    work = []
    for key in sorted(changeset.affected(before_view, view, files, removing), key=lambda k: (k.namespace, k.name)):
        change = "delete" if key in removing else changeset.change(key, live, files)
        if change != "recheck" or view.watches(key.namespace):  # else another operator's grant
            work.append((key, change))
    bound = asyncio.Semaphore(CONCURRENCY)

    async def one(key: GrantKey, change: str) -> GrantPlan | str:
        async with bound:
            try:
                return await _grant(key, change, live, after, view, reconciler, defaults, config, now)
            except Exception as error:  # one grant's failure must not hide the others' plans
                logging.getLogger(__name__).debug("Planning %s failed", key, exc_info=True)
                return f"{key}: could not be planned: {error}"

    with _planned_audit_lines():
        done = await asyncio.gather(*(one(key, change) for key, change in work))
    results = [item for item in done if isinstance(item, GrantPlan)]
    problems = [item for item in done if isinstance(item, str)]
    for item in results:
        problems.extend(f"{item.key}: {finding.message}" for finding in (item.outcome.findings if item.outcome else [])
                        if finding.reason in UNREAD)
    accounted = _accounted(results, files, defaults) if offline else None
    repositories = [found for account, port in [(defaults.account, own_ecr), *reach.ecrs.items()]
                    for repo, text in port.policies.items()
                    if (found := plandiff.repository(repo.arn, account, port.baseline.get(repo), text,
                                                     reconciler.prefix, accounted=_for(accounted, repo))) is not None]
    roles = [changed for account, port in [(defaults.account, own_iam), *reach.iams.items()]
             for name, entry in port.roles.items() if (changed := plandiff.role(entry, name, account)) is not None]
    return Plan(cluster_id, defaults.account, defaults.region, defaults.partition, config.policy_mode, offline, delete,
                tuple(results), tuple(sorted(repositories, key=lambda item: item.arn)),
                tuple(sorted(roles, key=lambda item: item.arn)), tuple(journal.writes), tuple(problems))


async def _grant(key: GrantKey, change: str, live: Objects, after: Objects, view: View, reconciler: Reconciler,
                 defaults: Defaults, config: Config, now: Callable[[], str]) -> GrantPlan:
    """One grant, handled as the operator's handlers (and its drift pass) would handle it."""
    if not view.watches(key.namespace):
        return GrantPlan(key, change, "unwatched")
    if change == "delete":
        body = live.grants.get(key)
        if body is None:
            return GrantPlan(key, change, "absent")
        meta = body.get("metadata") or {}
        spec = grants.parse_own_spec(body.get("spec"), defaults)
        applied = grants.parse_applied((meta.get("annotations") or {}).get(grants.APPLIED_ANNOTATION), defaults)
        outcome = await reconciler.release(key, spec, applied, view.live, str(meta.get("uid", "")))
        ready = _ready(outcome, int(meta.get("generation") or 0), now) if outcome.transient or outcome.terminal \
            else None
        return GrantPlan(key, change, "release", ready, outcome)
    body = after.grants[key]
    meta = body.get("metadata") or {}
    generation = int(meta.get("generation") or 0)
    entry = view.entries.get(key)
    try:
        spec = parse_spec(body.get("spec"), defaults)
    except SpecError as error:
        invalid = status.invalid_spec_status(str(error), generation, None, now())["conditions"][0]
        if entry is not None:  # its frozen contribution, judged again by the drift pass
            await reconciler.resync(entry, view.live, config.cache_ttl)
        return GrantPlan(key, change, "invalid", Ready(invalid["status"], invalid["reason"], invalid["message"]))
    if spec.suspend:  # its status stays as it is: only its Ready status is kept here
        if entry is not None:
            await reconciler.resync(entry, view.live, config.cache_ttl)
        was = next((item for item in (body.get("status") or {}).get("conditions") or []
                    if isinstance(item, dict) and item.get("type") == "Ready"), {})
        return GrantPlan(key, change, "suspended", Ready(str(was.get("status", "Unknown")), "Suspended",
                                                         "spec.suspend is true: the operator changes nothing "
                                                         "for this grant."))
    applied = grants.parse_applied((meta.get("annotations") or {}).get(grants.APPLIED_ANNOTATION), defaults)
    outcome = await reconciler.apply(key, spec, applied, view.live, ApplyMode(debounce=False))
    return GrantPlan(key, change, "apply", _ready(outcome, generation, now), outcome)


def _ready(outcome: Outcome, generation: int, now: Callable[[], str]) -> Ready:
    condition = status.build_status(outcome, generation, None, now())["conditions"][0]
    return Ready(condition["status"], condition["reason"], condition["message"])


def _accounted(results: Iterable[GrantPlan], files: Objects, defaults: Defaults) -> dict[RepositoryRef, set[str]]:
    """Offline: which principals, per repository, the files' grants account for: their roles, in
    the repositories their spec or applied record names."""
    found: dict[RepositoryRef, set[str]] = {}
    for item in results:
        body = files.grants.get(item.key)
        if body is None or item.outcome is None or not item.outcome.role_arn:
            continue
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        named = [spec for spec in (grants.parse_own_spec(body.get("spec"), defaults),
                                   grants.parse_applied(annotations.get(grants.APPLIED_ANNOTATION), defaults))
                 if spec is not None]
        for repo in {repo for spec in named for repo in spec.repositories}:
            found.setdefault(repo, set()).add(item.outcome.role_arn)
    return found


def _for(accounted: dict[RepositoryRef, set[str]] | None, repo: RepositoryRef) -> Callable[[str], bool] | None:
    if accounted is None:
        return None
    known = accounted.get(repo, set())
    return lambda principal: principal in known


class _Planned(logging.Filter):
    """The reconciler's audit lines say what it wrote; in a plan nothing is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("AUDIT "):
            record.msg = "PLANNED (not written) " + record.msg.removeprefix("AUDIT ")
        return True


@contextlib.contextmanager
def _planned_audit_lines() -> Iterator[None]:
    planned = _Planned()
    loggers = [logging.getLogger(name)
               for name in ("ecr_access.repositories", "ecr_access.attachments")]
    for item in loggers:
        item.addFilter(planned)
    try:
        yield
    finally:
        for item in loggers:
            item.removeFilter(planned)
