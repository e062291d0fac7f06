"""What one grant contributes to AWS, decided from its object as the cluster holds it.

Every shared statement and every role's ledger tag is derived from the live-grant index, and this
module decides what each grant puts into that index. The rules (DESIGN §2.5, §2.7):

- An active grant (valid spec, not suspended, not deleting) contributes its spec.
- A suspended grant, or one whose spec became invalid, contributes what it last applied, frozen:
  "change nothing for me" must hold for the shared statements too, not only for its own handler.
- What it last applied is the annotation `ecraccess.io/applied`, which the operator writes with
  every apply. It is metadata, no more trusted than the spec, and it is judged exactly like a spec
  (`spec.parse_spec`). Status is never read here: status is a report, and it can be lost or forged.
- A grant being deleted with `deletionPolicy: Retain` stays, marked `handing_over`, until its
  finalizer goes, so that every sync keeps its access until its hand-over is written (`handover`).
  Any other deleting grant contributes nothing.

Pure: no kopf, no boto3.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ecr_access import tenancy
from ecr_access.model import Defaults, DeletionPolicy, GrantKey, GrantSpec, RepositoryRef, RoleKey
from ecr_access.spec import SpecError, parse_spec, to_raw

APPLIED_ANNOTATION = "ecraccess.io/applied"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LiveGrant:
    """One grant as the live-grant index holds it."""

    key: GrantKey
    spec: GrantSpec  # what the grant contributes to AWS now (see the module docstring)
    # True when the spec itself is being applied: the drift check checks only active grants.
    active: bool = True
    handing_over: bool = False  # deleting with Retain, hand-over not finished
    # What the drift check needs without the object's body: the generation the spec is from, the
    # status as last seen (to report, never to decide), the uid, and the applied record.
    generation: int = 0
    # The status as compact JSON (`status` decodes it): decoded, a grant's status was most of what
    # the operator kept per grant (about 12 KB of dicts and strings; its JSON is a fraction of it),
    # and only the drift check reads it, once per interval. Compared: kopf keeps an index entry
    # that compares equal to the new one, stale status and all. Not hashed: an entry's identity is
    # its key, generation and uid, and the status changes the most often.
    status_json: str = dataclasses.field(default="", hash=False, repr=False)
    uid: str = ""
    applied: GrantSpec | None = None

    @property
    def status(self) -> Mapping[str, Any]:
        """The status as last seen: to report from, never to decide anything by."""
        decoded: Mapping[str, Any] = json.loads(self.status_json) if self.status_json else {}
        return decoded


def applied_annotation(spec: GrantSpec) -> str:
    """The annotation value that records `spec` as applied: compact, keys sorted, stable."""
    return json.dumps(to_raw(spec), separators=(",", ":"), sort_keys=True)


def parse_applied(value: object, defaults: Defaults, key: GrantKey | None = None) -> GrantSpec | None:
    """The applied record of grant `key`, judged like a spec; None when there is none or it is not
    a valid spec (logged, naming `key`)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        raw = json.loads(value)
        spec = parse_spec(raw, defaults)
    except (ValueError, SpecError) as error:
        logger.warning("Ignoring an unreadable %s annotation%s: %s", APPLIED_ANNOTATION,
                       f" on {key}" if key else "", error, extra=key.log_ref() if key else None)
        return None
    return dataclasses.replace(spec, suspend=False)


def parse_own_spec(raw: object, defaults: Defaults) -> GrantSpec | None:
    try:
        return parse_spec(raw if isinstance(raw, Mapping) else None, defaults)
    except SpecError:
        return None


def contribution(spec: GrantSpec | None, applied: GrantSpec | None) -> GrantSpec | None:
    """What a grant contributes: its spec when valid and not suspended, else what it last applied."""
    return spec if spec is not None and not spec.suspend else applied


# One object per distinct role and repository among the live grants, however many
# grants name it: ten thousand grants over five hundred repositories hold five hundred references,
# not ten thousand (they are frozen values, compared by value, so sharing them changes nothing else).
_shared: weakref.WeakValueDictionary[Any, Any] = weakref.WeakValueDictionary()


def _share(value: Any) -> Any:
    found = _shared.get(value)
    if found is None:
        _shared[value] = value
        return value
    return found


def shared(spec: GrantSpec | None) -> GrantSpec | None:
    """`spec`, its role and repositories the objects every other live grant naming them holds."""
    if spec is None:
        return None
    repositories = tuple(_share(repo) for repo in spec.repositories)
    return dataclasses.replace(spec, role=_share(spec.role), repositories=repositories)


