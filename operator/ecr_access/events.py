"""Kubernetes Events on grants, through kopf's event queue (type Normal or Warning, never Error).

Every Event goes through `kopf.event`: `kopf.info` is gated by the posting level, which stays at
WARNING so that kopf's own log lines ("Handler ... succeeded") never become Events. Outside a
running operator (kopf's queue is per operator, in its handlers' context) an Event is only logged.
"""

from __future__ import annotations

import logging

import kopf

from ecr_access.grants import LiveGrant
from ecr_access.model import GROUP, VERSION, GrantKey

logger = logging.getLogger(__name__)


def post(body: kopf.Body, kind: str, reason: str, message: str) -> None:
    """An Event of type `kind` (Normal or Warning) on the object `body`."""
    try:
        kopf.event(body, type=kind, reason=reason, message=message)
    except LookupError:
        meta = body.get("metadata", {})
        key = GrantKey(meta.get("namespace", ""), meta.get("name", ""))
        logger.log(logging.WARNING if kind == "Warning" else logging.INFO, "%s %s on %s: %s", kind, reason, key,
                   message, extra=key.log_ref())


def ref(grant: LiveGrant) -> kopf.Body:
    """The grant as an Event's object, from the index (the drift check has no body)."""
    return kopf.Body({"apiVersion": f"{GROUP}/{VERSION}", "kind": "EcrAccessGrant",
                      "metadata": {"namespace": grant.key.namespace, "name": grant.key.name, "uid": grant.uid}})


def warn(grant: LiveGrant, reason: str, message: str) -> None:
    """A Warning Event on a grant known only from the index."""
    post(ref(grant), "Warning", reason, message)


def inform(grant: LiveGrant, reason: str, message: str) -> None:
    """A Normal Event on a grant known only from the index."""
    post(ref(grant), "Normal", reason, message)
