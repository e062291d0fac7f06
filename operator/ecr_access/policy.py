"""Repository policy documents: our statements, merging them into anyone's policy, and comparing.

A repository policy is shared with people and other tools, so everything here works on the rule of
DESIGN §2.3: this cluster owns exactly the statements whose Sid starts with its prefix, derives them
wholly from its live grants, and leaves every other statement exactly as it found it, whatever its
shape. Documents are compared by meaning, so a policy that AWS or a person re-formatted is not
rewritten. The module is pure (stdlib only) so that hypothesis can hammer it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_POLICY_CHARS = 10_240  # ECR's limit on a repository policy; moto does not enforce it, we do.
POLICY_VERSION = "2012-10-17"
LEGACY_VERSION = "2008-10-17"  # what IAM assumes when a document has no Version
GRANT_SID_PREFIX = "EcrAccessGrant"
RETAINED_SID_PREFIX = "EcrAccessRetained"

# A principal that AWS shows as a unique id: the role it named was deleted (and maybe recreated).
STALE_PRINCIPAL_RE = re.compile(r"^AROA[A-Z0-9]+$")
_SID_RE = re.compile(r"^[A-Za-z0-9]*$")

Document = dict[str, Any]
Statement = dict[str, Any]


class PolicyDocumentError(ValueError):
    """The policy text AWS returned is not a JSON policy document we can merge into safely."""


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cluster_digest(cluster_id: str) -> str:
    """8 hex digits that name this cluster in Sids and in the role tags (`attachments`)."""
    return _digest(cluster_id, 8)


def cluster_prefix(cluster_id: str) -> str:
    """The Sid prefix of every statement this cluster owns: `EcrAccessGrant` + 8 hex digits."""
    return GRANT_SID_PREFIX + cluster_digest(cluster_id)


def statement_sid(cluster_id: str, actions: Iterable[str]) -> str:
    """The Sid of this cluster's shared statement for one action set (order-insensitive)."""
    return cluster_prefix(cluster_id) + _digest(",".join(sorted(set(actions))), 16)


def retained_sid(cluster_id: str, namespace: str, name: str, uid: str) -> str:
    """The Sid of the statement a `Retain` grant hands its access over to.

    The grant's UID is part of it: a later grant that reuses the name is another object, and its
    hand-over must be a statement of its own, not silently dropped because the Sid exists.
    """
    return RETAINED_SID_PREFIX + _digest(f"{cluster_id}/{namespace}/{name}/{uid}", 16)


def is_valid_sid(sid: str) -> bool:
    """IAM allows only ASCII letters and digits in a Sid."""
    return bool(_SID_RE.fullmatch(sid))


@dataclasses.dataclass(frozen=True)
class DesiredStatement:
    """One statement this cluster wants in a repository's policy."""

    sid: str
    actions: tuple[str, ...]
    principals: frozenset[str]

    def render(self) -> Statement:
        return {
            "Sid": self.sid,
            "Effect": "Allow",
            "Principal": {"AWS": sorted(self.principals)},
            "Action": sorted(set(self.actions)),
        }


def build_retained_statement(sid: str, role_arn: str, actions: Iterable[str]) -> Statement:
    """The hand-over statement for a `Retain` grant: from now on it belongs to whoever owns the repo."""
    return DesiredStatement(sid, tuple(actions), frozenset({role_arn})).render()


def parse(text: str | None) -> Document | None:
    """Parse policy text from AWS; None means the repository has no policy."""
    if text is None:
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyDocumentError(f"the repository policy is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyDocumentError("the repository policy is not a JSON object")
    raw = doc.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(item, dict) for item in items):
        raise PolicyDocumentError("the repository policy has a Statement that is not an object")
    return doc


def serialize(doc: Document) -> str:
    """Compact JSON, as written to AWS and as counted against the size limit."""
    return json.dumps(doc, separators=(",", ":"))


def size(doc: Document | None) -> int:
    return 0 if doc is None else len(serialize(doc))


def statements(doc: Document | None) -> list[Statement]:
    """The statements of a document; a lone statement object counts as a list of one."""
    if doc is None:
        return []
    raw = doc.get("Statement", [])
    return list(raw) if isinstance(raw, list) else [raw]


_OWNED_SUFFIX = re.compile(r"[0-9a-f]{16}")


def is_ours(statement: Mapping[str, Any], prefix: str) -> bool:
    """Ours exactly when the Sid is this cluster's prefix and 16 lower-case hex digits, the form
    `statement_sid` makes. A person's `EcrAccessGrant<digest>Notes` only borrows the prefix."""
    sid = statement.get("Sid")
    return isinstance(sid, str) and sid.startswith(prefix) and bool(_OWNED_SUFFIX.fullmatch(sid[len(prefix):]))


def check_ours(doc: Document | None, prefix: str) -> None:
    """Raise PolicyDocumentError if a statement of ours is not one the operator could have written:
    its principals must be `{"AWS": <ARN or list of ARNs>}`. Merging into a hand-edited
    `"Principal": {"AWS": 5}` would guess at its meaning; the repository is reported unreadable instead."""
    for statement in statements(doc):
        if not is_ours(statement, prefix):
            continue
        principal = statement.get("Principal")
        value = principal.get("AWS") if isinstance(principal, Mapping) else None
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
            raise PolicyDocumentError(
                f"statement {statement.get('Sid')} has a Principal this operator never writes "
                f"({json.dumps(principal)}): remove that statement or restore its principals")


def owned_principals(doc: Document | None, prefix: str) -> dict[str, frozenset[str]]:
    """The principals currently in each of our statements, by Sid."""
    owned: dict[str, frozenset[str]] = {}
    for statement in statements(doc):
        if is_ours(statement, prefix):
            found = owned.get(statement["Sid"], frozenset())
            owned[statement["Sid"]] = found | frozenset(_aws_principals(statement))
    return owned


