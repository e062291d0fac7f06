"""The AWS adapter on its own: identity, pagination, idempotent cleanup, and error classification."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from botocore.stub import Stubber

from ecr_access.aws import errors, ratelimit
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.model import RepositoryRef
from ecr_access.ports import FaultKind
from tests.integration.conftest import ACCOUNT, NODE_ROLE, READ_ONLY, REGION, World


def test_identity_comes_from_the_session(world: World) -> None:
    defaults = world.session.defaults()
    assert (defaults.partition, defaults.region, defaults.account) == ("aws", REGION, ACCOUNT)


def test_get_role_returns_none_for_a_missing_role(world: World) -> None:
    iam = IamAdapter(world.session)
    assert world.run(iam.get_role("nope")) is None
    arn = world.create_role()
    info = world.run(iam.get_role(NODE_ROLE))
    assert info is not None and info.arn == arn and info.role_id.startswith("ARO")


POLICY = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:ListImages","Resource":"*"}]}'


def test_attached_policies_are_listed_across_pages(world: World) -> None:
    world.create_role()
    arns = [world.iam.create_policy(PolicyName=f"p{i}", PolicyDocument=POLICY)
            ["Policy"]["Arn"] for i in range(3)]
    for arn in [*arns, READ_ONLY]:
        world.iam.attach_role_policy(RoleName=NODE_ROLE, PolicyArn=arn)
    world.session.iam().meta.events.register(
        "provide-client-params.iam.ListAttachedRolePolicies", lambda params, **_: params.update(MaxItems=1))
    assert world.run(IamAdapter(world.session).list_attached_role_policies(NODE_ROLE)) == {*arns, READ_ONLY}
    assert world.calls.count("ListAttachedRolePolicies") >= 4, "one policy per page"


def test_cleanup_is_idempotent(world: World) -> None:
    world.create_role()
    world.run(IamAdapter(world.session).detach_role_policy(NODE_ROLE, READ_ONLY))  # never attached: no error
    repo = world.create_repository("ml/trainer")
    world.run(EcrAdapter(world.session).delete_repository_policy(repo))  # no policy: no error
    world.run(EcrAdapter(world.session).delete_repository_policy(RepositoryRef("aws", REGION, ACCOUNT, "gone")))


def test_missing_repository_is_a_not_found_fault(world: World) -> None:
    with pytest.raises(Exception) as raised:
        world.run(EcrAdapter(world.session).get_repository_policy(RepositoryRef("aws", REGION, ACCOUNT, "gone")))
    assert getattr(raised.value, "kind", None) is FaultKind.NOT_FOUND


def test_describe_repositories_lists_every_page(world: World) -> None:
    # moto does not paginate DescribeRepositories, so the pages come from botocore's Stubber.
    client = world.session.ecr(REGION)
    with Stubber(client) as stub:
        stub.add_response("describe_repositories", {"repositories": [{"repositoryName": "ml/a"}], "nextToken": "t"},
                          {"registryId": ACCOUNT})
        stub.add_response("describe_repositories", {"repositories": [{"repositoryName": "ml/b"}]},
                          {"registryId": ACCOUNT, "nextToken": "t"})
        assert world.run(EcrAdapter(world.session).describe_repositories(REGION, ACCOUNT)) == ["ml/a", "ml/b"]


def _client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Op")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("Throttling"), FaultKind.THROTTLED),
        (_client_error("ThrottlingException"), FaultKind.THROTTLED),
        (_client_error("Whatever", status=429), FaultKind.THROTTLED),
        (_client_error("AccessDenied", status=403), FaultKind.ACCESS_DENIED),
        (_client_error("AccessDeniedException"), FaultKind.ACCESS_DENIED),
        (_client_error("NoSuchEntity", status=404), FaultKind.NOT_FOUND),
        (_client_error("RepositoryNotFoundException"), FaultKind.NOT_FOUND),
        (_client_error("LimitExceeded", status=409), FaultKind.LIMIT_EXCEEDED),
        (_client_error("ServiceFailure", status=500), FaultKind.UNAVAILABLE),
        (_client_error("Anything", status=503), FaultKind.UNAVAILABLE),
        (_client_error("InvalidParameterException", "Invalid parameter at 'PolicyText' failed to satisfy "
                       "constraint: 'Invalid repository policy provided'"), FaultKind.PROPAGATING),
        (_client_error("MalformedPolicyDocument", "Principal not found"), FaultKind.PROPAGATING),
        (_client_error("InvalidParameterException", "repositoryName failed to satisfy constraint"), FaultKind.INVALID),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), FaultKind.UNAVAILABLE),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), FaultKind.UNAVAILABLE),
    ],
    ids=lambda value: value.name if isinstance(value, FaultKind) else None,
)
def test_errors_are_classified_in_one_place(error: Exception, kind: FaultKind) -> None:
    fault = errors.classify(error, "SetRepositoryPolicy", "repository x")
    assert fault.kind is kind
    assert fault.operation == "SetRepositoryPolicy"
    assert kind.transient == (kind in {FaultKind.THROTTLED, FaultKind.UNAVAILABLE, FaultKind.PROPAGATING})


def test_every_request_takes_a_token_from_its_service_and_regions_bucket(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[int] = []
    monkeypatch.setattr(ratelimit.TokenBucket, "acquire", lambda self: taken.append(id(self)) or 0.0)
    session = AwsSession.create(REGION, rate=5, burst=1)
    world.create_role()

    world.run(IamAdapter(session).get_role(NODE_ROLE))
    world.run(IamAdapter(session).list_attached_role_policies(NODE_ROLE))
    for region in (REGION, "us-east-1"):
        world.run(EcrAdapter(session).describe_repositories(region, ACCOUNT))

    assert len(taken) == 4, "one token per request"
    assert len(set(taken)) == 3, "IAM, ECR in us-west-2 and ECR in us-east-1 each have their own bucket"
    assert taken[0] == taken[1]


def test_an_outage_is_reported_within_about_a_minute() -> None:
    """Every AWS call gives up within about a minute, retries included, so that Reconciling says
    AwsUnavailable while AWS is away instead of nothing for minutes."""
    from ecr_access.aws.session import RETRY_CONFIG  # noqa: PLC0415

    attempts = RETRY_CONFIG.retries["total_max_attempts"]  # the initial request included
    per_attempt = RETRY_CONFIG.connect_timeout + RETRY_CONFIG.read_timeout
    backoff = sum(2**n for n in range(attempts - 1))  # standard mode: at most 1 s, then 2 s, ...
    assert RETRY_CONFIG.retries["mode"] == "standard"
    assert attempts * per_attempt + backoff <= 70
