"""The CRD is the API's first line of defence: what it rejects, a user sees at `kubectl apply` time.

There is no kube-apiserver here, so these tests check the CRD as the API server would, one layer at a time:
- its shape (names, versions, printer columns) and that its schema is *structural* and documented everywhere,
  so that the API server accepts it and `kubectl explain` teaches every field;
- the OpenAPI part of the schema, with `jsonschema` standing in for the API server's validator;
- the `x-kubernetes-validations` CEL rules, with cel-python standing in for cel-go.
"""

from __future__ import annotations

import copy
import functools
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

# The 12 pull actions of the reference procedure, pinned against the procedure itself in test_model.
from ecr_access.model import REFERENCE_ACTIONS

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "ecraccessgrants.yaml"
# The example grants; examples/ also holds policies (EcrGrantPolicy), which tests/unit/test_policy_crd.py checks.
# The files of example grants alone; examples/central-registry.yaml (an EcrAccessAccount and a grant) is
# tests/deploy/test_account_crd.py's.
EXAMPLE_PATHS = sorted(path for path in (ROOT / "examples").glob("*.yaml")
                       if [doc.get("kind") for doc in yaml.safe_load_all(path.read_text()) if doc]
                       == ["EcrAccessGrant"])


Schema = dict[str, Any]


# --- loading ------------------------------------------------------------------------------------------------


@functools.cache
def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def root_schema() -> Schema:
    return load_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def load_example(path: Path) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 1, f"{path.name} must hold exactly one document, found {len(documents)}"
    return documents[0]


def example_ids() -> list[str]:
    return [path.name for path in EXAMPLE_PATHS]


def base_grant() -> dict[str, Any]:
    """A fresh copy of the annotated example, the starting point of every bad-spec case."""
    return copy.deepcopy(load_example(ROOT / "examples" / "ml-images.yaml"))


# --- walking the schema -------------------------------------------------------------------------------------


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every node of a schema with a kubectl-style path: `.spec.repositories[].name`."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")


def user_nodes() -> Iterator[tuple[str, Schema]]:
    # metadata is the API server's ObjectMeta: the CRD may only restrict name/generateName there, and even a
    # description makes the API server reject the CRD ("must not specify anything other than name and
    # generateName"). kubectl explain shows the standard ObjectMeta documentation for it instead.
    return ((path, node) for path, node in walk(root_schema()) if not path.startswith(".metadata"))


