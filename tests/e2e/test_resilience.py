"""Issue 4's "must show": the real operator keeps AWS exactly right through faults, crashes,
concurrent grants, a foreign writer and a role deleted under it.

The operator's AWS traffic goes through `awsproxy` (faults injected there, calls counted there);
the tests' own boto3 clients talk to moto directly, so what they read is what AWS holds. Every
test ends by comparing AWS with the state the live grants imply, computed here from DESIGN §2.3
(Sids derived independently of the operator's code): missing, duplicated or leftover statements,
wrong principals and lost foreign statements all fail it.

Random choices are seeded; set RESILIENCE_SEED to replay a run. The seed is printed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
import yaml

from awsproxy.faults import FaultConfig, Rates
from awsproxy.proxy import ProxyThread, run_in_thread
from ecr_access import policy
from ecr_sandbox.seed import repository_policy
from tests.e2e.conftest import ACCOUNT, READ_ONLY, Driver, ProxiedSandbox, eventually, restarted, running

pytestmark = pytest.mark.e2e

CLUSTER_ID = "e2e-resilience"
RESYNC = 3.0
SEED = int(os.environ.get("RESILIENCE_SEED", "4242"))
LABEL = "resilience.test/case"
CUSTOM_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
REFERENCE_ACTIONS = (  # DESIGN §1: an empty spec.actions means these 12, in this order
    "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:DescribeImageScanFindings", "ecr:DescribeImages",
    "ecr:DescribeRepositories", "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer", "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview", "ecr:GetRepositoryPolicy", "ecr:ListImages", "ecr:ListTagsForResource",
)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


PREFIX = "EcrAccessGrant" + _digest(CLUSTER_ID, 8)


def sid_for(actions: Iterable[str]) -> str:
    """DESIGN §2.3's Sid, derived here rather than taken from the operator."""
    return PREFIX + _digest(",".join(sorted(set(actions))), 16)


def foreign(sid: str, **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload"], **extra}


def document(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


# -- the desired state --------------------------------------------------------------------------------


@dataclasses.dataclass
class Want:
    """One grant as the test wants it; the source of truth for the expected AWS state."""

    name: str
    role: str
    repos: tuple[str, ...]
    actions: tuple[str, ...] = ()  # () = the reference actions
    managed: str = "None"

    @property
    def effective_actions(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.actions))) if self.actions else REFERENCE_ACTIONS

    def manifest(self, case: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"role": {"name": self.role}, "repositories": [{"name": r} for r in self.repos],
                                "managedPolicy": self.managed}
        if self.actions:
            spec["actions"] = list(self.actions)
        return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant",
                "metadata": {"name": self.name, "namespace": "default", "labels": {LABEL: case}}, "spec": spec}


