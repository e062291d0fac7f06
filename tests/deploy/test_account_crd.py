"""The EcrAccessAccount CRD (crds/ecraccessaccounts.yaml): what a cluster admin's `kubectl apply` of an account meets.

The same layers as tests/unit/test_crd.py and test_policy_crd.py check for grants and policies, with their helpers:
the CRD's shape (names, scope, printer columns), that its schema is structural, bounded and documented everywhere
(`kubectl explain`), the OpenAPI part through jsonschema and the CEL rule through cel-python, both as the tests'
plain cel-python and as kubesim (the API server of the sandbox) evaluates it. On top, the schema and the operator
(`ecr_access.accounts.parse`) must agree: what the operator calls valid the schema accepts, and what the schema lets
through but the operator refuses would show as InvalidSpec instead of an apply error. tests/deploy/test_apply_kubesim
applies the CRD and the example to kubesim with kubectl.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from ecr_sandbox.kubectl import run_kubectl
from kubesim import cel as kubesim_cel
from tests.deploy.manifests import (
    ACCOUNT_CRD_PATH,
    CENTRAL_REGISTRY_EXAMPLE,
    CRD_PATH,
    ROOT,
    account_errors,
    kubectl,
    validate_account,
    validate_grant,
)
from tests.unit.test_crd import walk

EXAMPLE = CENTRAL_REGISTRY_EXAMPLE
ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecr-access-operator"
# The reasons the operator gives an account's Ready condition (DESIGN §6, ecr_access.accounts/account_check).
READY_REASONS = ("Assumed", "AssumeRoleFailed", "AccountMismatch", "DuplicateAccount", "OwnAccount", "InvalidSpec")

Schema = dict[str, Any]
Mutation = Callable[[dict[str, Any]], None]


def load_crd() -> dict[str, Any]:
    return dict(yaml.safe_load(ACCOUNT_CRD_PATH.read_text()))


def root_schema() -> Schema:
    return dict(load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def user_nodes() -> Iterator[tuple[str, Schema]]:
    # metadata is the API server's ObjectMeta: a CRD may say nothing about it beyond name and generateName.
    return ((path, node) for path, node in walk(root_schema()) if not path.startswith(".metadata"))


def account(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": "b"},
            "spec": spec}


def example_account() -> dict[str, Any]:
    (found,) = [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc and doc["kind"] == "EcrAccessAccount"]
    return dict(found)


BASE = account(accountId=ACCOUNT, assumeRole={"roleArn": ROLE})


# --- the CRD's shape ----------------------------------------------------------------------------------------


def test_names_scope_and_category_follow_the_api_contract() -> None:
    crd = load_crd()
    assert (crd["apiVersion"], crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "ecraccessaccounts.ecraccess.io"
    assert crd["spec"]["group"] == "ecraccess.io"
    # Cluster-scoped: an account extends the operator's AWS reach for every namespace, so no namespace owns one.
    assert crd["spec"]["scope"] == "Cluster"
    names = crd["spec"]["names"]
    assert (names["kind"], names["listKind"]) == ("EcrAccessAccount", "EcrAccessAccountList")
    assert (names["plural"], names["singular"]) == ("ecraccessaccounts", "ecraccessaccount")
    assert names["shortNames"] == ["eaa"]
    grant_names = yaml.safe_load(CRD_PATH.read_text())["spec"]["names"]
    assert names["categories"] == grant_names["categories"] == ["ecraccess"]
    assert not set(names["shortNames"]) & set(grant_names["shortNames"])


def test_one_served_storage_version_with_a_status_subresource() -> None:
    versions = load_crd()["spec"]["versions"]
    assert [(v["name"], v["served"], v["storage"]) for v in versions] == [("v1alpha1", True, True)]
    # Without the status subresource, the operator's status writes would bump metadata.generation.
    assert versions[0]["subresources"] == {"status": {}}


def test_printer_columns_show_the_account_and_its_readiness() -> None:
    columns = load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"], c.get("priority", 0)) for c in columns] == [
        ("Account", ".spec.accountId", 0),
        ("Ready", '.status.conditions[?(@.type=="Ready")].status', 0),
        ("Reason", '.status.conditions[?(@.type=="Ready")].reason', 0),
        ("Age", ".metadata.creationTimestamp", 0),
    ]
    assert {c["name"]: c["type"] for c in columns}["Age"] == "date"
    nodes = dict(walk(root_schema()))
    for column in columns:
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"])
        assert path.startswith(".metadata.") or path in nodes, column


def test_the_repository_copies_are_the_crd_installed_everywhere() -> None:
    assert (ROOT / "deploy" / "helm" / "ecr-access-operator" / "crds" / ACCOUNT_CRD_PATH.name).read_bytes() == (
        ACCOUNT_CRD_PATH.read_bytes())
    assert ACCOUNT_CRD_PATH.name in yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())["resources"]


# --- the schema is structural, bounded and documented -------------------------------------------------------


def test_schema_is_structural() -> None:
    untyped = [path or "<root>" for path, node in walk(root_schema()) if "type" not in node]
    assert untyped == [], f"schema nodes without a type: {untyped}"
    forbidden = [f"{path}: {key}" for path, node in walk(root_schema())
                 for key in ("$ref", "additionalProperties", "oneOf", "anyOf", "allOf", "not") if key in node]
    assert forbidden == [], f"keywords a structural schema may not use here: {forbidden}"
    assert root_schema()["properties"]["metadata"] == {"type": "object"}


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    missing = [path or "<root>" for path, node in user_nodes() if not str(node.get("description", "")).strip()]
    assert missing == [], f"fields kubectl explain would show without a description: {missing}"


def test_every_string_and_list_is_bounded() -> None:
    unbounded = [path for path, node in user_nodes()
                 if (node.get("type") == "string" and "maxLength" not in node and "enum" not in node)
                 or (node.get("type") == "array" and "maxItems" not in node)]
    assert unbounded == [], f"strings or lists without maxLength/maxItems: {unbounded}"


def test_patterns_are_ones_go_re2_accepts() -> None:
    # RE2 (the API server) refuses a repeat count above 1,000, e.g. {2,1224}: the CRD would not install.
    for path, node in user_nodes():
        if "pattern" in node:
            re.compile(node["pattern"])
            bounds = [int(bound) for pair in re.findall(r"\{(\d+)(?:,(\d*))?\}", node["pattern"])
                      for bound in pair if bound]
            assert all(bound <= 1000 for bound in bounds), path


def test_descriptions_teach_what_an_admin_must_know() -> None:
    nodes = dict(user_nodes())
    role = nodes[".spec.assumeRole.roleArn"]["description"]
    assert "RoleSessionName ecr-access-<8 hex digits of the cluster digest>" in role
    assert "CloudTrail" in role
    assert "ExternalId" in nodes[".spec.assumeRole.externalId"]["description"]
    assert "AccountNotConfigured" in nodes[""]["description"]
    conditions = nodes[".status.conditions"]["description"]
    for reason in READY_REASONS:
        assert reason in conditions, reason
    assert "AccountUnavailable" in conditions
    assert "GetCallerIdentity" in nodes[".status.identityArn"]["description"]


def test_conditions_are_a_map_keyed_by_type_in_the_metav1_shape() -> None:
    conditions = root_schema()["properties"]["status"]["properties"]["conditions"]
    policy = yaml.safe_load((ROOT / "crds" / "ecrgrantpolicies.yaml").read_text())
    policy_conditions = policy["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"][
        "properties"]["conditions"]
    assert (conditions["x-kubernetes-list-type"], conditions["x-kubernetes-list-map-keys"]) == ("map", ["type"])
    strip: Callable[[Any], Any] = lambda node: (  # noqa: E731 - the shape without the words
        {k: strip(v) for k, v in node.items() if k != "description"} if isinstance(node, dict) else node)
    assert strip(conditions) == strip(policy_conditions)


# --- what the API server accepts and refuses ----------------------------------------------------------------


def test_example_is_accepted() -> None:
    validate_account(example_account())
    assert example_account()["spec"] == {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE}}


@pytest.mark.parametrize("spec", [
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "5b0f1c9e-3a47-4d2b-8e61-0c9a7d3f2b18"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "ab"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "a+b=c,d.e@f:g/h-i_j"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "x" * 1224}},
    # DESIGN §6 writes externalId: "" (optional): empty is "none", as the operator reads it.
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": ""}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/platform/ecr/ecr-access"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": f"arn:aws-cn:iam::{ACCOUNT}:role/ecr-access-operator"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": f"arn:aws-us-gov:iam::{ACCOUNT}:role/ecr-access-operator"}},
], ids=str)
def test_well_formed_accounts_are_accepted(spec: dict[str, Any]) -> None:
    assert account_errors(account(**spec)) == []


def _set(*path: str, value: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _delete(*path: str) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        node = spec
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return mutate


REFUSED: list[tuple[str, Mutation, str]] = [
    ("short account id", _set("accountId", value="21098765432"), "spec.accountId"),
    ("account id with letters", _set("accountId", value="21098765432a"), "spec.accountId"),
    ("unquoted account id", _set("accountId", value=210987654321), "spec.accountId"),
    ("no account id", _delete("accountId"), "'accountId' is a required property"),
    ("no assumeRole", _delete("assumeRole"), "'assumeRole' is a required property"),
    ("no roleArn", _delete("assumeRole", "roleArn"), "'roleArn' is a required property"),
    ("a user, not a role", _set("assumeRole", "roleArn", value=f"arn:aws:iam::{ACCOUNT}:user/ops"),
     "spec.assumeRole.roleArn"),
    ("a role name, not an ARN", _set("assumeRole", "roleArn", value="ecr-access-operator"), "spec.assumeRole.roleArn"),
    ("another partition", _set("assumeRole", "roleArn", value=f"arn:aws-iso:iam::{ACCOUNT}:role/ecr-access-operator"),
     "spec.assumeRole.roleArn"),
    ("a role in another account", _set("assumeRole", "roleArn", value="arn:aws:iam::123456789012:role/admin"),
     "spec: assumeRole.roleArn must be a role in spec.accountId"),
    ("another account hidden in the path",
     _set("assumeRole", "roleArn", value=f"arn:aws:iam::123456789012:role/:iam::{ACCOUNT}:role/x"),
     "spec: assumeRole.roleArn must be a role in spec.accountId"),
    ("a one-character external id", _set("assumeRole", "externalId", value="x"), "spec.assumeRole.externalId"),
    ("an external id with a space", _set("assumeRole", "externalId", value="my id"), "spec.assumeRole.externalId"),
    ("an external id STS would refuse", _set("assumeRole", "externalId", value="id#1"), "spec.assumeRole.externalId"),
    ("a too-long external id", _set("assumeRole", "externalId", value="x" * 1225), "spec.assumeRole.externalId"),
    ("a misspelt field", _set("assumeRole", "externalID", value="abc"), "externalID"),
    ("session tags, which the API does not have", _set("assumeRole", "tags", value=[]), "tags"),
]


@pytest.mark.parametrize(("name", "mutate", "expected"), REFUSED, ids=[case[0] for case in REFUSED])
def test_malformed_accounts_are_refused_naming_the_field(name: str, mutate: Mutation, expected: str) -> None:
    obj = copy.deepcopy(BASE)
    mutate(obj["spec"])
    errors = account_errors(obj)
    assert errors, f"accepted: {obj['spec']}"
    assert any(expected in error for error in errors), errors


def test_status_of_the_api_contract_is_accepted() -> None:
    # If the schema refused what the operator writes, every status patch would fail and Ready never show.
    obj = copy.deepcopy(BASE)
    obj["status"] = {
        "observedGeneration": 1,
        "identityArn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ecr-access-operator/ecr-access-0a1b2c3d",
        "conditions": [{"type": "Ready", "status": "True", "reason": reason, "message": "m", "observedGeneration": 1,
                        "lastTransitionTime": "2026-01-10T09:00:02Z"} for reason in READY_REASONS[:1]]
                      + [{"type": "Stalled", "status": "True", "reason": "AssumeRoleFailed", "message": "m",
                          "observedGeneration": 1, "lastTransitionTime": "2026-01-10T09:00:02Z"}],
    }
    assert account_errors(obj) == []


# --- the CEL rule: the same answer from the tests' cel-python and from kubesim ------------------------------


def _rule() -> str:
    (rule,) = root_schema()["properties"]["spec"]["x-kubernetes-validations"]
    assert rule["fieldPath"] == ".assumeRole.roleArn" and rule["reason"] == "FieldValueInvalid"
    return str(rule["rule"])


@pytest.mark.parametrize(("role_arn", "passes"), [
    (ROLE, True),
    (f"arn:aws-cn:iam::{ACCOUNT}:role/p/q", True),
    (f"arn:aws-us-gov:iam::{ACCOUNT}:role/r", True),
    ("arn:aws:iam::123456789012:role/ecr-access-operator", False),
    (f"arn:aws:iam::123456789012:role/:iam::{ACCOUNT}:role/x", False),
    (f"arn:aws:iam::{ACCOUNT}0:role/x", False),
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/x/y", False),
])
def test_the_account_rule_is_evaluated_alike_by_cel_python_and_kubesim(role_arn: str, passes: bool) -> None:
    spec = {"accountId": ACCOUNT, "assumeRole": {"roleArn": role_arn}}
    errors = account_errors(account(**spec))
    assert any("must be a role in spec.accountId" in error for error in errors) is not passes
    assert kubesim_cel.evaluate(_rule(), spec).passed is passes


# --- the schema and the operator agree ----------------------------------------------------------------------


AGREEMENT = [
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": ""}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "ab"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "a+b=c,d.e@f:g/h-i_j"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/a/b/c"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "x"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "has space"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": ROLE, "externalId": "x" * 1225}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": "arn:aws:iam::123456789012:role/ecr-access-operator"}},
    {"accountId": ACCOUNT, "assumeRole": {"roleArn": f"arn:aws:iam::{ACCOUNT}:user/ops"}},
    {"accountId": "21098765432", "assumeRole": {"roleArn": ROLE}},
    {"accountId": ACCOUNT, "assumeRole": {}},
    {"accountId": ACCOUNT},
]


@pytest.mark.parametrize("spec", AGREEMENT, ids=str)
def test_schema_and_operator_agree_on_what_is_valid(spec: dict[str, Any]) -> None:
    accounts = pytest.importorskip("ecr_access.accounts")
    try:
        accounts.parse("b", spec)
    except accounts.AccountError:
        operator_accepts = False
    else:
        operator_accepts = True
    assert (account_errors(account(**spec)) == []) is operator_accepts


# --- the example: a central registry, and a grant that uses it ----------------------------------------------


def _example_grant() -> dict[str, Any]:
    (found,) = [doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc and doc["kind"] == "EcrAccessGrant"]
    return dict(found)


def test_example_grant_names_a_repository_in_the_account_the_example_configures() -> None:
    grant = _example_grant()
    validate_grant(grant)
    assert grant["metadata"]["namespace"] == "default"  # as examples/ml-images.yaml
    # The role is the one of ml-images.yaml, in the operator's own account; the repository is in B.
    ml_images = yaml.safe_load((ROOT / "examples" / "ml-images.yaml").read_text())
    assert grant["spec"]["role"] == ml_images["spec"]["role"]
    assert grant["spec"]["repositories"] == [{"name": "central/base-images", "registryId": ACCOUNT}]
    assert example_account()["metadata"]["name"] == "central-registry"
    assert example_account()["spec"]["accountId"] == ACCOUNT


def test_example_uses_what_the_sandbox_seeds_in_the_central_account() -> None:
    # `make demo` applies the example: it becomes Ready only if the sandbox seeds this account, role and repository.
    seed = pytest.importorskip("ecr_sandbox.seed")
    if not hasattr(seed, "CENTRAL_ACCOUNT"):
        pytest.skip("the sandbox does not seed a central registry account yet")
    assert seed.CENTRAL_ACCOUNT == ACCOUNT
    assert example_account()["spec"]["assumeRole"]["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/{seed.CENTRAL_ROLE}"
    assert _example_grant()["spec"]["repositories"][0]["name"] == seed.CENTRAL_REPOSITORY
    assert _example_grant()["spec"]["role"] == {"anyscaleCloudId": seed.CLOUD_ID}


def test_kubectl_reads_the_crd_and_the_example_as_the_tests_do() -> None:
    # kubectl's YAML reader (Go, YAML 1.1) must see the same objects as PyYAML, or these tests would check
    # something other than what users apply (a quoted account id that kubectl read as a number, say).
    documents = [ACCOUNT_CRD_PATH, EXAMPLE]
    result = run_kubectl("annotate", "--local", "-o", "yaml", "ecraccess.io/checked=true",
                         *[arg for path in documents for arg in ("-f", str(path))], executable=kubectl(), check=False)
    assert result.returncode == 0, result.stderr
    decoded = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    expected = [doc for path in documents for doc in yaml.safe_load_all(path.read_text()) if doc]
    if len(decoded) == 1 and decoded[0].get("kind") == "List":
        decoded = decoded[0]["items"]
    assert len(decoded) == len(expected)
    for document, original in zip(decoded, expected, strict=True):
        assert document["metadata"].pop("annotations") == {"ecraccess.io/checked": "true"}
        assert document == original