def field_path(parts: Any) -> str:
    """`['spec', 'repositories', 0, 'name']` -> `spec.repositories[0].name`, as the API server words it."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


# --- the OpenAPI part, through jsonschema -------------------------------------------------------------------


def to_json_schema(node: Any, *, strict: bool) -> Any:
    """OpenAPI v3 (the Kubernetes subset) -> JSON Schema draft 4.

    x-kubernetes-* extensions and `nullable` have no JSON Schema meaning and are dropped; `format` is left to
    the API server (it is loose there too). A `set` list must not repeat items, which is `uniqueItems`. With
    `strict`, unknown fields are errors, as under kubectl's default `--validate=strict`; without it they are
    allowed here and pruned by the API server (see `prune`).
    """
    if isinstance(node, list):
        return [to_json_schema(item, strict=strict) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {
        key: to_json_schema(value, strict=strict)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key not in ("nullable", "format")
    }
    if node.get("x-kubernetes-list-type") == "set":
        converted["uniqueItems"] = True
    if strict and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        converted["additionalProperties"] = False
    return converted


@functools.cache
def validator(*, strict: bool) -> jsonschema.Draft4Validator:
    schema = to_json_schema(root_schema(), strict=strict)
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


def schema_errors(document: dict[str, Any], *, strict: bool = False) -> list[str]:
    errors = validator(strict=strict).iter_errors(document)
    return sorted(f"{field_path(error.absolute_path)}: {error.message}" for error in errors)


def prune(value: Any, schema: Schema) -> Any:
    """Drop fields the schema does not know, as the API server does to every object it stores."""
    if isinstance(value, dict) and "properties" in schema:
        return {
            key: prune(item, schema["properties"][key]) for key, item in value.items() if key in schema["properties"]
        }
    if isinstance(value, list) and "items" in schema:
        return [prune(item, schema["items"]) for item in value]
    return value


# --- the CEL rules, through cel-python ----------------------------------------------------------------------


@functools.cache
def cel_program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


def cel_violations(value: Any, schema: Schema, parts: tuple[Any, ...] = ()) -> list[str]:
    """Evaluate every x-kubernetes-validations rule with `self` bound to the value at its node.

    Returns `path: message` for each failing rule, as the API server reports it on a create: absent fields and
    transition rules (`oldSelf`) run no rules.
    """
    found = []
    for rule in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"]:  # a transition rule runs only on updates (there is no old value here)
            continue
        result = cel_program(rule["rule"]).evaluate({"self": celpy.json_to_cel(value)})
        if not isinstance(result, celpy.celtypes.BoolType):
            raise AssertionError(f"rule {rule['rule']!r} at {field_path(parts)} gave {result!r}, not a bool")
        if not result:
            found.append(f"{field_path(parts)}: {rule['message']}")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in schema.get("properties", {}):
                found += cel_violations(item, schema["properties"][key], (*parts, key))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += cel_violations(item, schema["items"], (*parts, index))
    return found


def admission_errors(document: dict[str, Any]) -> list[str]:
    """What `kubectl apply` would report without strict field validation: schema errors, then CEL errors."""
    return schema_errors(document) + cel_violations(prune(document, root_schema()), root_schema())


# --- the CRD's shape ----------------------------------------------------------------------------------------


def test_names_follow_the_api_contract() -> None:
    crd = load_crd()
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "ecraccessgrants.ecraccess.io"
    assert crd["spec"]["group"] == "ecraccess.io"
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert names["kind"] == "EcrAccessGrant"
    assert names["plural"] == "ecraccessgrants"
    assert names["singular"] == "ecraccessgrant"
    assert names["shortNames"] == ["ecrgrant", "eag", "ecrgrants"]
    assert names["categories"] == ["ecraccess"]


def test_one_served_storage_version_with_a_status_subresource() -> None:
    versions = load_crd()["spec"]["versions"]
    assert [(v["name"], v["served"], v["storage"]) for v in versions] == [("v1alpha1", True, True)]
    # Without the status subresource, the operator's status writes would bump metadata.generation.
    assert versions[0]["subresources"] == {"status": {}}


def test_printer_columns_show_readiness_role_and_repositories() -> None:
    columns = load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert default == [
        ("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        ("Reason", '.status.conditions[?(@.type=="Ready")].reason'),
        ("Role", ".status.roleArn"),
        ("Repositories", ".status.readyRepositories"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    assert {c["name"]: c["type"] for c in columns}["Age"] == "date"
    wide = {c["name"]: (c["jsonPath"], c["priority"]) for c in columns if c.get("priority")}
    assert wide == {"Suspend": (".spec.suspend", 1)}


def test_printer_columns_point_at_fields_the_schema_has() -> None:
    # A column whose path the schema lacks prints <none> forever, a typo noticed only in production.
    nodes = dict(walk(root_schema()))
    for column in load_crd()["spec"]["versions"][0]["additionalPrinterColumns"]:
        path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"])
        if path.startswith(".metadata."):
            continue
        assert path in nodes, f"printer column {column['name']} reads {column['jsonPath']}, not in the schema"


def test_kubectl_reads_the_crd_and_the_examples_as_the_tests_do() -> None:
    # `kubectl create --dry-run=client` needs a server for discovery, which these machines do not have;
    # `--local` commands decode the files without one. kubectl's YAML reader (Go, YAML 1.1) must see the same
    # objects as PyYAML here, or these tests would check something other than what users apply.
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    paths = [CRD_PATH, *EXAMPLE_PATHS]
    command = [kubectl, "annotate", "--local", "-o", "yaml", "ecraccess.io/checked=true"]
    for path in paths:
        command += ["-f", str(path)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=30, check=False, env={"KUBECONFIG": "/dev/null"}
    )
    assert result.returncode == 0, result.stderr
    decoded = list(yaml.safe_load_all(result.stdout))
    assert len(decoded) == len(paths)
    for path, document in zip(paths, decoded, strict=True):
        annotations = document["metadata"].pop("annotations")
        assert annotations == {"ecraccess.io/checked": "true"}
        assert document == yaml.safe_load(path.read_text()), f"kubectl reads {path.name} differently"


# --- the schema is structural, bounded and documented -------------------------------------------------------


def test_schema_is_structural() -> None:
    untyped = [
        path or "<root>"
        for path, node in walk(root_schema())
        if "type" not in node
        and not node.get("x-kubernetes-int-or-string")
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == [], f"schema nodes without a type: {untyped}"
    forbidden = [
        f"{path}: {key}"
        for path, node in walk(root_schema())
        for key in ("$ref", "additionalProperties", "oneOf", "anyOf", "allOf", "not")
        if key in node
    ]
    assert forbidden == [], f"keywords a structural schema may not use here: {forbidden}"
    # The API server refuses a CRD that says anything about metadata beyond name/generateName.
    assert root_schema()["properties"]["metadata"] == {"type": "object"}


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    missing = [path or "<root>" for path, node in user_nodes() if not str(node.get("description", "")).strip()]
    assert missing == [], f"fields kubectl explain would show without a description: {missing}"


def test_every_string_and_list_is_bounded() -> None:
    # The API server sizes CEL cost estimates from maxLength/maxItems; unbounded ones are assumed ~3 MB.
    unbounded = [
        path
        for path, node in user_nodes()
        if (node.get("type") == "string" and "maxLength" not in node and "enum" not in node)
        or (node.get("type") == "array" and "maxItems" not in node)
    ]
    assert unbounded == [], f"strings or lists without maxLength/maxItems: {unbounded}"


def test_defaults_are_those_of_the_api_contract() -> None:
    spec = root_schema()["properties"]["spec"]
    fields = spec["properties"]
    assert spec["required"] == ["role", "repositories"]
    assert (fields["managedPolicy"]["enum"], fields["managedPolicy"]["default"]) == (
        ["ReadOnly", "PullOnly", "None"],
        "ReadOnly",
    )
    assert (fields["deletionPolicy"]["enum"], fields["deletionPolicy"]["default"]) == (
        ["Delete", "Retain"],
        "Delete",
    )
    assert fields["suspend"]["default"] is False
    # Absent region/registryId/actions mean "the operator's region/account" and "the reference actions": a
    # schema default would write today's values into every stored object.
    repository = fields["repositories"]["items"]["properties"]
    assert "default" not in repository["region"]
    assert "default" not in repository["registryId"]
    assert "default" not in fields["actions"]
    assert (fields["repositories"]["minItems"], fields["repositories"]["maxItems"]) == (1, 100)
    assert fields["actions"]["x-kubernetes-list-type"] == "set"


def test_descriptions_teach_the_defaults() -> None:
    fields = root_schema()["properties"]["spec"]["properties"]
    missing = [action for action in REFERENCE_ACTIONS if action not in fields["actions"]["description"]]
    assert missing == [], f"spec.actions description does not list the default actions {missing}"
    role = fields["role"]["properties"]
    assert "-cluster_node_role" in role["anyscaleCloudId"]["description"]
    assert "anyscale cloud setup" in role["anyscaleCloudId"]["description"]
    assert "--instance-iam-role-id" in role["name"]["description"]
    assert "quote" in fields["repositories"]["items"]["properties"]["registryId"]["description"].lower()
    assert "EcrAccessRetained" in fields["deletionPolicy"]["description"]


def test_cloud_id_limit_keeps_the_derived_role_name_within_iam_limits() -> None:
    cloud_id = root_schema()["properties"]["spec"]["properties"]["role"]["properties"]["anyscaleCloudId"]
    role = root_schema()["properties"]["spec"]["properties"]["role"]["properties"]["name"]
    assert cloud_id["maxLength"] + len("-cluster_node_role") == role["maxLength"] == 64


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = root_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    # A list-map key must be required, or the API server rejects the CRD.
    assert set(item["required"]) >= {"type", "status"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


# --- examples -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_PATHS, ids=example_ids())
def test_example_passes_schema_and_cel_rules(path: Path) -> None:
    grant = load_example(path)
    assert (grant["apiVersion"], grant["kind"]) == ("ecraccess.io/v1alpha1", "EcrAccessGrant")
    assert grant["metadata"]["namespace"] == "default"
    assert schema_errors(grant, strict=True) == []
    assert cel_violations(grant, root_schema()) == []


def test_examples_use_what_the_sandbox_seeds() -> None:
    # The sandbox (account 123456789012, us-west-2) seeds these roles and repositories; an example naming
    # anything else would never become Ready in `make demo`.
    grants = {path.name: load_example(path) for path in EXAMPLE_PATHS}
    assert set(grants) >= {"ml-images.yaml", "registered-role.yaml"}
    ml_images = grants["ml-images.yaml"]
    assert ml_images["metadata"]["name"] == "ml-images"
    assert ml_images["spec"]["role"] == {"anyscaleCloudId": "cld_sandbox123"}
    assert ml_images["spec"]["managedPolicy"] == "ReadOnly"
    assert ml_images["spec"]["repositories"] == [
        {"name": "ml/trainer"},
        {"arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/serving"},
    ]
    registered = grants["registered-role.yaml"]
    assert registered["metadata"]["name"] == "registered-role"
    assert registered["spec"] == {
        "role": {"name": "anyscale-registered-node-role"},
        "managedPolicy": "PullOnly",
        "repositories": [{"name": "ml/serving", "region": "us-west-2", "registryId": "123456789012"}],
        "actions": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "deletionPolicy": "Retain",
    }


def test_status_of_the_api_contract_is_accepted() -> None:
    # If the schema rejected what the operator writes, every status patch would fail and Ready never show.
    grant = base_grant()
    grant["status"] = {
        "observedGeneration": 3,
        "roleArn": "arn:aws:iam::123456789012:role/cld_sandbox123-cluster_node_role",
        "managedPolicyArn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
        "managedPolicyOwned": True,
        "readyRepositories": "1/2",
        "repositories": [
            {
                "arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/trainer",
                "sid": "EcrAccessGrant0123abcd0123456789abcdef",
                "ready": True,
                "reason": "Applied",
                "message": "",
            },
            {
                "arn": "arn:aws:ecr:us-west-2:123456789012:repository/ml/serving",
                "sid": "",
                "ready": False,
                "reason": "RepositoryNotFound",
                "message": "Repository ml/serving does not exist in us-west-2; create it or remove it.",
            },
        ],
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "RepositoryNotFound",
                "message": "Repository ml/serving does not exist in us-west-2; create it or remove it.",
                "observedGeneration": 3,
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            },
            {"type": "Stalled", "status": "True"},
        ],
    }
    assert schema_errors(grant, strict=True) == []


# --- the OpenAPI rules reject bad specs ---------------------------------------------------------------------


def set_field(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        target = spec
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def delete_field(*path: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        target = spec
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


def role_arn(arn: str) -> Callable[[dict[str, Any]], None]:
    return set_field("role", value={"arn": arn})


def repository(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return set_field("repositories", value=[fields])


SCHEMA_CASES = [
    ("missing-role", delete_field("role"), "spec: 'role' is a required property"),
    ("missing-repositories", delete_field("repositories"), "spec: 'repositories' is a required property"),
    ("empty-repositories", set_field("repositories", value=[]), "spec.repositories: [] should be non-empty"),
    (
        "101-repositories",
        set_field("repositories", value=[{"name": f"repo-{i:03d}"} for i in range(101)]),
        "spec.repositories: ",
    ),
    ("role-arn-bad-partition", role_arn("arn:aws-xx:iam::123456789012:role/node"), "spec.role.arn: "),
    ("role-arn-no-account", role_arn("arn:aws:iam:::role/node"), "spec.role.arn: "),
    ("role-arn-user", role_arn("arn:aws:iam::123456789012:user/node"), "spec.role.arn: "),
    ("role-arn-empty-path-segment", role_arn("arn:aws:iam::123456789012:role/a//node"), "spec.role.arn: "),
    ("role-arn-space-in-path", role_arn("arn:aws:iam::123456789012:role/my path/node"), "spec.role.arn: "),
    ("role-name-65-chars", set_field("role", value={"name": "r" * 65}), "spec.role.name: "),
    ("role-name-space", set_field("role", value={"name": "node role"}), "spec.role.name: "),
    ("role-name-empty", set_field("role", value={"name": ""}), "spec.role.name: "),
    (
        "cloud-id-prefix",
        set_field("role", value={"anyscaleCloudId": "cloud_abc"}),
        "spec.role.anyscaleCloudId: ",
    ),
    (
        "cloud-id-too-long-for-role-name",
        set_field("role", value={"anyscaleCloudId": "cld_" + "a" * 43}),
        "spec.role.anyscaleCloudId: ",
    ),
    ("repo-name-uppercase", repository(name="ML/Trainer"), "spec.repositories[0].name: "),
    ("repo-name-leading-slash", repository(name="/ml/trainer"), "spec.repositories[0].name: "),
    ("repo-name-double-slash", repository(name="a//b"), "spec.repositories[0].name: "),
    ("repo-name-one-char", repository(name="a"), "spec.repositories[0].name: "),
    (
        "region-underscores",
        repository(name="ml/trainer", region="us_west_2"),
        "spec.repositories[0].region: ",
    ),
    ("region-no-number", repository(name="ml/trainer", region="us-west"), "spec.repositories[0].region: "),
    (
        "registry-11-digits",
        repository(name="ml/trainer", registryId="12345678901"),
        "spec.repositories[0].registryId",
    ),
    (
        "registry-as-integer",
        repository(name="ml/trainer", registryId=123456789012),
        "spec.repositories[0].registryId: 123456789012 is not of type 'string'",
    ),
    (
        "repo-arn-iam-service",
        repository(arn="arn:aws:iam:us-west-2:123456789012:repository/ml/trainer"),
        "spec.repositories[0].arn: ",
    ),
    (
        "repo-arn-bad-region",
        repository(arn="arn:aws:ecr:uswest2:123456789012:repository/ml/trainer"),
        "spec.repositories[0].arn: ",
    ),
    ("action-other-service", set_field("actions", value=["s3:GetObject"]), "spec.actions[0]: "),
    ("action-with-space", set_field("actions", value=["ecr:Get Image"]), "spec.actions[0]: "),
    (
        "action-repeated",
        set_field("actions", value=["ecr:BatchGetImage", "ecr:BatchGetImage"]),
        "spec.actions: ['ecr:BatchGetImage', 'ecr:BatchGetImage'] has non-unique elements",
    ),
    (
        "action-65-entries",
        set_field("actions", value=[f"ecr:Get{'X' * (i // 26)}{chr(65 + i % 26)}" for i in range(65)]),
        "spec.actions: ",
    ),
    (
        "managed-policy-full-access",
        set_field("managedPolicy", value="FullAccess"),
        "spec.managedPolicy: 'FullAccess' is not one of ['ReadOnly', 'PullOnly', 'None']",
    ),
    (
        "deletion-policy-orphan",
        set_field("deletionPolicy", value="Orphan"),
        "spec.deletionPolicy: 'Orphan' is not one of ['Delete', 'Retain']",
    ),
    ("suspend-yes", set_field("suspend", value="yes"), "spec.suspend: 'yes' is not of type 'boolean'"),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [case[1:] for case in SCHEMA_CASES], ids=[case[0] for case in SCHEMA_CASES]
)
def test_schema_rejects_bad_spec_naming_the_field(mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    grant = base_grant()
    mutate(grant["spec"])
    errors = schema_errors(grant)
    assert any(error.startswith(expected) for error in errors), f"expected {expected!r}, got {errors}"


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:role/node",
        "arn:aws-cn:iam::123456789012:role/node",
        "arn:aws-us-gov:iam::123456789012:role/node",
        "arn:aws:iam::123456789012:role/anyscale/node",
        "arn:aws:iam::123456789012:role/a/b.c/node+=,.@-_",
    ],
)
def test_schema_accepts_role_arns_in_every_supported_partition_and_path(arn: str) -> None:
    grant = base_grant()
    grant["spec"]["role"] = {"arn": arn}
    assert schema_errors(grant) == []


def test_unknown_role_field_is_rejected_by_strict_validation_and_pruned_otherwise() -> None:
    # kubectl's default --validate=strict makes the API server reject unknown fields. Other clients (default
    # fieldValidation=Warn) get a warning and the field is pruned, like any field of a structural schema.
    grant = base_grant()
    grant["spec"]["role"]["roleName"] = "node"
    assert schema_errors(grant, strict=True) == [
        "spec.role: Additional properties are not allowed ('roleName' was unexpected)"
    ]
    assert schema_errors(grant) == []
    assert prune(grant, root_schema())["spec"]["role"] == {"anyscaleCloudId": "cld_sandbox123"}


def test_misspelt_role_alone_is_pruned_and_then_refused_by_the_role_rule() -> None:
    grant = base_grant()
    grant["spec"]["role"] = {"cloudId": "cld_sandbox123"}
    assert admission_errors(grant) == [
        "spec.role: exactly one of role.name, role.arn or role.anyscaleCloudId must be set"
    ]


# --- the CEL rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "self", "expected"),
    [
        ("has(self.a)", {"a": 1}, True),
        ("has(self.a)", {"b": 1}, False),
        ("[true, false, true].filter(x, x).size() == 2", None, True),
        ("self.exists_one(x, x == 1)", [1, 2, 1], False),
        ("self.all(x, x > 0)", [1, 2], True),
        ("self.all(x, self.exists_one(y, y == x))", [{"a": "1", "b": "2"}, {"b": "2", "a": "1"}], False),
    ],
)
def test_cel_python_supports_what_our_rules_use(expression: str, self: Any, expected: bool) -> None:
    # Our stand-in for cel-go must get these right, or the rule tests below would prove nothing.
    assert cel_program(expression).evaluate({"self": celpy.json_to_cel(self)}) == celpy.celtypes.BoolType(expected)


def test_every_rule_compiles_and_explains_itself() -> None:
    rules = [(path, rule) for path, node in user_nodes() for rule in node.get("x-kubernetes-validations", [])]
    assert {path for path, _ in rules} == {".spec.role", ".spec.repositories", ".spec.repositories[]"}
    for path, rule in rules:
        cel_program(rule["rule"])
        assert rule.get("message", "").strip(), f"rule at {path} has no message for the user"
        allowed = {"FieldValueInvalid", "FieldValueRequired", "FieldValueDuplicate", "FieldValueForbidden"}
        assert rule.get("reason", "FieldValueInvalid") in allowed


ROLE_RULE = "spec.role: exactly one of role.name, role.arn or role.anyscaleCloudId must be set"
NEITHER = "a repository needs either name (with optional region and registryId) or arn"
BOTH = "a repository takes either name or arn, not both"
ARN_WITH_LOCATION = "region and registryId go with name only; a repository arn already names its region and registry"
DUPLICATE = "spec.repositories: repositories must not list the same repository twice"
SERVING_ARN = "arn:aws:ecr:us-west-2:123456789012:repository/ml/serving"

CEL_CASES = [
    ("two-roles", set_field("role", value={"name": "node", "anyscaleCloudId": "cld_x1"}), [ROLE_RULE]),
    (
        "three-roles",
        set_field("role", value={"name": "n", "arn": "arn:aws:iam::123456789012:role/n", "anyscaleCloudId": "cld_1"}),
        [ROLE_RULE],
    ),
    ("no-role", set_field("role", value={}), [ROLE_RULE]),
    ("name-and-arn", repository(name="ml/serving", arn=SERVING_ARN), [f"spec.repositories[0]: {BOTH}"]),
    (
        "arn-and-region",
        repository(arn=SERVING_ARN, region="us-west-2"),
        [f"spec.repositories[0]: {ARN_WITH_LOCATION}"],
    ),
    (
        "arn-and-registry",
        repository(arn=SERVING_ARN, registryId="123456789012"),
        [f"spec.repositories[0]: {ARN_WITH_LOCATION}"],
    ),
    ("neither-name-nor-arn", repository(region="us-west-2"), [f"spec.repositories[0]: {NEITHER}"]),
    (
        "duplicate-names",
        set_field("repositories", value=[{"name": "ml/trainer"}, {"name": "ml/serving"}, {"name": "ml/trainer"}]),
        [DUPLICATE],
    ),
    (
        "duplicate-arns",
        set_field("repositories", value=[{"arn": SERVING_ARN}, {"arn": SERVING_ARN}]),
        [DUPLICATE],
    ),
    (
        "duplicate-in-another-key-order",
        set_field(
            "repositories",
            value=[
                {"name": "ml/trainer", "region": "us-west-2"},
                {"region": "us-west-2", "name": "ml/trainer"},
            ],
        ),
        [DUPLICATE],
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [case[1:] for case in CEL_CASES], ids=[case[0] for case in CEL_CASES])
def test_cel_rules_reject_bad_spec_with_their_message(
    mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    grant = base_grant()
    mutate(grant["spec"])
    assert cel_violations(grant, root_schema()) == expected
    # The OpenAPI part lets these through: only the rules stop a spec the operator would refuse.
    assert schema_errors(grant) == []


def test_only_exact_duplicates_are_caught_by_the_schema() -> None:
    # The same repository spelled by name and by ARN, or with and without the operator's region, is a
    # duplicate only the operator can see (it alone knows its region and account); it reports it as Stalled.
    grant = base_grant()
    grant["spec"]["repositories"] = [
        {"name": "ml/serving"},
        {"name": "ml/serving", "region": "us-west-2"},
        {"arn": SERVING_ARN},
    ]
    assert admission_errors(grant) == []