def expected_statements(wants: Iterable[Want], role_arns: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """repo -> sid -> (actions, principals): one shared statement per action set (DESIGN §2.3).

    A grant whose role does not resolve (None in `role_arns`) still names the statement but adds
    no principal to it.
    """
    result: dict[str, dict[str, Any]] = {}
    for want in wants:
        for repo in want.repos:
            actions = want.effective_actions
            entry = result.setdefault(repo, {}).setdefault(sid_for(actions), (actions, set()))
            arn = role_arns.get(want.role)
            if arn is not None:
                entry[1].add(arn)
    return result


def aws_problems(driver: Driver, repos: Iterable[str], wants: Iterable[Want], role_arns: Mapping[str, str | None],
                 foreign_by_repo: Mapping[str, list[dict[str, Any]]], ignore_sid_prefix: str = "") -> list[str]:
    """Every way AWS differs from the desired state of `repos`; empty when it is exact.

    Statements whose Sid starts with `ignore_sid_prefix` (when given) are not looked at.
    """
    problems = []
    expected = expected_statements(wants, role_arns)
    for repo in sorted(set(repos)):
        doc = driver.policy(repo)
        statements = [item for item in policy.statements(doc)
                      if not (ignore_sid_prefix and str(item.get("Sid", "")).startswith(ignore_sid_prefix))]
        want_ours = {sid: entry for sid, entry in expected.get(repo, {}).items() if entry[1]}
        want_foreign = foreign_by_repo.get(repo, [])
        if not want_ours and not want_foreign:
            if doc is not None and not ignore_sid_prefix:
                problems.append(f"{repo}: expected no policy, found {json.dumps(doc)}")
            continue
        ours = [item for item in statements if str(item.get("Sid", "")).startswith(PREFIX)]
        sids = [str(item["Sid"]) for item in ours]
        if len(sids) != len(set(sids)):
            problems.append(f"{repo}: duplicate statements of ours: {sorted(sids)}")
        for item in ours:
            sid = str(item["Sid"])
            if sid not in want_ours:
                problems.append(f"{repo}: leftover statement {sid} with {item.get('Principal')}")
                continue
            actions, arns = want_ours[sid]
            principal = item.get("Principal", {}).get("AWS", [])
            got = {principal} if isinstance(principal, str) else set(principal)
            if got != arns:
                problems.append(f"{repo}: {sid} principals: missing {sorted(arns - got)}, extra {sorted(got - arns)}")
            raw_actions = item.get("Action")
            got_actions = [raw_actions] if isinstance(raw_actions, str) else list(raw_actions or [])
            if sorted(got_actions) != sorted(actions) or item.get("Effect") != "Allow":
                problems.append(f"{repo}: {sid} has Effect {item.get('Effect')} and Action {got_actions}")
        for sid in sorted(set(want_ours) - set(sids)):
            problems.append(f"{repo}: missing statement {sid} for {sorted(want_ours[sid][1])}")
        for item in want_foreign:
            if item not in statements:
                problems.append(f"{repo}: foreign statement lost: {json.dumps(item)}")
        others = [item for item in statements if item not in want_foreign and item not in ours]
        if others:
            problems.append(f"{repo}: unexpected statements {json.dumps(others)}")
    return problems


def assert_aws_converges(driver: Driver, repos: Iterable[str], wants: Iterable[Want],
                         role_arns: Mapping[str, str | None], foreign_by_repo: Mapping[str, list[dict[str, Any]]],
                         timeout: float = RESYNC * 4, context: str = "", ignore_sid_prefix: str = "") -> None:
    """Poll until AWS is exact; fail with the differences and the documents AWS held."""
    repos, wants = sorted(set(repos)), list(wants)
    deadline = time.monotonic() + timeout
    while True:
        problems = aws_problems(driver, repos, wants, role_arns, foreign_by_repo, ignore_sid_prefix)
        if not problems:
            return
        if time.monotonic() > deadline:
            held = {repo: driver.policy(repo) for repo in repos}
            raise AssertionError(
                f"AWS did not reach the desired state within {timeout}s {context}\n  "
                + "\n  ".join(problems) + f"\nAWS held: {json.dumps(held, indent=1)}"
            )
        time.sleep(0.25)


# -- the cluster side ---------------------------------------------------------------------------------


def grants_in_case(driver: Driver, case: str) -> list[dict[str, Any]]:
    done = driver.kubectl("get", "ecraccessgrant", "-l", f"{LABEL}={case}", "-o", "json")
    return list(json.loads(done.stdout)["items"])


def not_ready(body: Mapping[str, Any]) -> str | None:
    """Why a grant is not Ready at its current generation, or None when it is."""
    generation = body["metadata"].get("generation")
    status = body.get("status") or {}
    ready = {item["type"]: item for item in status.get("conditions", [])}.get("Ready")
    if status.get("observedGeneration") != generation:
        return f"observedGeneration {status.get('observedGeneration')} != generation {generation}"
    if ready is None or ready["status"] != "True":
        return f"Ready is {ready and (ready['status'], ready['reason'], ready['message'])}"
    return None


def wait_case_ready(driver: Driver, case: str, names: Iterable[str], gone: Iterable[str] = (),
                    timeout: float = 90.0) -> None:
    """Every grant in `names` Ready at its current generation, and every one in `gone` deleted."""
    names, gone = set(names), set(gone)

    def check() -> bool:
        bodies = {item["metadata"]["name"]: item for item in grants_in_case(driver, case)}
        waiting = dict.fromkeys(names - set(bodies), "absent")
        waiting |= {name: why for name in names & set(bodies) if (why := not_ready(bodies[name]))}
        waiting |= dict.fromkeys(gone & set(bodies), "still present")
        assert not waiting, waiting
        return True

    eventually(check, timeout=timeout, interval=0.5, what=f"for grants of {case!r} to be Ready or gone")


def apply_all(driver: Driver, manifests: list[dict[str, Any]]) -> None:
    driver.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyThread]:
    with run_in_thread("http://127.0.0.1:9", seed=SEED) as handle:  # upstream set once moto is up
        yield handle


