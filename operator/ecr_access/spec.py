"""Parse and validate an EcrAccessGrant spec into the frozen values of `model`.

The CRD's schema rejects most bad input at the API server, but the operator must not rely on it: the
CRD may be older than the operator, CEL may be off, and some rules need the operator's own defaults
(region, account) to check, e.g. two repository items that name the same repository once by name
and once by ARN. Every problem is reported as a `SpecError` that names the field.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ecr_access.model import (
    ACTION_RE,
    ANYSCALE_ROLE_SUFFIX,
    CLOUD_ID_RE,
    MAX_ACTIONS,
    MAX_REPOSITORIES,
    REFERENCE_ACTIONS,
    REGION_RE,
    REGISTRY_ID_RE,
    REPO_NAME_RE,
    ROLE_ARN_RE,
    ROLE_NAME_RE,
    Catalog,
    Defaults,
    DeletionPolicy,
    GrantSpec,
    ManagedPolicy,
    RepositoryRef,
    RoleRef,
)

_E = TypeVar("_E", bound=enum.Enum)


class SpecError(ValueError):
    """A grant spec that the operator cannot act on; `field` is the JSON path a user should fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def to_raw(spec: GrantSpec) -> dict[str, Any]:
    """A spec in the API's own shape that `parse_spec` reads back to an equal `GrantSpec`.

    It records what a grant last applied (see `grants.APPLIED_ANNOTATION`): repositories by ARN and
    actions spelled out, so that reading it back does not depend on the operator's defaults of the
    day it was written. `suspend` is never recorded: what was applied was not suspended.
    """
    role = {"arn": spec.role.arn} if spec.role.arn else {"name": spec.role.name}
    return {
        "role": role,
        "managedPolicy": spec.managed_policy.value,
        "repositories": [{"arn": repo.arn} for repo in spec.repositories],
        "actions": list(spec.actions),
        "deletionPolicy": spec.deletion_policy.value,
    }


def parse_spec(spec: Mapping[str, Any] | None, defaults: Defaults) -> GrantSpec:
    """Turn a raw `spec` into a GrantSpec, or raise SpecError naming the first bad field."""
    if not isinstance(spec, Mapping):
        raise SpecError("spec", "is required and must be an object")
    role = _parse_role(spec.get("role"), defaults)
    # A null field means "not set", as for actions: without this, `managedPolicy: null` would be refused with
    # "None is not one of ReadOnly, PullOnly, None".
    managed = _parse_enum(ManagedPolicy, _or_default(spec, "managedPolicy", "ReadOnly"), "spec.managedPolicy")
    deletion = _parse_enum(DeletionPolicy, _or_default(spec, "deletionPolicy", "Delete"), "spec.deletionPolicy")
    suspend = _or_default(spec, "suspend", False)
    if not isinstance(suspend, bool):
        raise SpecError("spec.suspend", "must be true or false")
    return GrantSpec(
        role=role,
        managed_policy=managed,
        repositories=_parse_repositories(spec.get("repositories"), defaults),
        actions=_parse_actions(spec.get("actions"), defaults.catalog),
        deletion_policy=deletion,
        suspend=suspend,
    )


def _or_default(spec: Mapping[str, Any], key: str, default: Any) -> Any:
    value = spec.get(key)
    return default if value is None else value


def _parse_role(raw: Any, defaults: Defaults) -> RoleRef:
    if not isinstance(raw, Mapping):
        raise SpecError("spec.role", "is required: set exactly one of name, arn or anyscaleCloudId")
    given = [key for key in ("name", "arn", "anyscaleCloudId") if raw.get(key) not in (None, "")]
    if len(given) != 1:
        raise SpecError(
            "spec.role", f"exactly one of name, arn or anyscaleCloudId must be set (got {len(given)})"
        )
    value = raw[given[0]]
    if not isinstance(value, str):
        raise SpecError(f"spec.role.{given[0]}", "must be a string")
    if given[0] == "name":
        if not ROLE_NAME_RE.fullmatch(value):
            raise SpecError("spec.role.name", f"{value!r} is not a valid IAM role name")
        return RoleRef(name=value, account=defaults.account, partition=defaults.partition)
    if given[0] == "arn":
        match = ROLE_ARN_RE.fullmatch(value)
        if not match:
            raise SpecError(
                "spec.role.arn", f"{value!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
            )
        return RoleRef(
            name=match["name"], account=match["account"], partition=match["partition"], arn=value
        )
    if not CLOUD_ID_RE.fullmatch(value):
        raise SpecError("spec.role.anyscaleCloudId", f"{value!r} is not an Anyscale cloud id (cld_...)")
    return RoleRef(
        name=value + ANYSCALE_ROLE_SUFFIX, account=defaults.account, partition=defaults.partition
    )