def from_body(body: Mapping[str, Any], defaults: Defaults, finalizer: str) -> LiveGrant | None:
    """The index entry for one grant object, or None when it contributes nothing."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = shared(parse_own_spec(body.get("spec"), defaults))
    key = GrantKey(sys.intern(str(meta.get("namespace", ""))), str(meta.get("name", "")))
    applied = shared(parse_applied(annotations.get(APPLIED_ANNOTATION), defaults, key))
    if applied is not None and applied == spec:
        applied = spec  # the usual case, once applied: one object, not two equal ones per grant
    given = contribution(spec, applied)
    if given is None:
        return None
    deleting = bool(meta.get("deletionTimestamp"))
    handing_over = False
    if deleting:
        policy = (spec or given).deletion_policy
        if policy is not DeletionPolicy.RETAIN or finalizer not in (meta.get("finalizers") or ()):
            return None
        handing_over = True
    return LiveGrant(
        key,
        given,
        active=given is spec and not deleting,
        handing_over=handing_over,
        generation=int(meta.get("generation") or 0),
        status_json=compact_status(body.get("status")),
        uid=str(meta.get("uid", "")),
        applied=applied,
    )


def compact_status(status: object) -> str:
    """A status as `LiveGrant.status_json` keeps it ("" for none)."""
    return json.dumps(status, separators=(",", ":")) if isinstance(status, Mapping) and status else ""


class LiveGrants(Protocol):
    """The set of live grants, looked up the ways the reconciler needs (kopf indexes in production),
    and what the EcrGrantPolicies permit each of them (`tenancy`)."""

    def naming_repository(self, repo: RepositoryRef) -> Iterable[LiveGrant]: ...

    def on_role(self, role: RoleKey) -> Iterable[LiveGrant]: ...

    def everything(self) -> Iterable[LiveGrant]: ...

    def verdict(self, grant: LiveGrant, role_arn: str) -> tenancy.Verdict:
        """What the policies permit `grant`, whose role resolved to `role_arn`."""
        ...


class IndexedGrants:
    """`LiveGrants` over the kopf indexes (`handlers`), which map keys to collections of entries:
    grants by repository and by role, policies by name and namespace labels by name. Without
    `policies` (policy mode Open) every grant is permitted."""

    def __init__(
        self, by_repository: Mapping[Any, Iterable[LiveGrant]], by_role: Mapping[Any, Iterable[LiveGrant]],
        policies: Mapping[Any, Iterable[tenancy.GrantPolicy | tenancy.PolicyError]] | None = None,
        namespaces: Mapping[Any, Iterable[Mapping[str, str]]] | None = None,
    ) -> None:
        self._by_repository = by_repository
        self._by_role = by_role
        self._policies = policies
        # Not `namespaces or {}`: kopf's index is empty, and false, until it fills, and this view is
        # kept (by the drift loop) long after; it must stay the live index.
        self._namespaces = namespaces if namespaces is not None else {}

    def verdict(self, grant: LiveGrant, role_arn: str) -> tenancy.Verdict:
        if self._policies is None:
            return tenancy.open_verdict(grant.spec)
        policies = [item for store in self._policies.values() for item in store
                    if isinstance(item, tenancy.GrantPolicy)]  # a malformed policy permits nothing
        namespace = grant.key.namespace
        labels = next(iter(self._namespaces.get(namespace, ())), {})
        return tenancy.judge(policies, namespace, labels, role_arn, grant.spec)

    def naming_repository(self, repo: RepositoryRef) -> list[LiveGrant]:
        return list(self._by_repository.get(repo, ()))

    def on_role(self, role: RoleKey) -> list[LiveGrant]:
        return list(self._by_role.get(role, ()))

    def everything(self) -> list[LiveGrant]:
        # Every live grant is indexed under exactly one role, so the role index lists each once.
        return [grant for store in self._by_role.values() for grant in store]


# What a handled grant changes in a sync, by key: its own (newer) entry, or None to leave it out.
Changes = Mapping[GrantKey, "LiveGrant | None"]


def changes(include: LiveGrant | None = None, exclude: GrantKey | None = None) -> dict[GrantKey, LiveGrant | None]:
    """`include`: a grant being applied, whose spec may be newer than its index entry; `exclude`: a
    grant being released, or one that dropped what is being synced."""
    found: dict[GrantKey, LiveGrant | None] = {}
    if exclude is not None:
        found[exclude] = None
    if include is not None:
        found[include.key] = include
    return found


def with_changes(
    grants: Iterable[LiveGrant], changed: Changes, belongs: Callable[[LiveGrant], bool]
) -> list[LiveGrant]:
    """The index's grants with the handled grants' own versions put in (None: taken out), keeping
    only those that `belongs` to what is being synced, in a stable order."""
    found = {grant.key: grant for grant in grants}
    for key, override in changed.items():
        if override is None or not belongs(override):
            found.pop(key, None)
        else:
            found[key] = override
    return sorted(found.values(), key=lambda item: (item.key.namespace, item.key.name))