@pytest.fixture(scope="module")
def proxied_sandbox(tmp_path_factory: pytest.TempPathFactory, proxy: ProxyThread) -> Iterator[ProxiedSandbox]:
    print(f"\nresilience tests: RESILIENCE_SEED={SEED}")
    with running(ProxiedSandbox(tmp_path_factory.mktemp("resilience"), proxy, cluster_id=CLUSTER_ID)) as sb:
        yield sb


@pytest.fixture
def rdriver(proxied_sandbox: ProxiedSandbox, proxy: ProxyThread, request: pytest.FixtureRequest) -> Iterator[Driver]:
    """A driver on the proxied sandbox; afterwards: no faults, and this test's grants deleted."""
    driver = Driver(proxied_sandbox)
    yield driver
    proxy.set_faults(FaultConfig())
    case = case_of(request)
    driver.kubectl("delete", "ecraccessgrant", "-l", f"{LABEL}={case}", "--timeout=60s", check=False)


def case_of(request: pytest.FixtureRequest) -> str:
    """The test's label value: a valid label (at most 63 characters, alphanumeric at both ends)."""
    return str(request.node.name).removeprefix("test_").replace("_", "-")[:40].strip("-")


def create_roles(driver: Driver, names: Iterable[str]) -> dict[str, str | None]:
    return {name: driver.create_role(name) for name in names}


# -- the tests ----------------------------------------------------------------------------------------


def test_grants_converge_under_throttling_and_server_errors(
    rdriver: Driver, proxy: ProxyThread, request: pytest.FixtureRequest
) -> None:
    driver, case = rdriver, case_of(request)
    roles = create_roles(driver, [f"res-faults-{i}" for i in range(8)])
    repos = [f"res/faults-{i}" for i in range(5)]
    foreign_by_repo = {"res/faults-0": [foreign("FaultsForeignA")],
                       "res/faults-3": [foreign("FaultsForeignB", Action="ecr:PutImage",
                                                Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}})]}
    for repo in repos:
        driver.create_repository(repo, policy=document(*foreign_by_repo[repo]) if repo in foreign_by_repo else None)
    rng = random.Random(SEED)
    wants = [
        Want(f"faults-{i}", role=f"res-faults-{i % 8}",  # 20 grants over 8 roles: most roles shared
             repos=tuple(sorted(rng.sample(repos, rng.randint(1, 3)))),
             actions=CUSTOM_ACTIONS if i % 4 == 3 else (), managed="ReadOnly" if i % 2 else "None")
        for i in range(20)
    ]
    proxy.set_faults(FaultConfig(throttle=0.3, error=0.05))
    before = proxy.stats()

    apply_all(driver, [want.manifest(case) for want in wants])
    driver.kubectl("wait", "--for=condition=Ready", "ecraccessgrant", "-l", f"{LABEL}={case}", "--timeout=180s")
    wait_case_ready(driver, case, [want.name for want in wants], timeout=60)

    calls = proxy.stats() - before
    summary = {op: (calls.count(op), calls.count(op, outcome="forwarded"), calls.count(op, outcome="throttle"),
                    calls.count(op, outcome="error")) for op in calls.by_operation()}
    print(f"\nproxy calls by operation (total, forwarded, throttled, 500s) while 20 grants converged: {summary}")
    (driver.sandbox.dir / "faults-test-calls.json").write_text(json.dumps(calls.to_json(), indent=1))
    assert calls.count(outcome="throttle") > 0 and calls.count(outcome="error") > 0, "faults were injected"
    proxy.set_faults(FaultConfig())
    assert_aws_converges(driver, repos, wants, roles, foreign_by_repo)
    for role in {want.role for want in wants if want.managed == "ReadOnly"}:
        assert READ_ONLY in driver.attached(role)