def _parse_repositories(raw: Any, defaults: Defaults) -> tuple[RepositoryRef, ...]:
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not raw:
        raise SpecError("spec.repositories", "must list at least one repository")
    if len(raw) > MAX_REPOSITORIES:
        raise SpecError("spec.repositories", f"must have at most {MAX_REPOSITORIES} items")
    seen: dict[RepositoryRef, int] = {}
    result = []
    for index, item in enumerate(raw):
        field = f"spec.repositories[{index}]"
        repo = _parse_repository(item, field, defaults)
        if repo in seen:
            raise SpecError(field, f"names the same repository as spec.repositories[{seen[repo]}] ({repo.arn})")
        seen[repo] = index
        result.append(repo)
    return tuple(result)


def _parse_repository(item: Any, field: str, defaults: Defaults) -> RepositoryRef:
    if not isinstance(item, Mapping):
        raise SpecError(field, "must be an object")
    has_arn = item.get("arn") not in (None, "")
    has_name = item.get("name") not in (None, "")
    if has_arn == has_name:
        raise SpecError(field, "set either name (with optional region and registryId) or arn, not both")
    if has_arn:
        if item.get("region") or item.get("registryId"):
            raise SpecError(field, "region and registryId come from the arn; do not set them with arn")
        arn = item["arn"]
        repo = RepositoryRef.from_arn(arn)
        if repo is None:
            raise SpecError(
                f"{field}.arn",
                f"{arn!r} is not an ECR repository ARN (arn:aws:ecr:<region>:<account>:repository/<name>)",
            )
        _check_region(repo, f"{field}.arn", defaults.catalog)
        return repo
    name, region, registry = item["name"], item.get("region"), item.get("registryId")
    if not isinstance(name, str) or not 2 <= len(name) <= 256 or not REPO_NAME_RE.fullmatch(name):
        raise SpecError(f"{field}.name", f"{name!r} is not a valid ECR repository name")
    if region is not None and (not isinstance(region, str) or not REGION_RE.fullmatch(region)):
        raise SpecError(f"{field}.region", f"{region!r} is not an AWS region name")
    if registry is not None and (not isinstance(registry, str) or not REGISTRY_ID_RE.fullmatch(registry)):
        raise SpecError(f"{field}.registryId", f"{registry!r} is not a 12-digit account id (quote it in YAML)")
    repo = RepositoryRef(defaults.partition, region or defaults.region, registry or defaults.account, name)
    _check_region(repo, f"{field}.region", defaults.catalog)
    return repo


def _check_region(repo: RepositoryRef, field: str, catalog: Catalog | None) -> None:
    """A region ECR does not have in the partition (`us-west-9`) would otherwise be retried forever."""
    if catalog is None:
        return
    known = catalog.regions.get(repo.partition, frozenset())
    if repo.region not in known:
        raise SpecError(field, f"{repo.region!r} is not a region where Amazon ECR runs in partition {repo.partition} "
                        f"(known: {', '.join(sorted(known)[:6])}, ...)")


def _parse_actions(raw: Any, catalog: Catalog | None) -> tuple[str, ...]:
    if raw is None or raw == []:
        return REFERENCE_ACTIONS
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise SpecError("spec.actions", "must be a list of ECR actions such as ecr:BatchGetImage")
    if len(raw) > MAX_ACTIONS:
        raise SpecError("spec.actions", f"must have at most {MAX_ACTIONS} items")
    found = []
    for index, action in enumerate(raw):
        if not isinstance(action, str) or not ACTION_RE.fullmatch(action):
            raise SpecError(f"spec.actions[{index}]", f"{action!r} is not an ECR action (ecr:<Name>)")
        if catalog is None:
            found.append(action)
            continue
        canonical = catalog.canonical_action(action)
        if canonical is None:
            what = "matches no ECR action" if "*" in action else "is not an ECR action"
            raise SpecError(f"spec.actions[{index}]", f"{action!r} {what} (for example ecr:BatchGetImage)")
        found.append(canonical)
    # Spelled as IAM spells them, so that `ecr:batchgetimage` and `ecr:BatchGetImage` share one Sid.
    return tuple(sorted(set(found)))


def _parse_enum(kind: type[_E], raw: Any, field: str) -> _E:
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise SpecError(field, f"{raw!r} is not one of {allowed}") from None
