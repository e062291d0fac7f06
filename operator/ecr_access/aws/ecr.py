"""ECR, as the reconcile port `EcrPort` needs it: read, write and delete repository policies.

`force` is never set on SetRepositoryPolicy (DESIGN §2.6): we want ECR to refuse a policy that would
lock us out, not to accept it.
"""

from __future__ import annotations

from collections.abc import Iterator

from ecr_access.aws import errors
from ecr_access.aws.session import AwsSession
from ecr_access.model import RepositoryRef
from ecr_access.ports import FaultKind


class EcrAdapter:
    """Implements `ecr_access.ports.EcrPort` with boto3, one client per region."""

    def __init__(self, session: AwsSession) -> None:
        self._session = session

    async def get_repository_policy(self, repo: RepositoryRef) -> str | None:
        return await self._session.run(self._get_repository_policy, repo)

    async def set_repository_policy(self, repo: RepositoryRef, text: str) -> None:
        return await self._session.run(self._set_repository_policy, repo, text)

    async def delete_repository_policy(self, repo: RepositoryRef) -> None:
        return await self._session.run(self._delete_repository_policy, repo)

    async def describe_repositories(self, region: str, registry_id: str) -> list[str]:
        return await self._session.run(lambda: list(self._describe_repositories(region, registry_id)))

    # The blocking boto3 calls, each run in a thread by the coroutine of the same name.

    def _get_repository_policy(self, repo: RepositoryRef) -> str | None:
        client = self._session.ecr(repo.region)
        try:
            answer = client.get_repository_policy(registryId=repo.registry_id, repositoryName=repo.name)
        except client.exceptions.RepositoryPolicyNotFoundException:
            return None
        except Exception as error:
            raise errors.classify(error, "GetRepositoryPolicy", f"repository {repo.arn}") from error
        return answer.get("policyText")

    def _set_repository_policy(self, repo: RepositoryRef, text: str) -> None:
        try:
            self._session.ecr(repo.region).set_repository_policy(
                registryId=repo.registry_id, repositoryName=repo.name, policyText=text
            )
        except Exception as error:
            raise errors.classify(error, "SetRepositoryPolicy", f"repository {repo.arn}") from error

    def _delete_repository_policy(self, repo: RepositoryRef) -> None:
        client = self._session.ecr(repo.region)
        try:
            client.delete_repository_policy(registryId=repo.registry_id, repositoryName=repo.name)
        except client.exceptions.RepositoryPolicyNotFoundException:
            return
        except Exception as error:
            fault = errors.classify(error, "DeleteRepositoryPolicy", f"repository {repo.arn}")
            if fault.kind is not FaultKind.NOT_FOUND:
                raise fault from error

    def _describe_repositories(self, region: str, registry_id: str) -> Iterator[str]:
        try:
            paginator = self._session.ecr(region).get_paginator("describe_repositories")
            for page in paginator.paginate(registryId=registry_id):
                for repo in page.get("repositories", []):
                    if "repositoryName" in repo:
                        yield repo["repositoryName"]
        except Exception as error:
            raise errors.classify(error, "DescribeRepositories", f"registry {registry_id} in {region}") from error