# -- crash safety ---------------------------------------------------------------------------------------


CRASH_RUNS = 20


@dataclasses.dataclass
class CrashWorld:
    """The crash test's grants across runs; each run changes it with one burst."""

    roles: dict[str, str | None]
    repos: list[str]
    foreign_by_repo: dict[str, list[dict[str, Any]]]
    live: dict[str, Want] = dataclasses.field(default_factory=dict)
    deleted: set[str] = dataclasses.field(default_factory=set)

    def burst(self, rng: random.Random, run: int) -> list[tuple[str, Want]]:
        """3 to 6 operations: ("apply", want) for creates and updates, ("delete", want)."""
        ops: list[tuple[str, Want]] = []
        for i in range(rng.randint(1, 3)):
            ops.append(("apply", self._new(rng, f"crash-{run}-{i}")))
        existing = sorted(self.live)
        rng.shuffle(existing)
        n_deletes = rng.randint(1, 2) if len(existing) > 6 else rng.randint(0, 1)
        for name in existing[:n_deletes]:
            ops.append(("delete", self.live[name]))
        for name in existing[n_deletes:n_deletes + rng.randint(1, 2)]:
            ops.append(("apply", self._changed(rng, self.live[name])))
        while len(ops) < 3:
            ops.append(("apply", self._new(rng, f"crash-{run}-x{len(ops)}")))
        rng.shuffle(ops)
        return ops[:6]

    def _new(self, rng: random.Random, name: str) -> Want:
        return Want(name, role=rng.choice(sorted(self.roles)), repos=tuple(rng.sample(self.repos, rng.randint(1, 3))),
                    actions=rng.choice([(), CUSTOM_ACTIONS]), managed=rng.choice(["None", "ReadOnly"]))

    def _changed(self, rng: random.Random, want: Want) -> Want:
        change = rng.choice(["add-repo", "drop-repo", "actions", "role"])
        if change == "add-repo" and len(want.repos) < len(self.repos):
            extra = rng.choice([repo for repo in self.repos if repo not in want.repos])
            return dataclasses.replace(want, repos=(*want.repos, extra))
        if change == "drop-repo" and len(want.repos) > 1:
            return dataclasses.replace(want, repos=want.repos[:-1])
        if change == "role":
            return dataclasses.replace(want, role=rng.choice([r for r in sorted(self.roles) if r != want.role]))
        return dataclasses.replace(want, actions=() if want.actions else CUSTOM_ACTIONS)


