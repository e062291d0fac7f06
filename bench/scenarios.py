"""The pure parts of the benchmark: what is created, and what it should cost at the least.

Nothing here starts a process or reads a clock: the harness (`bench.harness`) measures, and these
functions say what the measurements are measured against.

- `Scenario`: N grants over R repositories and K roles, and the cold-start lower bound of a burst.
- `trickle_bound`: the lower bound when the grants arrive at given times, by the operator's own
  rules (coalescing windows per repository, `cache_ttl` for role reads).
- `split_by_cause`: the AWS calls a drift pass made, apart from those grant changes made.
- `percentile`, `ready_times`: time to Ready from each grant's own creation.
- `Target`, `large_targets`: the N=10,000 targets of issue 17, each with its measured value.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

# The operator's defaults (`ecr_access.config.Config`) that the bounds follow; the bench runs with them.
COALESCE_QUIET = 0.5  # Config.coalesce_window
COALESCE_LONGEST = 60.0  # Config.coalesce_longest
CACHE_TTL = 60.0  # Config.cache_ttl
# An answer is as old as the time since it *arrived*: a read made at an arrival answers another that
# comes exactly `cache_ttl` later. The bounds count a read again only past `cache_ttl` + SLACK, so that
# arrival times a few milliseconds off do not decide them (a 10-minute trickle of 1,000 grants over
# 100 roles names each role every 60 s: on the edge).
SLACK = 1.0
AWS_RATE_LIMIT = 20.0  # Config.aws_rate_limit, per service and region
DRIFT = "drift"  # awsproxy.stats.Arrival.cause of a drift pass's calls
READS = ("Get", "List", "Describe")


class Call(Protocol):
    """What the bench reads of one request the proxy saw (`awsproxy.stats.Arrival`)."""

    @property
    def at(self) -> float: ...  # time.time()

    @property
    def operation(self) -> str: ...

    @property
    def cause(self) -> str: ...  # "drift", "sweep", "change", or "" (the request named none)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """N grants over R repositories and K roles, with realistic sharing."""

    grants: int
    repositories: int
    roles: int

    @classmethod
    def sized(cls, n: int) -> Scenario:
        return cls(grants=n, repositories=max(2, n // 20), roles=max(2, n // 10))

    @classmethod
    def large(cls) -> Scenario:
        """Issue 17's N=10,000: 500 repositories, 1,000 roles (what `sized` gives too)."""
        return cls(grants=10_000, repositories=500, roles=1_000)

    def repos_of(self, i: int) -> list[str]:
        names = [f"bench/repo-{(i * 7 + j) % self.repositories}" for j in range(1 + i % 3)]
        return list(dict.fromkeys(names))

    def role_of(self, i: int) -> str:
        return f"bench-role-{i % self.roles}"

    def manifest(self, i: int) -> dict[str, Any]:
        return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
                "metadata": {"name": f"grant-{i}", "namespace": "default"},
                "spec": {"role": {"name": self.role_of(i)}, "repositories": [{"name": r} for r in self.repos_of(i)]}}

    def manifests(self) -> list[dict[str, Any]]:
        return [self.manifest(i) for i in range(self.grants)]

    def lower_bound(self) -> dict[str, int]:
        """A burst's: per role one GetRole, ListAttachedRolePolicies, TagRole (the ledger) and
        AttachRolePolicy; per repository one read, one write and one verifying re-read."""
        roles = {self.role_of(i) for i in range(self.grants)}
        repos = {r for i in range(self.grants) for r in self.repos_of(i)}
        return {"GetRole": len(roles), "ListAttachedRolePolicies": len(roles), "TagRole": len(roles),
                "AttachRolePolicy": len(roles),
                "GetRepositoryPolicy": 2 * len(repos), "SetRepositoryPolicy": len(repos)}

    def pass_floor(self) -> dict[str, int]:
        """What one drift pass must read: each role (GetRole, ListAttachedRolePolicies) and each
        repository (GetRepositoryPolicy) once, and no fewer: a pass that reads less reused an answer
        from before it began, and would miss drift there."""
        floor = self.lower_bound()
        return {"GetRole": floor["GetRole"], "ListAttachedRolePolicies": floor["ListAttachedRolePolicies"],
                "GetRepositoryPolicy": floor["GetRepositoryPolicy"] // 2}

    def per_grant_design(self) -> int:
        """A design with one statement per grant: per grant, a role lookup and an attachment check,
        and a read and a write of every repository it names (plus one attach per role)."""
        pairs = sum(len(self.repos_of(i)) for i in range(self.grants))
        return 2 * self.grants + self.roles + 2 * pairs


def trickle_schedule(n: int, seconds: float) -> list[float]:
    """When each of N grants is created, from 0, spread evenly over `seconds` (0: all at once)."""
    if n <= 1 or seconds <= 0:
        return [0.0] * n
    return [seconds * i / n for i in range(n)]


def coalescing_windows(times: Iterable[float], quiet: float = COALESCE_QUIET,
                       longest: float = COALESCE_LONGEST) -> list[list[float]]:
    """Arrivals grouped as a repository's `Coalescer` groups them at best: a window opens at an
    arrival and takes each next one that comes within `quiet` of the one before it, until `longest`
    after it opened. (The operator can only do worse: a request that comes while a run is under
    way waits for the next run.)"""
    windows: list[list[float]] = []
    for when in sorted(times):
        if windows and when - windows[-1][-1] <= quiet and when - windows[-1][0] < longest:
            windows[-1].append(when)
        else:
            windows.append([when])
    return windows


def cached_reads(times: Iterable[float], ttl: float = CACHE_TTL, slack: float = SLACK) -> int:
    """Reads of one key at the least, greedily: one at an arrival when none was made in the `ttl`
    (plus `slack`) before it (so all at once: one; every 2 ttl over 10 ttl: five)."""
    reads = 0
    last: float | None = None
    for when in sorted(times):
        if last is None or when - last > ttl + slack:
            reads += 1
            last = when
    return reads


def trickle_bound(scenario: Scenario, created: Sequence[float], *, quiet: float = COALESCE_QUIET,
                  longest: float = COALESCE_LONGEST, ttl: float = CACHE_TTL,
                  slack: float = SLACK) -> dict[str, int]:
    """The change-driven lower bound when grant i is created at `created[i]` (seconds, any origin).

    A repository's policy holds one statement per action set, whose principals are the roles of the
    grants naming it (the bench's grants all ask the same actions), so a grant changes the policy
    only if it brings a role the repository's earlier grants did not. Per repository, per coalescing
    window of the arrivals of grants naming it: a window that brings a new role needs one
    GetRepositoryPolicy, one SetRepositoryPolicy and one verifying re-read; one that does not needs
    one GetRepositoryPolicy if the repository was not read in the `ttl` (+ `slack`) before it (an answer that
    already holds what the grants want is reused for `ttl`), else nothing. Per role: one TagRole and
    one AttachRolePolicy, once; one GetRole and one ListAttachedRolePolicies per `cached_reads` of
    the arrivals of grants naming it. All at one moment, this is `Scenario.lower_bound`.

    Drift passes are left out: a pass that read a role or a repository just before a change lends it
    that read (and may make the write itself), so change-driven calls can go below this bound."""
    by_repo: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    by_role: dict[str, list[float]] = collections.defaultdict(list)
    for i, when in enumerate(created[:scenario.grants]):
        by_role[scenario.role_of(i)].append(when)
        for repo in scenario.repos_of(i):
            by_repo[repo].append((when, scenario.role_of(i)))
    reads = writes = 0
    for arrivals in by_repo.values():
        roles_at: dict[float, set[str]] = collections.defaultdict(set)
        for when, role in arrivals:
            roles_at[when].add(role)
        present: set[str] = set()
        last_read: float | None = None
        for window in coalescing_windows([when for when, _ in arrivals], quiet, longest):
            brought = set().union(*(roles_at[when] for when in window))
            if brought - present:
                reads, writes, last_read = reads + 2, writes + 1, window[-1]
                present |= brought
            elif last_read is None or window[0] - last_read > ttl + slack:
                reads, last_read = reads + 1, window[-1]
    role_reads = sum(cached_reads(times, ttl, slack) for times in by_role.values())
    return {"GetRole": role_reads, "ListAttachedRolePolicies": role_reads, "TagRole": len(by_role),
            "AttachRolePolicy": len(by_role), "GetRepositoryPolicy": reads, "SetRepositoryPolicy": writes}


def by_operation(calls: Iterable[Call]) -> dict[str, int]:
    return dict(sorted(collections.Counter(call.operation for call in calls).items()))


def split_by_cause(calls: Iterable[Call]) -> tuple[list[Call], list[Call]]:
    """(change-driven, drift-pass): every call not made by a drift pass is change-driven (the orphan
    sweep is off in the bench; a call that named no cause counts as change-driven)."""
    change: list[Call] = []
    drift: list[Call] = []
    for call in calls:
        (drift if call.cause == DRIFT else change).append(call)
    return change, drift


def per_pass(calls: Iterable[Call], ends: Sequence[float], *, since: float = float("-inf")) -> list[list[Call]]:
    """Calls split at the pass ends (each pass: after the previous end, or `since`, up to its own
    end); calls after the last end belong to a pass still running and are left out."""
    bounds = [since, *sorted(ends)]
    passes: list[list[Call]] = [[] for _ in ends]
    for call in calls:
        slot = bisect.bisect_left(bounds, call.at)  # bounds[slot-1] < at <= bounds[slot]
        if 1 <= slot <= len(ends):
            passes[slot - 1].append(call)
    return passes


def ratio(measured: int, bound: int) -> float:
    return round(measured / bound, 4) if bound else 0.0


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100): the smallest value with at least q% at or below it."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ready_times(created: Mapping[str, float], ready: Mapping[str, float]) -> dict[str, float]:
    """p50, p99 and the last of each grant's time from its creation to its first Ready=True."""
    waits = [ready[name] - created[name] for name in created if name in ready]
    if not waits:
        return {"p50_s": 0.0, "p99_s": 0.0, "last_s": 0.0, "grants": 0}
    return {"p50_s": round(percentile(waits, 50), 3), "p99_s": round(percentile(waits, 99), 3),
            "last_s": round(max(waits), 3), "grants": len(waits)}


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    target: str  # what it must be, in words and numbers
    measured: float
    limit: float
    at_most: bool = True  # measured <= limit passes (else: measured == limit)

    @property
    def passed(self) -> bool:
        return self.measured <= self.limit if self.at_most else math.isclose(self.measured, self.limit)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "measured": self.measured, "limit": self.limit,
                "pass": self.passed}


