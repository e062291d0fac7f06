"""The EcrGrantPolicy CRD (crds/ecrgrantpolicies.yaml): what a cluster admin's `kubectl apply` of a policy meets first.

The same layers as tests/unit/test_crd.py checks for grants, with its helpers: the CRD's shape (names, scope,
printer columns), that its schema is structural, bounded and documented everywhere (`kubectl explain`), the
OpenAPI part through jsonschema and the `x-kubernetes-validations` CEL rules through cel-python. On top, the schema
and the operator (`ecr_access.tenancy.parse_policy`) must agree: what the operator calls valid the schema accepts,
and what the schema lets through but the operator refuses would show as InvalidPolicy instead of an apply error.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from ecr_access import tenancy
from ecr_access.model import REFERENCE_ACTIONS, Defaults, ManagedPolicy
from ecr_access.spec import parse_spec
from ecr_sandbox.seed import ACCOUNT, ALLOW_ALL_POLICY, CLOUD_ID, REGION, SANDBOX_POLICY
from kubesim import jsonpath, tables
from tests.unit.test_crd import cel_program, cel_violations, field_path, prune, to_json_schema

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "ecrgrantpolicies.yaml"
GRANT_CRD_PATH = ROOT / "crds" / "ecraccessgrants.yaml"
EXAMPLE_PATH = ROOT / "examples" / "policy-team.yaml"
GLOB_PATTERN = "^[A-Za-z0-9*:/_+=,.@-]+$"  # the operator's, ecr_access.tenancy._GLOB

Schema = dict[str, Any]
Mutation = Callable[[dict[str, Any]], None]


# --- loading ------------------------------------------------------------------------------------------------


@functools.cache
def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def root_schema() -> Schema:
    return load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def load_example() -> dict[str, Any]:
    documents = list(yaml.safe_load_all(EXAMPLE_PATH.read_text()))
    assert len(documents) == 1, f"{EXAMPLE_PATH.name} must hold exactly one document, found {len(documents)}"
    return documents[0]


def policy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrGrantPolicy", "metadata": {"name": "p"},
            "spec": spec}


WITH_EXPRESSIONS = policy(
    namespaceSelector={
        "matchLabels": {"tier": "prod"},
        "matchExpressions": [
            {"key": "team", "operator": "In", "values": ["ml", "data"]},
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
            {"key": "ecraccess.io/allowed", "operator": "Exists"},
            {"key": "quarantined", "operator": "DoesNotExist", "values": []},
        ],
    },
    roles=["arn:aws:iam::123456789012:role/*", "*:role/ci-*"],
    repositories=["arn:aws:ecr:us-west-2:123456789012:repository/*"],
    managedPolicies=["None"],
    actions=["ecr:PutImage", "ecr:*LayerUpload", "ecr:UploadLayerPart", "ECR:CompleteLayerUpload"],
)
VALID = {
    "example": load_example(),
    "sandbox-allow-all": ALLOW_ALL_POLICY,
    "match-expressions": WITH_EXPRESSIONS,
    "minimal": policy(namespaceSelector={}, roles=["*"], repositories=["*"]),
}


def base_policy() -> dict[str, Any]:
    """A fresh copy of the annotated example, the starting point of every bad-spec case."""
    return copy.deepcopy(load_example())


# --- walking the schema, checking a document ----------------------------------------------------------------


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every node with a kubectl-style path, map values included: `.spec.namespaceSelector.matchLabels{}`."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def user_nodes() -> Iterator[tuple[str, Schema]]:
    # metadata is the API server's ObjectMeta: the CRD may say nothing about it (see test_crd.user_nodes).
    return ((path, node) for path, node in walk(root_schema()) if not path.startswith(".metadata"))


def node(path: str) -> Schema:
    return dict(walk(root_schema()))[path]


@functools.cache
def validator(*, strict: bool) -> jsonschema.Draft4Validator:
    schema = to_json_schema(root_schema(), strict=strict)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def schema_errors(document: dict[str, Any], *, strict: bool = False) -> list[str]:
    errors = validator(strict=strict).iter_errors(document)
    return sorted(f"{field_path(error.absolute_path)}: {error.message}" for error in errors)


def admission_errors(document: dict[str, Any]) -> list[str]:
    """What `kubectl apply` of a policy would report (without strict field validation): schema, then CEL errors."""
    return schema_errors(document) + cel_violations(prune(document, root_schema()), root_schema())


def operator_error(document: dict[str, Any]) -> str | None:
    """The field the operator names when it refuses the policy (InvalidPolicy), or None when it accepts it."""
    try:
        tenancy.parse_policy(document["metadata"]["name"], document.get("spec"))
    except tenancy.PolicyError as error:
        return error.field
    return None


# --- the CRD's shape ----------------------------------------------------------------------------------------


def test_names_scope_and_category_follow_the_api_contract() -> None:
    crd = load_crd()
    assert (crd["apiVersion"], crd["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "ecrgrantpolicies.ecraccess.io"
    assert crd["spec"]["group"] == "ecraccess.io"
    assert crd["spec"]["scope"] == "Cluster"  # a namespace's own objects must not decide what it may grant
    names = crd["spec"]["names"]
    assert (names["kind"], names["listKind"]) == ("EcrGrantPolicy", "EcrGrantPolicyList")
    assert (names["plural"], names["singular"]) == ("ecrgrantpolicies", "ecrgrantpolicy")
    assert names["shortNames"] == ["egp"]
    # One category for both kinds: `kubectl get ecraccess` lists grants and policies together.
    grant_names = yaml.safe_load(GRANT_CRD_PATH.read_text())["spec"]["names"]
    assert names["categories"] == grant_names["categories"] == ["ecraccess"]
    assert not set(names["shortNames"]) & set(grant_names["shortNames"])


def test_one_served_storage_version_with_a_status_subresource() -> None:
    versions = load_crd()["spec"]["versions"]
    assert [(v["name"], v["served"], v["storage"]) for v in versions] == [("v1alpha1", True, True)]
    # Without the status subresource, the operator's status writes would bump metadata.generation, and a user's
    # apply could overwrite the operator's Ready.
    assert versions[0]["subresources"] == {"status": {}}


def test_printer_columns_show_readiness_and_the_selector() -> None:
    columns = load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["type"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert default == [
        ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("Namespaces", "string", ".spec.namespaceSelector"),
        ("Age", "date", ".metadata.creationTimestamp"),
    ]
    wide = {c["name"]: (c["jsonPath"], c["priority"]) for c in columns if c.get("priority")}
    assert wide == {"Reason": ('.status.conditions[?(@.type=="Ready")].reason', 1)}
    assert all(c.get("description") for c in columns if c["name"] != "Age")


def test_printer_columns_point_at_fields_the_schema_has() -> None:
    # A column whose path the schema lacks prints <none> forever.
    nodes = dict(walk(root_schema()))
    for column in load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]:
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"])
        if path.startswith(".metadata."):
            continue
        assert path in nodes, f"printer column {column['name']} reads {column['jsonPath']}, not in the schema"


def _cells(document: dict[str, Any]) -> dict[str, Any]:
    """The row `kubectl get egp` shows, cell by cell, as an API server's table convertor renders it (kubesim's)."""
    columns = load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    cells = {}
    for column in columns:
        found = jsonpath.find(document, column["jsonPath"])
        cells[column["name"]] = tables._cell(column["type"], found[0]) if found else None
    return cells


def test_the_namespaces_column_shows_every_namespace_as_braces_not_as_none() -> None:
    # matchLabels alone would print <none> for the allow-all {}, which reads as "no namespace".
    assert _cells(ALLOW_ALL_POLICY)["Namespaces"] == "{}"
    assert json.loads(_cells(load_example())["Namespaces"]) == {"matchLabels": {"team": "ml"}}
    invalid = {**load_example(), "status": {"conditions": [{"type": "Ready", "status": "False",
                                                            "reason": "InvalidPolicy"}]}}
    assert (_cells(invalid)["Ready"], _cells(invalid)["Reason"]) == ("False", "InvalidPolicy")


def test_kubectl_reads_the_crd_and_the_example_as_the_tests_do() -> None:
    # kubectl's YAML reader (Go, YAML 1.1) must see the same objects as PyYAML: `*` globs, "None" and the
    # quoted values are where the two could differ.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    paths = [CRD_PATH, EXAMPLE_PATH]
    command = [kubectl, "annotate", "--local", "-o", "yaml", "ecraccess.io/checked=true"]
    for path in paths:
        command += ["-f", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False,
                            env={"KUBECONFIG": "/dev/null"})
    assert result.returncode == 0, result.stderr
    decoded = list(yaml.safe_load_all(result.stdout))
    for path, document in zip(paths, decoded, strict=True):
        assert document["metadata"].pop("annotations") == {"ecraccess.io/checked": "true"}
        assert document == yaml.safe_load(path.read_text()), f"kubectl reads {path.name} differently"


# --- the schema is structural, bounded and documented -------------------------------------------------------


def test_schema_is_structural() -> None:
    untyped = [path or "<root>" for path, item in walk(root_schema()) if "type" not in item]
    assert untyped == [], f"schema nodes without a type: {untyped}"
    forbidden = [f"{path}: {key}" for path, item in walk(root_schema())
                 for key in ("$ref", "oneOf", "anyOf", "allOf", "not") if key in item]
    assert forbidden == [], f"keywords a structural schema may not use here: {forbidden}"
    # additionalProperties (a map) is structural only without properties beside it.
    both = [path for path, item in walk(root_schema()) if "additionalProperties" in item and "properties" in item]
    assert both == []
    assert root_schema()["properties"]["metadata"] == {"type": "object"}


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    missing = [path or "<root>" for path, item in user_nodes() if not str(item.get("description", "")).strip()]
    assert missing == [], f"fields kubectl explain would show without a description: {missing}"


def test_every_string_list_and_map_is_bounded() -> None:
    # The API server prices CEL rules from maxLength/maxItems/maxProperties; unbounded ones count as ~3 MB.
    unbounded = [
        path
        for path, item in user_nodes()
        if (item.get("type") == "string" and "maxLength" not in item and "enum" not in item)
        or (item.get("type") == "array" and "maxItems" not in item)
        or (item.get("type") == "object" and "additionalProperties" in item and "maxProperties" not in item)
    ]
    assert unbounded == [], f"strings, lists or maps without a bound: {unbounded}"


def test_rules_sit_only_where_their_cost_is_bounded() -> None:
    # Each rule's node, and every list above it, must be bounded, and no rule may sit on a map (its keys have no
    # maxLength the cost estimator could use).
    rules = [path for path, item in user_nodes() if "x-kubernetes-validations" in item]
    assert set(rules) == {".spec.roles[]", ".spec.repositories[]", ".spec.namespaceSelector.matchExpressions[]"}
    nodes = dict(user_nodes())
    for path in rules:
        assert "additionalProperties" not in nodes[path]
        for list_path in (path[: index] for index in range(len(path)) if path.startswith("[]", index)):
            assert nodes[list_path]["maxItems"] <= 100, list_path


def test_required_fields_defaults_and_bounds_are_those_of_the_contract() -> None:
    spec = root_schema()["properties"]["spec"]
    assert spec["required"] == ["namespaceSelector", "roles", "repositories"]  # no implicit "every namespace"
    fields = spec["properties"]
    for name in ("roles", "repositories", "managedPolicies"):
        assert fields[name]["minItems"] == 1, name
    assert "minItems" not in fields["actions"]  # empty is allowed: the 12 pull actions only
    assert "default" not in fields["actions"]
    assert fields["managedPolicies"]["default"] == ["ReadOnly", "PullOnly", "None"]
    assert fields["managedPolicies"]["items"]["enum"] == [item.value for item in ManagedPolicy]
    assert fields["managedPolicies"]["maxItems"] == len(ManagedPolicy)
    operator = fields["namespaceSelector"]["properties"]["matchExpressions"]["items"]["properties"]["operator"]
    assert tuple(operator["enum"]) == tenancy.OPERATORS
    # Atomic lists: with server-side apply a `set` would merge several appliers' items into a wider policy.
    assert not any("x-kubernetes-list-type" in item for path, item in user_nodes() if path.startswith(".spec"))


def test_glob_items_use_the_operators_own_pattern() -> None:
    assert tenancy._GLOB.pattern == GLOB_PATTERN
    for name in ("roles", "repositories", "actions"):
        item = node(f".spec.{name}[]")
        assert item["pattern"] == GLOB_PATTERN, name
        assert item["minLength"] == 1, name


def test_descriptions_teach_the_matching_and_the_secure_defaults() -> None:
    fields = root_schema()["properties"]["spec"]["properties"]
    missing = [action for action in REFERENCE_ACTIONS if action not in fields["actions"]["description"]]
    assert missing == [], f"spec.actions description does not list the always-allowed actions {missing}"
    assert "ecr:PutImage" in fields["actions"]["description"]
    assert "ignores case" in fields["actions"]["description"]
    selector = fields["namespaceSelector"]["description"]
    assert "{} selects every namespace" in selector and "no default" in selector
    assert "kubernetes.io/metadata.name" in selector
    for name in ("roles", "repositories"):
        assert "whole ARN" in fields[name]["description"], name
    assert "the only wildcard" in fields["roles"]["description"]
    assert "cld_*-cluster_node_role" in fields["roles"]["description"]
    assert "None" in fields["managedPolicies"]["description"]
    assert "every repository" in fields["managedPolicies"]["description"]
    top = root_schema()["description"]
    assert "may grant nothing" in top and "NotPermitted" in top


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = root_schema()["properties"]["status"]["properties"]["conditions"]
    assert (conditions["x-kubernetes-list-type"], conditions["x-kubernetes-list-map-keys"]) == ("map", ["type"])
    assert set(conditions["items"]["required"]) >= {"type", "status"}
    assert conditions["items"]["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


# --- valid policies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", VALID.values(), ids=VALID.keys())
def test_valid_policies_pass_the_schema_the_rules_and_the_operator(document: dict[str, Any]) -> None:
    assert schema_errors(document, strict=True) == []
    assert cel_violations(document, root_schema()) == []
    assert operator_error(document) is None


def test_the_example_is_the_anyscale_team_layout() -> None:
    example = load_example()
    assert (example["apiVersion"], example["kind"]) == ("ecraccess.io/v1alpha1", "EcrGrantPolicy")
    assert "namespace" not in example["metadata"]
    spec = example["spec"]
    assert spec["namespaceSelector"] == {"matchLabels": {"team": "ml"}}
    assert spec["roles"] == ["arn:aws:iam::123456789012:role/cld_*-cluster_node_role",
                             "arn:aws:iam::123456789012:role/*/cld_*-cluster_node_role"]
    assert spec["repositories"] == ["arn:aws:ecr:*:123456789012:repository/ml/*"]
    assert spec["managedPolicies"] == ["ReadOnly", "PullOnly", "None"]
    assert spec["actions"] == []
    # Every field is explained in a comment above it.
    text = EXAMPLE_PATH.read_text().splitlines()
    for field in ("namespaceSelector", "roles", "repositories", "managedPolicies", "actions"):
        (index,) = [i for i, line in enumerate(text) if line.startswith(f"  {field}:")]
        assert text[index - 1].lstrip().startswith("#"), f"{field} has no comment"


def test_the_sandbox_policy_allows_everything_but_write_actions() -> None:
    assert ALLOW_ALL_POLICY["metadata"]["name"] == SANDBOX_POLICY == "sandbox-allow-all"
    assert ALLOW_ALL_POLICY["spec"] == {"namespaceSelector": {}, "roles": ["*"], "repositories": ["*"],
                                        "managedPolicies": ["ReadOnly", "PullOnly", "None"], "actions": []}
    parsed = tenancy.parse_policy(SANDBOX_POLICY, ALLOW_ALL_POLICY["spec"])
    assert parsed.allows_action("ecr:BatchGetImage") and not parsed.allows_action("ecr:PutImage")
    # Kept out of examples/, which users read as recommended practice.
    assert not any(SANDBOX_POLICY in path.read_text() for path in (ROOT / "examples").glob("*.yaml"))


# --- what the example grants need, judged by the operator's own function --------------------------------------

DEFAULTS = Defaults("aws", REGION, ACCOUNT)
ROLE_ARNS = {  # what the sandbox's roles resolve to
    "ml-images.yaml": f"arn:aws:iam::{ACCOUNT}:role/{CLOUD_ID}-cluster_node_role",
    "registered-role.yaml": f"arn:aws:iam::{ACCOUNT}:role/anyscale-registered-node-role",
}


def _judge(documents: list[dict[str, Any]], grant_file: str, namespace: str,
           labels: dict[str, str] | None = None) -> tenancy.Verdict:
    grant = yaml.safe_load((ROOT / "examples" / grant_file).read_text())
    policies = [tenancy.parse_policy(doc["metadata"]["name"], doc["spec"]) for doc in documents]
    return tenancy.judge(policies, namespace, labels or {}, ROLE_ARNS[grant_file], parse_spec(grant["spec"], DEFAULTS))


@pytest.mark.parametrize("grant_file", sorted(ROLE_ARNS))
def test_the_sandbox_policy_not_the_team_policy_lets_the_example_grants_work(grant_file: str) -> None:
    grant = yaml.safe_load((ROOT / "examples" / grant_file).read_text())
    namespace = grant["metadata"]["namespace"]
    everything = set(parse_spec(grant["spec"], DEFAULTS).repositories)
    both = _judge([ALLOW_ALL_POLICY, load_example()], grant_file, namespace)
    assert both.permitted and both.repositories == everything
    alone = _judge([load_example()], grant_file, namespace)
    assert not alone.permitted and namespace in alone.message


def test_the_team_policy_lets_a_team_namespace_grant_its_cloud_pull_on_ml_repositories() -> None:
    verdict = _judge([load_example()], "ml-images.yaml", "team-ml", {"team": "ml"})
    assert verdict.permitted and len(verdict.repositories) == 2  # ml/trainer and ml/serving


# --- the OpenAPI rules reject bad policies ------------------------------------------------------------------


def set_field(*path: Any, value: Any) -> Mutation:
    def mutate(spec: dict[str, Any]) -> None:
        target = spec
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def delete_field(name: str) -> Mutation:
    return lambda spec: spec.pop(name)


def expression(**fields: Any) -> Mutation:
    return set_field("namespaceSelector", value={"matchExpressions": [fields]})


# (id, mutation, the schema error it starts with, whether the operator refuses it too)
SCHEMA_CASES = [
    ("missing-selector", delete_field("namespaceSelector"), "spec: 'namespaceSelector' is a required property", True),
    ("missing-roles", delete_field("roles"), "spec: 'roles' is a required property", True),
    ("missing-repositories", delete_field("repositories"), "spec: 'repositories' is a required property", True),
    ("empty-roles", set_field("roles", value=[]), "spec.roles: [] should be non-empty", True),
    ("empty-repositories", set_field("repositories", value=[]), "spec.repositories: [] should be non-empty", True),
    ("role-glob-with-space", set_field("roles", value=["arn:aws:iam::123456789012:role/my role"]),
     "spec.roles[0]: ", True),
    ("role-glob-with-question-mark", set_field("roles", value=["arn:aws:iam::123456789012:role/cld_?"]),
     "spec.roles[0]: ", True),
    ("role-glob-with-class", set_field("roles", value=["arn:aws:iam::123456789012:role/[a-z]*"]),
     "spec.roles[0]: ", True),
    ("role-glob-empty", set_field("roles", value=[""]), "spec.roles[0]: ", True),
    ("role-glob-not-a-string", set_field("roles", value=[7]), "spec.roles[0]: 7 is not of type 'string'", True),
    ("repository-glob-with-space", set_field("repositories", value=["arn:aws:ecr:*:1:repository/ml /*"]),
     "spec.repositories[0]: ", True),
    ("repository-glob-regex", set_field("repositories", value=["arn:aws:ecr:.+:repository/ml/.*$"]),
     "spec.repositories[0]: ", True),
    ("action-glob-with-space", set_field("actions", value=["ecr:Put Image"]), "spec.actions[0]: ", True),
    ("actions-not-a-list", set_field("actions", value="ecr:*"), "spec.actions: 'ecr:*' is not of type 'array'",
     True),
    ("unknown-managed-policy", set_field("managedPolicies", value=["ReadOnly", "FullAccess"]),
     "spec.managedPolicies[1]: 'FullAccess' is not one of ['ReadOnly', 'PullOnly', 'None']", True),
    ("empty-managed-policies", set_field("managedPolicies", value=[]), "spec.managedPolicies: [] should be non-empty",
     True),
    ("selector-not-an-object", set_field("namespaceSelector", value="team=ml"),
     "spec.namespaceSelector: 'team=ml' is not of type 'object'", True),
    ("label-value-not-a-string", set_field("namespaceSelector", value={"matchLabels": {"team": 1}}),
     "spec.namespaceSelector.matchLabels.team: 1 is not of type 'string'", True),
    ("unknown-operator", expression(key="team", operator="Equals", values=["ml"]),
     "spec.namespaceSelector.matchExpressions[0].operator: 'Equals' is not one of", True),
    ("expression-without-key", expression(operator="Exists"),
     "spec.namespaceSelector.matchExpressions[0]: 'key' is a required property", True),
    # Stricter than the operator, as the API server is for every label selector:
    ("label-value-64-chars", set_field("namespaceSelector", value={"matchLabels": {"team": "m" * 64}}),
     "spec.namespaceSelector.matchLabels.team: ", False),
    ("label-value-with-slash", expression(key="team", operator="In", values=["ml/x"]),
     "spec.namespaceSelector.matchExpressions[0].values[0]: ", False),
    ("label-key-with-space", expression(key="my team", operator="Exists"),
     "spec.namespaceSelector.matchExpressions[0].key: ", False),
    ("expression-without-operator", expression(key="team"),
     "spec.namespaceSelector.matchExpressions[0]: 'operator' is a required property", True),
    ("101-roles", set_field("roles", value=[f"arn:aws:iam::123456789012:role/r{i}" for i in range(101)]),
     "spec.roles: ", False),
    ("four-managed-policies", set_field("managedPolicies", value=["None"] * 4), "spec.managedPolicies: ", False),
]


@pytest.mark.parametrize(("mutate", "expected", "operator_refuses"), [case[1:] for case in SCHEMA_CASES],
                         ids=[case[0] for case in SCHEMA_CASES])
def test_schema_refuses_a_bad_policy_naming_the_field(mutate: Mutation, expected: str,
                                                      operator_refuses: bool) -> None:
    document = base_policy()
    mutate(document["spec"])
    errors = schema_errors(document)
    assert any(error.startswith(expected) for error in errors), f"expected {expected!r}, got {errors}"
    # What the schema refuses the operator refuses too (as InvalidPolicy, naming the same field), unless the
    # schema is deliberately the stricter one.
    if operator_refuses:
        field, named = operator_error(document), expected.split(": ", maxsplit=1)[0]
        assert field is not None and (field.startswith(named) or named.startswith(field)), (field, expected)


def test_unknown_fields_are_refused_by_strict_validation_and_pruned_otherwise() -> None:
    # A misspelt `repository` must not silently leave a policy that allows no repository: kubectl's default
    # --validate=strict refuses it; other clients get it pruned, and then `repositories` is missing.
    document = base_policy()
    document["spec"]["repository"] = document["spec"].pop("repositories")
    assert "spec: Additional properties are not allowed ('repository' was unexpected)" in schema_errors(
        document, strict=True)
    assert "spec: 'repositories' is a required property" in schema_errors(document)


# --- the CEL rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "self", "expected"),
    [
        ("self.startsWith('arn:') || self.startsWith('*')", "arn:aws:iam::1:role/x", True),
        ("self.startsWith('arn:') || self.startsWith('*')", "*:role/x", True),
        ("self.startsWith('arn:') || self.startsWith('*')", "cld_*", False),
        ("self.operator in ['In', 'NotIn']", {"operator": "NotIn"}, True),
        ("self.operator in ['In', 'NotIn']", {"operator": "Exists"}, False),
        ("!has(self.values) || size(self.values) == 0", {"values": []}, True),
        ("has(self.values) && size(self.values) > 0", {"operator": "In"}, False),
    ],
)
def test_cel_python_supports_what_our_rules_use(expression: str, self: Any, expected: bool) -> None:
    assert cel_program(expression).evaluate({"self": celpy.json_to_cel(self)}) == celpy.celtypes.BoolType(expected)


def test_every_rule_compiles_and_explains_itself() -> None:
    rules = [(path, rule) for path, item in user_nodes() for rule in item.get("x-kubernetes-validations", [])]
    assert len(rules) == 4
    for path, rule in rules:
        cel_program(rule["rule"])
        assert rule.get("message", "").strip(), f"rule at {path} has no message for the user"
        assert rule.get("reason", "FieldValueInvalid") in {"FieldValueInvalid", "FieldValueRequired",
                                                          "FieldValueForbidden"}


IN_NEEDS_VALUES = "values must not be empty when operator is In or NotIn"
EXISTS_TAKES_NONE = "values must be empty when operator is Exists or DoesNotExist"
ROLE_PREFIX = ("a role glob matches the whole role ARN: start it with arn: (or *), e.g. "
               "arn:aws:iam::123456789012:role/cld_*-cluster_node_role")
REPOSITORY_PREFIX = ("a repository glob matches the whole repository ARN: start it with arn: (or *), e.g. "
                     "arn:aws:ecr:*:123456789012:repository/ml/*")
FIRST = "spec.namespaceSelector.matchExpressions[0]"

# (id, mutation, the rule violations, whether the operator refuses it too)
CEL_CASES = [
    ("in-without-values", expression(key="team", operator="In"), [f"{FIRST}: {IN_NEEDS_VALUES}"], True),
    ("in-with-empty-values", expression(key="team", operator="In", values=[]), [f"{FIRST}: {IN_NEEDS_VALUES}"],
     True),
    ("notin-without-values", expression(key="team", operator="NotIn"), [f"{FIRST}: {IN_NEEDS_VALUES}"], True),
    ("exists-with-values", expression(key="team", operator="Exists", values=["ml"]),
     [f"{FIRST}: {EXISTS_TAKES_NONE}"], True),
    ("doesnotexist-with-values", expression(key="team", operator="DoesNotExist", values=["ml"]),
     [f"{FIRST}: {EXISTS_TAKES_NONE}"], True),
    # A glob that cannot match an ARN would silently permit nothing; the operator would take it as written.
    ("role-glob-without-arn", set_field("roles", value=["cld_*-cluster_node_role"]),
     [f"spec.roles[0]: {ROLE_PREFIX}"], False),
    ("repository-glob-without-arn", set_field("repositories", value=["*", "ml/*"]),
     [f"spec.repositories[1]: {REPOSITORY_PREFIX}"], False),
]


@pytest.mark.parametrize(("mutate", "expected", "operator_refuses"), [case[1:] for case in CEL_CASES],
                         ids=[case[0] for case in CEL_CASES])
def test_cel_rules_refuse_a_bad_policy_with_their_message(mutate: Mutation, expected: list[str],
                                                          operator_refuses: bool) -> None:
    document = base_policy()
    mutate(document["spec"])
    assert cel_violations(document, root_schema()) == expected
    assert schema_errors(document) == []  # only the rules stop these
    assert admission_errors(document) == expected
    assert (operator_error(document) is not None) == operator_refuses


def test_a_selector_of_only_valid_requirements_passes_every_rule() -> None:
    selector = WITH_EXPRESSIONS["spec"]["namespaceSelector"]
    assert cel_violations(selector, node(".spec.namespaceSelector")) == []


# --- status -------------------------------------------------------------------------------------------------


def test_status_the_operator_writes_is_accepted() -> None:
    document = base_policy()
    document["status"] = {
        "observedGeneration": 2,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "InvalidPolicy", "observedGeneration": 2,
             "message": "spec.roles[1]: 'a b' is not a glob of ARN characters and '*'; this policy permits nothing.",
             "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "Stalled", "status": "True", "reason": "InvalidPolicy"},
        ],
    }
    assert schema_errors(document, strict=True) == []
