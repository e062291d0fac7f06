"""IAM, as the reconcile port `IamPort` needs it: get a role (with its tags), list/attach/detach
managed policies, and tag/untag the role (the managed-policy ledger, see `attachments`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ecr_access.aws import errors
from ecr_access.aws.session import AwsSession
from ecr_access.ports import AwsFault, FaultKind, RoleInfo, Simulated


class IamAdapter:
    """Implements `ecr_access.ports.IamPort` with boto3."""

    def __init__(self, session: AwsSession) -> None:
        self._session = session

    async def get_role(self, name: str) -> RoleInfo | None:
        return await self._session.run(self._get_role, name)

    async def list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        return await self._session.run(self._list_attached_role_policies, role_name)

    async def attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        return await self._session.run(self._attach_role_policy, role_name, policy_arn)

    async def detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        return await self._session.run(self._detach_role_policy, role_name, policy_arn)

    async def tag_role(self, role_name: str, tags: Mapping[str, str]) -> None:
        return await self._session.run(self._tag_role, role_name, tags)

    async def untag_role(self, role_name: str, keys: Iterable[str]) -> None:
        return await self._session.run(self._untag_role, role_name, keys)

    async def simulate_principal_policy(self, role_arn: str, actions: Sequence[str],
                                        resources: Sequence[str]) -> list[Simulated]:
        return await self._session.run(self._simulate, role_arn, actions, resources)

    # The blocking boto3 calls, each run in a thread by the coroutine of the same name.

    def _get_role(self, name: str) -> RoleInfo | None:
        try:
            role = self._session.iam().get_role(RoleName=name)["Role"]
        except Exception as error:
            fault = errors.classify(error, "GetRole", f"IAM role {name}")
            if fault.kind is FaultKind.NOT_FOUND:
                return None
            raise fault from error
        tags = {item["Key"]: item["Value"] for item in role.get("Tags", []) if "Key" in item and "Value" in item}
        return RoleInfo(arn=role["Arn"], role_id=role["RoleId"], tags=tags)

    def _list_attached_role_policies(self, role_name: str) -> frozenset[str]:
        found: set[str] = set()
        try:
            paginator = self._session.iam().get_paginator("list_attached_role_policies")
            for page in paginator.paginate(RoleName=role_name):
                found.update(item["PolicyArn"] for item in page.get("AttachedPolicies", []) if "PolicyArn" in item)
        except Exception as error:
            raise errors.classify(error, "ListAttachedRolePolicies", f"IAM role {role_name}") from error
        return frozenset(found)

    def _attach_role_policy(self, role_name: str, policy_arn: str) -> None:
        try:
            self._session.iam().attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
        except Exception as error:
            raise errors.classify(error, "AttachRolePolicy", f"IAM role {role_name}") from error

    def _detach_role_policy(self, role_name: str, policy_arn: str) -> None:
        try:
            self._session.iam().detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
        except Exception as error:
            fault: AwsFault = errors.classify(error, "DetachRolePolicy", f"IAM role {role_name}")
            if fault.kind is not FaultKind.NOT_FOUND:  # already detached (or role gone): nothing to undo
                raise fault from error

    def _tag_role(self, role_name: str, tags: Mapping[str, str]) -> None:
        try:
            self._session.iam().tag_role(RoleName=role_name,
                                         Tags=[{"Key": key, "Value": value} for key, value in tags.items()])
        except Exception as error:
            raise errors.classify(error, "TagRole", f"IAM role {role_name}") from error

    def _untag_role(self, role_name: str, keys: Iterable[str]) -> None:
        try:
            self._session.iam().untag_role(RoleName=role_name, TagKeys=list(keys))
        except Exception as error:
            raise errors.classify(error, "UntagRole", f"IAM role {role_name}") from error

    def _simulate(self, role_arn: str, actions: Sequence[str], resources: Sequence[str]) -> list[Simulated]:
        """Each action on each resource (IAM evaluates every pair; a result names its resource, or
        lists them under ResourceSpecificResults)."""
        found: list[Simulated] = []
        try:
            paginator = self._session.iam().get_paginator("simulate_principal_policy")
            for page in paginator.paginate(PolicySourceArn=role_arn, ActionNames=list(actions),
                                           ResourceArns=list(resources)):
                for result in page.get("EvaluationResults", []):
                    action = result["EvalActionName"]
                    specific = result.get("ResourceSpecificResults") or []
                    found.extend(Simulated(action, item["EvalResourceName"], item["EvalResourceDecision"])
                                 for item in specific)
                    if not specific:
                        found.append(Simulated(action, result.get("EvalResourceName", "*"), result["EvalDecision"]))
        except Exception as error:
            raise errors.classify(error, "SimulatePrincipalPolicy", f"IAM role {role_arn}") from error
        return found