def large_targets(*, peak_rss_mib: float, idle_rss_kib: float, converged_rss_kib: float, grants: int,
                  change_calls: int, lower_bound: int, converge_s: float, create_s: float,
                  rate_limit: float = AWS_RATE_LIMIT, steady_reads_per_pass: Sequence[int],
                  pass_floor: int, steady_writes: int) -> list[Target]:
    """Issue 17's targets at N=10,000, each against what was measured."""
    per_grant = (converged_rss_kib - idle_rss_kib) / grants if grants else 0.0
    converge_limit = 1.2 * change_calls / rate_limit + create_s
    off_floor = sum(abs(reads - pass_floor) for reads in steady_reads_per_pass) if steady_reads_per_pass else -1
    return [
        Target("peak_rss", "peak RSS <= 250 MiB", round(peak_rss_mib, 1), 250.0),
        Target("rss_per_grant", "<= 15 KiB per grant above the idle process (RSS after convergence)",
               round(per_grant, 2), 15.0),
        Target("change_calls", f"change-driven calls <= 1.02 x the lower bound ({lower_bound})",
               ratio(change_calls, lower_bound), 1.02),
        Target("converge", f"converge <= 1.2 x calls / {rate_limit:g}/s + creation ({create_s:.1f} s), in s",
               round(converge_s, 1), round(converge_limit, 1)),
        Target("steady_floor", f"each steady pass reads its floor ({pass_floor}): total distance from it",
               float(off_floor), 0.0, at_most=False),
        Target("steady_writes", "zero writes in the steady state", float(steady_writes), 0.0, at_most=False),
    ]


def pairwise_spans(ends: Sequence[float]) -> list[float]:
    return [round(b - a, 1) for a, b in itertools.pairwise(ends)]
@dataclasses.dataclass(frozen=True)
class Run:
    """One scenario: a size and an arrival pattern (`spread` 0: a burst; else a trickle over that many s)."""

    scenario: Scenario
    spread: float = 0.0

    @property
    def name(self) -> str:
        return "burst" if self.spread <= 0 else f"trickle{self.spread:g}"


