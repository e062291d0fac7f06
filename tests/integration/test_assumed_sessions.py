"""Assumed-role sessions at the STS port (`AwsSession.assume`, `AssumedAccounts`).

moto checks no trust policy and no external id, so what AssumeRole is sent is checked here with
botocore's own Stubber on the STS client, and the refresh with a fake clock given to botocore's
refreshable credentials: a session assumes its role on first use, again only inside botocore's
refresh window before expiry, and a refresh that fails is reported (`observe`) and raised to the
call that needed it as ACCOUNT_UNAVAILABLE.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from dateutil.tz import tzutc

from ecr_access.accounts import AccountSpec
from ecr_access.aws import errors
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.aws.session import AwsSession
from ecr_access.ports import AwsFault, FaultKind

CENTRAL = "210987654321"
ROLE = f"arn:aws:iam::{CENTRAL}:role/ecr-access-operator"
SESSION = "ecr-access-0123abcd"
START = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=tzutc())


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += datetime.timedelta(minutes=minutes)


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> AwsSession:
    for key, value in {"AWS_ACCESS_KEY_ID": "operator", "AWS_SECRET_ACCESS_KEY": "secret",
                       "AWS_DEFAULT_REGION": "us-west-2"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return AwsSession.create("us-west-2")


@pytest.fixture
def sts(base: AwsSession) -> Iterator[tuple[Any, Stubber]]:
    client = base.core.create_client("sts", region_name="us-west-2")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def answer(key: str, expires: datetime.datetime) -> dict[str, Any]:
    return {"Credentials": {"AccessKeyId": key.ljust(16, "X"), "SecretAccessKey": "s" * 20, "SessionToken": "t" * 20,
                            "Expiration": expires},
            "AssumedRoleUser": {"AssumedRoleId": "AROAEXAMPLE:" + SESSION,
                                "Arn": f"arn:aws:sts::{CENTRAL}:assumed-role/ecr-access-operator/{SESSION}"}}


def test_assume_role_is_sent_the_role_the_session_name_and_the_external_id(
        base: AwsSession, sts: tuple[Any, Stubber]) -> None:
    client, stubber = sts
    stubber.add_response("assume_role", answer("AK1", START + datetime.timedelta(hours=1)),
                         {"RoleArn": ROLE, "RoleSessionName": SESSION, "ExternalId": "tenant-7"})
    session = base.assume(ROLE, session_name=SESSION, external_id="tenant-7", client_creator=lambda *a, **k: client,
                          time_fetcher=Clock())
    assert session.core.get_credentials().get_frozen_credentials().access_key == "AK1".ljust(16, "X")


def test_no_external_id_is_sent_when_none_is_given(base: AwsSession, sts: tuple[Any, Stubber]) -> None:
    client, stubber = sts
    stubber.add_response("assume_role", answer("AK1", START + datetime.timedelta(hours=1)),
                         {"RoleArn": ROLE, "RoleSessionName": SESSION})
    session = base.assume(ROLE, session_name=SESSION, client_creator=lambda *a, **k: client, time_fetcher=Clock())
    assert session.core.get_credentials().get_frozen_credentials().access_key == "AK1".ljust(16, "X")


def test_credentials_are_assumed_once_then_again_before_they_expire(base: AwsSession, sts: tuple[Any, Stubber]) -> None:
    client, stubber = sts
    clock = Clock()
    outcomes: list[Exception | None] = []
    stubber.add_response("assume_role", answer("AK1", START + datetime.timedelta(hours=1)))
    session = base.assume(ROLE, session_name=SESSION, client_creator=lambda *a, **k: client, time_fetcher=clock,
                          refreshed=outcomes.append)
    credentials = session.core.get_credentials()
    assert credentials.get_frozen_credentials().access_key == "AK1".ljust(16, "X")

    clock.advance(30)  # half an hour left: nothing is assumed (the Stubber has no second answer)
    assert credentials.get_frozen_credentials().access_key == "AK1".ljust(16, "X")

    clock.advance(22)  # 8 minutes left: inside botocore's mandatory window, so the role is assumed again
    stubber.add_response("assume_role", answer("AK2", clock.now + datetime.timedelta(hours=1)))
    assert credentials.get_frozen_credentials().access_key == "AK2".ljust(16, "X")
    assert outcomes == [None, None]

    clock.advance(55)  # the next refresh is refused: the call that needs it fails as the account's
    stubber.add_client_error("assume_role", "AccessDenied", "not authorized to perform: sts:AssumeRole",
                             http_status_code=403)
    with pytest.raises(errors.AssumeRoleFailed) as raised:
        credentials.get_frozen_credentials()
    fault = errors.classify(raised.value, "GetRepositoryPolicy", "repository x")
    assert fault.kind is FaultKind.ACCOUNT_UNAVAILABLE and fault.cause is FaultKind.ACCESS_DENIED
    assert "AccessDenied" in fault.detail
    assert isinstance(outcomes[-1], AwsFault) and outcomes[-1].kind is FaultKind.ACCOUNT_UNAVAILABLE


def test_accounts_report_only_when_assuming_starts_failing_or_works_again(
        base: AwsSession, sts: tuple[Any, Stubber]) -> None:
    client, stubber = sts
    clock = Clock()
    spec = AccountSpec("central", CENTRAL, ROLE)
    seen: list[tuple[str, FaultKind | None]] = []
    others = AssumedAccounts(base, SESSION, {CENTRAL: spec}.get, client_creator=lambda *a, **k: client,
                             time_fetcher=clock, observe=lambda item, fault: seen.append(
                                 (item.name, fault.kind if fault else None)))
    assert others.reaches(CENTRAL) and not others.reaches("333333333333")
    with pytest.raises(AwsFault) as raised:
        others.ecr("333333333333")
    assert raised.value.kind is FaultKind.ACCOUNT_NOT_CONFIGURED

    credentials = others.session(CENTRAL).core.get_credentials()
    stubber.add_response("assume_role", answer("AK1", START + datetime.timedelta(hours=1)))
    credentials.get_frozen_credentials()
    assert seen == []  # working from the start is no news: the account's own check reports it

    for _ in range(2):  # failing twice is one report
        clock.advance(60)
        stubber.add_client_error("assume_role", "AccessDenied", "denied", http_status_code=403)
        with pytest.raises(errors.AssumeRoleFailed):
            credentials.get_frozen_credentials()
    assert seen == [("central", FaultKind.ACCOUNT_UNAVAILABLE)]

    clock.advance(1)  # past the hold after a failure (session.ASSUME_FAILURE_HOLD)
    stubber.add_response("assume_role", answer("AK3", clock.now + datetime.timedelta(hours=1)))
    assert credentials.get_frozen_credentials().access_key == "AK3".ljust(16, "X")
    assert seen == [("central", FaultKind.ACCOUNT_UNAVAILABLE), ("central", None)]
    assert others.session(CENTRAL) is others.session(CENTRAL)  # one session per account, kept


def test_after_a_failure_the_calls_that_need_the_credentials_fail_at_once_for_a_while(
        base: AwsSession, sts: tuple[Any, Stubber]) -> None:
    """One retry round of many grants when the role cannot be assumed: each repository read needs
    the credentials, and each used to call AssumeRole again (30 refused calls for 10 grants of 3
    repositories, twice per retry delay: kopf's retry and the drift check's). Within the hold the
    first failure is the answer; after it, STS is asked again; the account's own check asks at once."""
    from ecr_access.aws.session import ASSUME_FAILURE_HOLD  # noqa: PLC0415

    client, stubber = sts
    clock = Clock()
    session = base.assume(ROLE, session_name=SESSION, client_creator=lambda *a, **k: client, time_fetcher=clock)
    credentials = session.core.get_credentials()
    stubber.add_client_error("assume_role", "AccessDenied", "denied", http_status_code=403)
    for _ in range(30):  # one AssumeRole: the Stubber has one answer, and a second call would fail otherwise
        with pytest.raises(errors.AssumeRoleFailed) as raised:
            credentials.get_frozen_credentials()
        assert "AccessDenied: denied" in raised.value.fault.detail, raised.value.fault.detail

    clock.advance(ASSUME_FAILURE_HOLD / 60 + 0.01)
    stubber.add_client_error("assume_role", "AccessDenied", "denied", http_status_code=403)
    with pytest.raises(errors.AssumeRoleFailed):
        credentials.get_frozen_credentials()

    session.retry_assume()  # the account's check: someone may have fixed the trust policy just now
    stubber.add_response("assume_role", answer("AK1", clock.now + datetime.timedelta(hours=1)))
    assert credentials.get_frozen_credentials().access_key == "AK1".ljust(16, "X")
