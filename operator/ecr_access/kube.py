"""The Kubernetes adapter: the only module that imports the `kubernetes` client.

The operator's own writes outside kopf go through here: a grant's status (`patch_status`: the
drift loop's reports, a handler's progress report and a stalled delete's verdict), a policy's
(`patch_policy_status`) and an account's (`patch_account_status`, when assuming its role starts
failing or works again), and nothing else. Reads: a grant's spec as it is now (a stalled delete
watching for an edit), whether any grant exists at start-up, and the cluster's identity; and,
for the commands that answer for the operator from outside it (`plan`, `adopt`, `whoami`), read-only
listings of everything the operator indexes (`list_objects`). Blocking calls; the callers run them
in threads.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes import client, config

from ecr_access.model import ACCOUNT_PLURAL, GROUP, PLURAL, POLICY_PLURAL, VERSION

PAGE = 500  # objects per list request: a large cluster is listed in pages, as kopf lists it


def load_client_config() -> None:
    """In a pod, the service account; elsewhere, the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def cluster_id(namespaces: Sequence[str]) -> str:
    """The default cluster id: the kube-system namespace's UID, plus the watched namespaces when the
    operator is namespace-scoped (so that two namespace-scoped deployments never share Sids)."""
    uid = client.CoreV1Api().read_namespace("kube-system").metadata.uid
    return f"{uid}/{','.join(sorted(namespaces))}" if namespaces else str(uid)


def patch_status(namespace: str, name: str, patch: Mapping[str, Any]) -> None:
    """A JSON merge patch of the grant's status subresource (None values delete keys). A grant
    deleted meanwhile (404) has nothing left to report."""
    try:
        client.CustomObjectsApi().patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": dict(patch)})
    except client.ApiException as error:
        if error.status != 404:
            raise


def patch_policy_status(name: str, patch: Mapping[str, Any]) -> None:
    """A merge patch of an EcrGrantPolicy's status (cluster-scoped); a policy deleted meanwhile has
    nothing left to report."""
    _patch_cluster_status(POLICY_PLURAL, name, patch)


def patch_account_status(name: str, patch: Mapping[str, Any]) -> None:
    """A merge patch of an EcrAccessAccount's status (cluster-scoped), as `patch_policy_status`."""
    _patch_cluster_status(ACCOUNT_PLURAL, name, patch)


def _patch_cluster_status(plural: str, name: str, patch: Mapping[str, Any]) -> None:
    try:
        client.CustomObjectsApi().patch_cluster_custom_object_status(GROUP, VERSION, plural, name,
                                                                     {"status": dict(patch)})
    except client.ApiException as error:
        if error.status != 404:
            raise


def read_grant(namespace: str, name: str) -> Mapping[str, Any] | None:
    """The grant as the API server has it now; None once it is gone."""
    try:
        body: Mapping[str, Any] = client.CustomObjectsApi().get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return body


def read_spec(namespace: str, name: str) -> Mapping[str, Any] | None:
    """The grant's spec as the API server has it now; None once the grant is gone."""
    body = read_grant(namespace, name)
    spec: Mapping[str, Any] | None = None if body is None else body.get("spec")
    return spec


def count_grants(namespaces: Sequence[str]) -> int:
    """0 when no grant exists in the watched namespaces (then the empty indexes are already whole).

    Called once before kopf starts: the operator can do nothing without listing grants, so an API
    server's refusal is raised as `Refused`, one line that says what to fix."""
    api = client.CustomObjectsApi()
    # A hung API server fails start-up with its timeout as the reason, not a silent wait until the
    # liveness probe kills the pod: (connect, read) seconds.
    timeout = (5, 30)
    try:
        if not namespaces:
            return len(api.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1,
                                                      _request_timeout=timeout).get("items", []))
        return sum(len(api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, limit=1,
                                                         _request_timeout=timeout).get("items", []))
                   for ns in namespaces)
    except client.ApiException as error:
        where = f" in {', '.join(namespaces)}" if namespaces else ""
        raise Refused(f"listing EcrAccessGrants ({PLURAL}.{GROUP}/{VERSION}){where}", error) from error


class Refused(Exception):
    """The API server refused a call the operator cannot start without: what was asked, the
    answer, and what usually fixes it, on one line (`ApiException` prints its headers and body)."""

    HINTS: Mapping[int, str] = {
        401: "the kubeconfig's or service account's credentials were not accepted",
        403: "the operator's RBAC must allow it (deploy/base/operator-rbac.yaml)",
        404: "is the CRD installed? (kubectl apply -f crds/)",
    }

    def __init__(self, doing: str, error: client.ApiException) -> None:
        detail = ""
        with contextlib.suppress(ValueError, AttributeError):  # a body that is not a Status object
            detail = str(json.loads(error.body or "{}").get("message") or "")
        hint = self.HINTS.get(error.status or 0)
        answer = " ".join(str(part) for part in (error.status, error.reason) if part) or "no answer"
        super().__init__(f"{doing}: {answer}" + (f": {detail}" if detail else "") + (f"; {hint}" if hint else ""))


def list_objects(namespaces: Sequence[str]) -> list[dict[str, Any]]:
    """Every object the operator indexes, as the API server returns it (plain dicts with `kind` and
    `apiVersion` set): the grants (in `namespaces`, or all), the EcrGrantPolicies, the
    EcrAccessAccounts and the Namespaces. Only `list` requests: nothing is written."""
    api = client.CustomObjectsApi()
    listings: list[tuple[str, Callable[[str | None], Any]]] = []
    for namespace in namespaces:
        listings.append(("EcrAccessGrant", functools.partial(_namespaced, api, namespace, PLURAL)))
    if not namespaces:
        listings.append(("EcrAccessGrant", functools.partial(_cluster_wide, api, PLURAL)))
    listings.append(("EcrGrantPolicy", functools.partial(_cluster_wide, api, POLICY_PLURAL)))
    listings.append(("EcrAccessAccount", functools.partial(_cluster_wide, api, ACCOUNT_PLURAL)))
    found: list[dict[str, Any]] = []
    for kind, listing in listings:
        found.extend({"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, **item} for item in _pages(listing))
    core, serializer = client.CoreV1Api(), client.ApiClient()
    token: str | None = None
    while True:
        page = core.list_namespace(limit=PAGE, _continue=token)
        found.extend({"apiVersion": "v1", "kind": "Namespace", **serializer.sanitize_for_serialization(item)}
                     for item in page.items or [])
        token = page.metadata._continue if page.metadata else None
        if not token:
            return found


def _namespaced(api: Any, namespace: str, plural: str, token: str | None) -> Any:
    return api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, limit=PAGE, _continue=token)


def _cluster_wide(api: Any, plural: str, token: str | None) -> Any:
    return api.list_cluster_custom_object(GROUP, VERSION, plural, limit=PAGE, _continue=token)


def _pages(listing: Callable[[str | None], Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        page = listing(token)
        items.extend(page.get("items", []))
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items
