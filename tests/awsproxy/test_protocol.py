"""Naming requests by AWS operation, and AWS errors in each protocol's wire format, without a server."""

from __future__ import annotations

import pytest

from awsproxy.protocol import SERVER_ERROR, THROTTLING, Call, Protocol, error_answer, identify

SCOPE = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/{region}/{service}/aws4_request, "
         "SignedHeaders=host, Signature=ab")


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "body", "expected"),
    [
        pytest.param(
            "POST", "/", "",
            {"Authorization": SCOPE.format(region="us-east-1", service="iam"),
             "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            b"Action=GetRole&Version=2010-05-08&RoleName=r",
            Call("iam", "GetRole", Protocol.QUERY, subject="r"), id="iam-query-body",
        ),
        pytest.param(
            "POST", "/", "",
            {"authorization": SCOPE.format(region="us-west-2", service="sts"),
             "content-type": "application/x-www-form-urlencoded"},
            b"Action=GetCallerIdentity&Version=2011-06-15",
            Call("sts", "GetCallerIdentity", Protocol.QUERY), id="sts-lower-case-headers",
        ),
        pytest.param(
            "GET", "/", "Action=ListRoles&Version=2010-05-08",
            {"Authorization": SCOPE.format(region="us-east-1", service="iam")}, b"",
            Call("iam", "ListRoles", Protocol.QUERY), id="query-string",
        ),
        pytest.param(
            "POST", "/", "",
            {"Authorization": SCOPE.format(region="us-west-2", service="ecr"),
             "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetRepositoryPolicy",
             "Content-Type": "application/x-amz-json-1.1"},
            b'{"repositoryName": "x"}',
            Call("ecr", "GetRepositoryPolicy", Protocol.JSON, subject="x"), id="ecr-json",
        ),
        pytest.param(
            "POST", "/", "",
            {"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.SetRepositoryPolicy"}, b"{}",
            Call("ecr", "SetRepositoryPolicy", Protocol.JSON), id="ecr-unsigned-from-target-prefix",
        ),
        pytest.param(
            "PUT", "/bucket/key", "", {"Authorization": SCOPE.format(region="us-east-1", service="s3")}, b"data",
            Call("s3", "PUT /bucket/key", Protocol.OTHER), id="rest",
        ),
        pytest.param("GET", "/", "", {}, b"\xff\xfe", Call("unknown", "GET /", Protocol.OTHER), id="nothing-known"),
    ],
)
def test_identify(method: str, path: str, query: str, headers: dict[str, str], body: bytes, expected: Call) -> None:
    assert identify(method, path, query, headers, body) == expected


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"repositoryName": 7}', b""])
def test_a_json_body_without_a_repository_name_names_no_subject(body: bytes) -> None:
    call = identify("POST", "/", "", {"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.ListImages"}, body)
    assert (call.operation, call.subject) == ("ListImages", "")


def test_a_form_body_is_read_only_when_it_is_a_form() -> None:
    call = identify("POST", "/", "", {"Content-Type": "application/octet-stream"}, b"Action=GetRole")
    assert call.protocol is Protocol.OTHER


def test_error_answers_differ_by_protocol() -> None:
    query = error_answer(Call("iam", "GetRole", Protocol.QUERY), THROTTLING)
    assert query.status == 400
    assert b"<Code>Throttling</Code>" in query.body and b"<Type>Sender</Type>" in query.body
    assert query.headers["Content-Type"] == "text/xml"

    json_answer = error_answer(Call("ecr", "GetRepositoryPolicy", Protocol.JSON), THROTTLING)
    assert json_answer.status == 400
    assert json_answer.body == b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
    assert json_answer.headers["x-amzn-ErrorType"] == "ThrottlingException"

    assert error_answer(Call("iam", "GetRole", Protocol.QUERY), SERVER_ERROR).status == 500
    assert b"InternalFailure" in error_answer(Call("iam", "GetRole", Protocol.QUERY), SERVER_ERROR).body
    assert error_answer(Call("ecr", "X", Protocol.JSON), SERVER_ERROR).headers["x-amzn-ErrorType"] == "ServerException"