def test_operator_killed_at_random_moments_during_bursts_leaves_aws_exact(
    rdriver: Driver, proxied_sandbox: ProxiedSandbox, request: pytest.FixtureRequest
) -> None:
    driver, case, sandbox = rdriver, case_of(request), proxied_sandbox
    rng = random.Random(SEED)
    world = CrashWorld(
        roles=create_roles(driver, [f"res-crash-{i}" for i in range(5)]),
        repos=[f"res/crash-{i}" for i in range(5)],
        foreign_by_repo={"res/crash-0": [foreign("CrashForeignA")],
                         "res/crash-2": [foreign("CrashForeignB", Principal="*", Action="ecr:BatchGetImage")]},
    )
    for repo in world.repos:
        policy_doc = document(*world.foreign_by_repo[repo]) if repo in world.foreign_by_repo else None
        driver.create_repository(repo, policy=policy_doc)
    started = time.monotonic()
    for run in range(CRASH_RUNS):
        ops = world.burst(rng, run)
        kill_after, kill_delay = rng.randrange(len(ops)), rng.uniform(0.0, 0.5)
        log = [f"{verb} {want}" for verb, want in ops]
        context = (f"(RESILIENCE_SEED={SEED}, run {run}, SIGKILL {kill_delay:.2f}s after op {kill_after}; "
                   f"burst: {log})")
        print(f"crash run {run}: {len(ops)} ops, kill after op {kill_after} +{kill_delay:.2f}s")
        killed = -1
        for index, (verb, want) in enumerate(ops):
            if verb == "apply":
                driver.apply(want.manifest(case))
                world.live[want.name] = want
            else:
                driver.kubectl("delete", "ecraccessgrant", want.name, "--wait=false")
                world.live.pop(want.name)
                world.deleted.add(want.name)
            if index == kill_after:
                time.sleep(kill_delay)
                killed = driver.kill_operator()
        eventually(functools.partial(restarted, sandbox, killed), timeout=60,
                   what=f"for the operator to be restarted {context}")
        try:
            wait_case_ready(driver, case, world.live, gone=world.deleted, timeout=60)
        except AssertionError as error:
            raise AssertionError(f"grants did not converge {context}: {error}") from None
        assert_aws_converges(driver, world.repos, world.live.values(), world.roles, world.foreign_by_repo,
                             context=context)
        for role in {want.role for want in world.live.values() if want.managed == "ReadOnly"}:
            assert READ_ONLY in driver.attached(role), f"{role} lost {READ_ONLY} {context}"
    print(f"{CRASH_RUNS} crash runs in {time.monotonic() - started:.0f}s; "
          f"operator restarts: {driver.sandbox.operator_restarts}")
    assert driver.sandbox.operator_restarts >= CRASH_RUNS


def test_a_crash_between_attaching_and_recording_it_still_detaches_on_delete(
    rdriver: Driver, proxied_sandbox: ProxiedSandbox, proxy: ProxyThread, request: pytest.FixtureRequest
) -> None:
    """DESIGN §2.5: a managed policy the operator attached is detached when its last grant goes.

    The operator records that it attached the policy in the grant's status, after the repository
    work. A SIGKILL between AttachRolePolicy and that status write is made deterministic here: the
    repository calls are held 5 s in flight, and the operator is killed once the attach is done.
    """
    driver, case, sandbox = rdriver, case_of(request), proxied_sandbox
    repo, role = "res/attach-crash", "res-attach-crash"
    driver.create_repository(repo)
    create_roles(driver, [role])
    want = Want("attach-crash", role=role, repos=(repo,), managed="ReadOnly")
    proxy.set_faults(FaultConfig(operations={"ecr": Rates(latency_ms=5000)}))
    before = proxy.stats().count("AttachRolePolicy", outcome="forwarded")

    driver.apply(want.manifest(case))
    eventually(lambda: proxy.stats().count("AttachRolePolicy", outcome="forwarded") > before
               and READ_ONLY in driver.attached(role), timeout=RESYNC * 3, what="for the operator to attach")
    killed = driver.kill_operator()
    proxy.set_faults(FaultConfig())
    eventually(functools.partial(restarted, sandbox, killed), timeout=60, what="for the operator to be restarted")
    wait_case_ready(driver, case, [want.name])
    assert READ_ONLY in driver.attached(role)

    driver.kubectl("delete", "ecraccessgrant", want.name, "--timeout=60s")

    body = driver.get(want.name)
    assert body is None
    assert READ_ONLY not in driver.attached(role), (
        f"{READ_ONLY}, attached by the operator for a grant now deleted, is still attached to {role}: the "
        "operator was killed after AttachRolePolicy and before recording it (status.managedPolicyOwned), and "
        "after the restart took the attachment for someone else's"
    )


