"""The cluster once some files are applied (or deleted), and which grants that touches (pure).

`plan` answers for the operator as it will be once `kubectl apply -f` (or `delete -f`) has run, so it
needs those objects as the API server will hold them: a file's grant over the live one keeps what
only the cluster knows (its uid, the operator's finalizer and applied record, its status), as
`kubectl apply` leaves them; a deleted grant is deleting with the operator's finalizer still on,
as the operator's release handler sees it (a Retain grant stays in the index, handing over). And
it needs the grants whose handling that changes: the files' own, and every grant a policy, a
namespace or an account in the files judges, in its old version or its new one (as the operator's
watches re-judge them, `revocation`).
"""

from __future__ import annotations

from typing import Any

from ecr_access import accounts
from ecr_access.clusterview import View
from ecr_access.manifests import Objects
from ecr_access.model import GrantKey
from ecr_access.tenancy import NAME_LABEL


def affected(before: View, after: View, files: Objects, removing: set[GrantKey]) -> set[GrantKey]:
    """The grants whose handling the files change: their own grants, and every grant that a policy,
    a namespace or an account in them judges, in its old version or its new one."""
    keys = set(files.grants) | removing
    everyone = set(before.objects.grants) | set(after.objects.grants)
    for name in files.policies:
        versions = [item for view in (before, after) for item in view.policies.get(name, ())
                    if not isinstance(item, Exception)]
        keys |= {key for key in everyone for view in (before, after) for item in versions
                 if item.selector.selects({**view.labels_of(key.namespace), NAME_LABEL: key.namespace})}
    keys |= {key for key in everyone if key.namespace in files.namespaces}
    for name in files.accounts:
        ids = {str(((view.objects.accounts.get(name) or {}).get("spec") or {}).get("accountId", ""))
               for view in (before, after)}
        keys |= {key for view in (before, after) for key, entry in view.entries.items()
                 if any(account and accounts.touches(entry.spec, account) for account in ids)}
    return keys


def overlaid(live: Objects, files: Objects) -> Objects:
    """The cluster once the files are applied: each object created, or updated over the live one."""
    after = live.copy()
    for key, body in files.grants.items():
        after.grants[key] = merged(after.grants.get(key), body)
    for table, given in ((after.policies, files.policies), (after.accounts, files.accounts),
                         (after.namespaces, files.namespaces)):
        for name, body in given.items():
            table[name] = merged(table.get(name), body)
    return after


def merged(live: dict[str, Any] | None, given: dict[str, Any]) -> dict[str, Any]:
    """`given` applied over `live`, as `kubectl apply` leaves it: the spec and labels from the file,
    the annotations merged (the operator's applied record stays), and what only the cluster knows
    (uid, finalizers, status, the generation, one more if the spec changed) from the live object."""
    meta = dict(given.get("metadata") or {})
    if live is None:
        return {**given, "metadata": {**meta, "generation": 1}}
    known = dict(live.get("metadata") or {})
    generation = int(known.get("generation") or 0) + (live.get("spec") != given.get("spec"))
    annotations = {**(known.get("annotations") or {}), **(meta.get("annotations") or {})}
    labels = meta["labels"] if "labels" in meta else known.get("labels")
    return {**live, **{key: value for key, value in given.items() if key != "metadata"},
            "metadata": {**known, "labels": labels, "annotations": annotations, "generation": generation}}


def deleted(live: Objects, files: Objects, when: str, finalizer: str) -> Objects:
    """The cluster while the files' objects are being deleted: their grants (and those of a
    namespace in them) deleting, with the operator's finalizer still on, the rest gone."""
    after = live.copy()
    for key in removed_keys(live, files):
        body = after.grants[key]
        meta = dict(body.get("metadata") or {})
        finalizers = list(meta.get("finalizers") or [])
        meta.update(deletionTimestamp=meta.get("deletionTimestamp") or when,
                    finalizers=finalizers if finalizer in finalizers else [*finalizers, finalizer])
        after.grants[key] = {**body, "metadata": meta}
    for table, given in ((after.policies, files.policies), (after.accounts, files.accounts),
                         (after.namespaces, files.namespaces)):
        for name in given:
            table.pop(name, None)
    return after


def removed_keys(live: Objects, files: Objects) -> set[GrantKey]:
    return {key for key in live.grants if key in files.grants or key.namespace in files.namespaces}


def change(key: GrantKey, live: Objects, files: Objects) -> str:
    """create | update | unchanged (the file's spec is the live one) | recheck (not in the files)."""
    if key not in files.grants:
        return "recheck"
    if key not in live.grants:
        return "create"
    return "unchanged" if live.grants[key].get("spec") == files.grants[key].get("spec") else "update"