def stale_principals(doc: Document | None, prefix: str) -> list[str]:
    """Unique-id principals (`AROA...`) in our statements: roles deleted since they were written."""
    found = {
        principal
        for statement in statements(doc)
        if is_ours(statement, prefix)
        for principal in _aws_principals(statement)
        if STALE_PRINCIPAL_RE.fullmatch(principal)
    }
    return sorted(found)


def _aws_principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, Mapping):
        return [principal] if isinstance(principal, str) else []
    value = principal.get("AWS", [])
    return [value] if isinstance(value, str) else [item for item in value if isinstance(item, str)]


def merge(
    doc: Document | None,
    prefix: str,
    desired: Iterable[DesiredStatement],
    extra: Iterable[Statement] = (),
) -> Document | None:
    """Replace this cluster's statements in `doc` with `desired`; keep every other statement as is.

    `extra` statements (the `Retain` hand-over) are added unless a statement with the same Sid is
    already there: once written they are foreign, so an existing one is never touched.
    Statements with no principals are dropped. Returns None when the policy should be deleted
    because nothing is left in it that was there for a reason.
    """
    original = statements(doc)
    kept = [statement for statement in original if not is_ours(statement, prefix)]
    sids = {statement.get("Sid") for statement in kept}
    added = [statement for statement in extra if statement.get("Sid") not in sids]
    ours = [item.render() for item in sorted(desired, key=lambda item: item.sid) if item.principals]
    if doc is not None and not added and not ours and len(kept) == len(original):
        return doc  # nothing of ours was here and nothing is to be added: leave it untouched
    result = kept + added + ours
    if not result:
        return None
    merged: Document = dict(doc) if doc is not None else {"Version": POLICY_VERSION}
    merged["Statement"] = result
    return merged


@dataclasses.dataclass(frozen=True)
class Fit:
    """A merged document that respects the size limit, and the principals left out to get there."""

    document: Document | None
    rejected: dict[str, frozenset[str]]  # Sid -> principals that did not fit


def fit(
    doc: Document | None,
    prefix: str,
    desired: Iterable[DesiredStatement],
    extra: Iterable[Statement] = (),
    limit: int = MAX_POLICY_CHARS,
) -> Fit:
    """Merge, but never produce a document over `limit` characters.

    When everything does not fit, principals already in the policy stay (so nobody loses access
    because somebody else was added), and new principals are admitted in sorted order while they
    fit. If even that is too large (foreign statements grew), nothing new is admitted and the
    document is returned unchanged.
    """
    wanted = list(desired)
    extras = list(extra)
    merged = merge(doc, prefix, wanted, extras)
    if size(merged) <= limit:
        return Fit(merged, {})
    present = owned_principals(doc, prefix)
    admitted = {item.sid: item.principals & present.get(item.sid, frozenset()) for item in wanted}
    by_sid = {item.sid: item for item in wanted}

    def build() -> Document | None:
        chosen = [dataclasses.replace(by_sid[sid], principals=principals) for sid, principals in admitted.items()]
        return merge(doc, prefix, chosen, extras)

    if size(build()) > limit:
        return Fit(doc, {item.sid: item.principals - admitted[item.sid] for item in wanted})
    rejected: dict[str, set[str]] = {}
    candidates = sorted((item.sid, p) for item in wanted for p in item.principals - admitted[item.sid])
    for sid, principal in candidates:
        admitted[sid] = admitted[sid] | {principal}
        if size(build()) > limit:
            admitted[sid] = admitted[sid] - {principal}
            rejected.setdefault(sid, set()).add(principal)
    return Fit(build(), {sid: frozenset(found) for sid, found in rejected.items()})


def normalize(doc: Document | None) -> Any:
    """A canonical form: two documents mean the same exactly when their canonical forms are equal."""
    if doc is None:
        return None
    rest = {key: _canonical(value) for key, value in doc.items() if key not in ("Statement", "Version")}
    canon = sorted((_normalize_statement(item) for item in statements(doc)), key=_sort_key)
    return {"Version": doc.get("Version", LEGACY_VERSION), "Statement": canon, **rest}


def equivalent(left: Document | None, right: Document | None) -> bool:
    return bool(normalize(left) == normalize(right))


_LIST_KEYS = ("Action", "NotAction", "Resource", "NotResource")


def _normalize_statement(statement: Mapping[str, Any]) -> Any:
    result: dict[str, Any] = {}
    for key, value in statement.items():
        if key in _LIST_KEYS:
            items = [value] if isinstance(value, str) else list(value)
            # Action names are case-insensitive in IAM; resources are not.
            if key.endswith("Action"):
                items = [item.lower() if isinstance(item, str) else item for item in items]
            result[key] = sorted(set(map(_sort_key, items)))
        elif key in ("Principal", "NotPrincipal"):
            result[key] = _normalize_principal(value)
        elif key == "Condition" and isinstance(value, Mapping):
            result[key] = {
                op: {k: _string_set(v) for k, v in body.items()} if isinstance(body, Mapping) else body
                for op, body in value.items()
            }
        else:
            result[key] = _canonical(value)
    return result


def _normalize_principal(value: Any) -> Any:
    if value == "*":
        return {"AWS": ["*"]}
    if isinstance(value, Mapping):
        return {key: _string_set(item) for key, item in value.items()}
    return _canonical(value)


def _string_set(value: Any) -> Any:
    items = [value] if not isinstance(value, list) else value
    return sorted(set(map(_sort_key, items)))


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def _sort_key(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