# -- concurrency ------------------------------------------------------------------------------------------


def test_fifty_grants_at_once_share_one_statement_and_deleting_them_restores_the_policy(
    rdriver: Driver, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    driver, case = rdriver, case_of(request)
    repo = "res/fifty"
    original = document(foreign("FiftyForeign"), foreign("FiftyForeignString", Action="ecr:PutImage"))
    driver.create_repository(repo, policy=original)
    roles = create_roles(driver, [f"res-fifty-{i}" for i in range(50)])
    wants = [Want(f"fifty-{i}", role=f"res-fifty-{i}", repos=(repo,), managed="ReadOnly") for i in range(50)]
    manifest = tmp_path / "fifty.yaml"
    manifest.write_text(yaml.safe_dump_all([want.manifest(case) for want in wants]))

    driver.kubectl("apply", "-f", str(manifest))
    wait_case_ready(driver, case, [want.name for want in wants], timeout=180)

    [ours] = driver.ours(repo)
    assert len(ours["Principal"]["AWS"]) == 50
    assert set(ours["Principal"]["AWS"]) == set(roles.values())
    assert len(driver.statements(repo)) == 3
    assert_aws_converges(driver, [repo], wants, roles, {repo: original["Statement"]})

    owned = {item["metadata"]["name"]: item["status"].get("managedPolicyOwned")
             for item in grants_in_case(driver, case)}

    driver.kubectl("delete", "-f", str(manifest), "--timeout=180s")

    assert grants_in_case(driver, case) == []
    assert policy.equivalent(driver.policy(repo), original), driver.policy(repo)
    # DESIGN §2.5: the operator attached ReadOnly to these 50 roles, and no live grant wants it any more.
    still_attached = sorted(role for role in roles if READ_ONLY in driver.attached(role))
    assert not still_attached, (
        f"{len(still_attached)} of 50 roles kept {READ_ONLY}, which the operator attached, after their grants "
        f"were deleted: {still_attached}; status.managedPolicyOwned before the delete: {owned}"
    )



# -- a foreign writer ----------------------------------------------------------------------------------------


WRITER_SID = "ForeignWriter"


class ForeignWriter(threading.Thread):
    """Someone else's automation: read-modify-write of one repository's policy, in a loop.

    Each round reads, waits a little (as a slow tool would between its read and its write), then
    writes back every statement it read plus its own, renamed with the round number and with a
    changing Action list. Whatever the operator wrote in between is clobbered, as a blind writer
    would. `write_stale()` makes the next round write from the document it read first instead: a
    tool working from an old copy, which wipes every statement of ours at once.
    """

    def __init__(self, driver: Driver, repo: str, rng: random.Random) -> None:
        super().__init__(name="foreign-writer", daemon=True)
        self.ecr = driver.sandbox.aws("ecr")
        self.repo, self.rng = repo, rng
        self.stop = threading.Event()
        self.stale_requested = threading.Event()
        self.stale_written = threading.Event()
        self.first: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.rounds = 0
        self.error: BaseException | None = None

    def statement(self, counter: int) -> dict[str, Any]:
        actions = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
        return foreign(f"{WRITER_SID}{counter}", Action=actions[: 1 + counter % len(actions)])

    def write_stale(self) -> None:
        self.stale_requested.set()
        assert self.stale_written.wait(timeout=10), "the foreign writer did not write its stale copy"

    def write_round(self) -> None:
        """One read-modify-write (the loop's round; a test also calls it once the loop has stopped)."""
        self.rounds += 1
        doc = repository_policy(self.ecr, self.repo)
        if doc is None:
            doc = document()
        self.first = self.first or json.loads(json.dumps(doc))
        if self.stale_requested.is_set() and not self.stale_written.is_set():
            doc = json.loads(json.dumps(self.first))
        time.sleep(self.rng.uniform(0.02, 0.1))
        kept = [item for item in policy.statements(doc) if not str(item.get("Sid", "")).startswith(WRITER_SID)]
        mine = self.statement(self.rounds)
        doc["Statement"] = [*kept, mine]
        self.ecr.set_repository_policy(repositoryName=self.repo, policyText=json.dumps(doc))
        self.last = mine
        if self.stale_requested.is_set():
            self.stale_written.set()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.write_round()
                self.stop.wait(self.rng.uniform(0.05, 0.2))
        except BaseException as error:
            self.error = error


def test_a_foreign_writer_loses_nothing_and_our_statements_are_repaired(
    rdriver: Driver, request: pytest.FixtureRequest
) -> None:
    driver, case = rdriver, case_of(request)
    repo, other = "res/writer", "res/writer-other"
    base = foreign("WriterBase")
    driver.create_repository(repo, policy=document(base))
    driver.create_repository(other)
    roles = create_roles(driver, [f"res-writer-{i}" for i in range(4)])
    wants = [Want(f"writer-{i}", role=f"res-writer-{i}", repos=(repo,)) for i in range(4)]
    writer = ForeignWriter(driver, repo, random.Random(SEED))
    writer.start()
    try:
        apply_all(driver, [want.manifest(case) for want in wants])
        wait_case_ready(driver, case, [want.name for want in wants])
        wants[0] = dataclasses.replace(wants[0], actions=CUSTOM_ACTIONS)
        wants[1] = dataclasses.replace(wants[1], repos=(repo, other))
        apply_all(driver, [wants[0].manifest(case), wants[1].manifest(case)])
        wait_case_ready(driver, case, [want.name for want in wants])

        writer.write_stale()  # from a copy read before any grant existed: it wipes all of ours
        assert writer.first is not None
        assert not [item for item in policy.statements(writer.first) if str(item.get("Sid")).startswith(PREFIX)]
        # Repaired by the drift check while the writer keeps writing (its own statement is ignored here).
        # A drift check may reuse a read up to 0.9 of an interval old, so a repair can take two intervals,
        # and the writer clobbers about one repair in three (our write lands inside its read-to-write
        # window, after our verifying re-read): allow several rounds.
        assert_aws_converges(driver, [repo, other], wants, roles, {repo: [base]}, ignore_sid_prefix=WRITER_SID,
                             timeout=RESYNC * 10, context="while the foreign writer runs")
        eventually(lambda: writer.rounds >= 20, timeout=30, what="for the foreign writer to write 20 times")
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    assert writer.error is None, writer.error
    assert writer.rounds >= 20 and writer.last is not None
    print(f"foreign writer: {writer.rounds} rounds, last {writer.last['Sid']}")

    # The writer's last rounds may have landed inside a repair's read-to-write window, and be lost
    # (the xfail below): which of them survived is a race. Once our statements stand again, a last
    # round outside any window must be kept as written, beside ours.
    assert_aws_converges(driver, [repo, other], wants, roles, {repo: [base]}, ignore_sid_prefix=WRITER_SID,
                         timeout=RESYNC * 5, context="after the foreign writer stopped")
    writer.write_round()
    assert_aws_converges(driver, [repo, other], wants, roles, {repo: [base, writer.last]}, timeout=RESYNC * 5,
                         context="after the foreign writer's last round")


@pytest.mark.xfail(strict=True, reason=(
    "ECR has no conditional write: a foreign write that lands between the operator's read and its "
    "SetRepositoryPolicy is overwritten, and the re-read of verify-after-write matches what the operator "
    "wrote, so nothing notices. The window is the read-to-write time; here the network stretches it."))
def test_a_foreign_write_inside_the_operators_read_write_window_is_lost(
    rdriver: Driver, proxy: ProxyThread, request: pytest.FixtureRequest
) -> None:
    """The one ordering that still loses a foreign statement, made deterministic: the operator's
    SetRepositoryPolicy is held 1.5 s in flight, and someone else writes meanwhile."""
    driver, case = rdriver, case_of(request)
    repo = "res/window"
    base = foreign("WindowBase")
    driver.create_repository(repo, policy=document(base))
    roles = create_roles(driver, ["res-window"])
    want = Want("window", role="res-window", repos=(repo,))
    driver.apply(want.manifest(case))
    wait_case_ready(driver, case, [want.name])
    proxy.set_faults(FaultConfig(operations={"SetRepositoryPolicy": Rates(latency_ms=1500)}))
    before = proxy.stats().count("SetRepositoryPolicy")

    want = dataclasses.replace(want, actions=CUSTOM_ACTIONS)
    driver.apply(want.manifest(case))
    eventually(lambda: proxy.stats().count("SetRepositoryPolicy") > before, timeout=RESYNC * 3,
               what="for the operator's write to be in flight")
    late = foreign("LateForeignWrite", Action="ecr:PutImage")
    current = driver.policy(repo)
    assert current is not None
    driver.ecr.set_repository_policy(repositoryName=repo, policyText=json.dumps(
        {**current, "Statement": [*policy.statements(current), late]}))
    wait_case_ready(driver, case, [want.name])
    proxy.set_faults(FaultConfig())

    assert_aws_converges(driver, [repo], [want], roles, {repo: [base, late]}, timeout=RESYNC * 2,
                         context="after a foreign write inside the operator's read-write window")


# -- a role deleted in AWS ------------------------------------------------------------------------------------


def test_a_role_deleted_in_aws_does_not_block_the_other_grants(
    rdriver: Driver, request: pytest.FixtureRequest
) -> None:
    driver, case = rdriver, case_of(request)
    repos = ["res/gone-a", "res/gone-b", "res/gone-c"]
    foreign_by_repo = {"res/gone-b": [foreign("GoneForeign")]}
    for repo in repos:
        driver.create_repository(repo, policy=document(*foreign_by_repo[repo]) if repo in foreign_by_repo else None)
    roles = create_roles(driver, ["res-gone-keep", "res-gone-doomed", "res-gone-other"])
    wants = [
        Want("gone-keep", role="res-gone-keep", repos=("res/gone-a", "res/gone-b"), managed="ReadOnly"),
        Want("gone-doomed", role="res-gone-doomed", repos=("res/gone-a", "res/gone-b"), managed="ReadOnly"),
        Want("gone-other", role="res-gone-other", repos=("res/gone-a",), actions=CUSTOM_ACTIONS),
    ]
    apply_all(driver, [want.manifest(case) for want in wants])
    wait_case_ready(driver, case, [want.name for want in wants])
    assert_aws_converges(driver, repos, wants, roles, foreign_by_repo)

    for attached in driver.attached("res-gone-doomed"):
        driver.iam.detach_role_policy(RoleName="res-gone-doomed", PolicyArn=attached)
    driver.iam.delete_role(RoleName="res-gone-doomed")
    roles["res-gone-doomed"] = None

    def doomed_is_stalled() -> bool:
        body = driver.get("gone-doomed")
        assert body is not None
        conditions = {item["type"]: item for item in body["status"]["conditions"]}
        assert conditions["Ready"]["status"] == "False", conditions["Ready"]
        assert conditions.get("Stalled", {}).get("reason") == "RoleNotFound", conditions
        return True

    eventually(doomed_is_stalled, timeout=RESYNC * 4, what="for the grant of the deleted role to be Stalled")
    assert_aws_converges(driver, repos, wants, roles, foreign_by_repo)
    wait_case_ready(driver, case, ["gone-keep", "gone-other"], timeout=10)

    wants[0] = dataclasses.replace(wants[0], repos=(*wants[0].repos, "res/gone-c"))
    driver.apply(wants[0].manifest(case))
    wait_case_ready(driver, case, ["gone-keep", "gone-other"])
    assert_aws_converges(driver, repos, wants, roles, foreign_by_repo)
    assert READ_ONLY in driver.attached("res-gone-keep")
    doomed_is_stalled()  # its role is still missing: it stays Stalled, and blocks no one
