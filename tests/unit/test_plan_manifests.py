"""`manifests`: the files `plan` and `adopt` read, taken as the API server would hold them."""

from __future__ import annotations

import io
import pathlib
from typing import Any

import pytest
import yaml

from ecr_access import manifests
from ecr_access.model import GrantKey

GRANT = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessGrant", "metadata": {"name": "g"},
         "spec": {"role": {"name": "r"}, "repositories": [{"name": "ml/a"}]}}
POLICY = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrGrantPolicy", "metadata": {"name": "p"}, "spec": {}}
ACCOUNT = {"apiVersion": "ecraccess.io/v1alpha1", "kind": "EcrAccessAccount", "metadata": {"name": "a"}, "spec": {}}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-ml", "labels": {"team": "ml"}}}


def write(tmp_path: pathlib.Path, name: str, *documents: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def test_every_kind_the_operator_reads_is_keyed_as_its_indexes_key_it(tmp_path: pathlib.Path) -> None:
    found = manifests.read([write(tmp_path, "all.yaml", GRANT, None, POLICY, ACCOUNT, NAMESPACE)])
    assert list(found.grants) == [GrantKey("default", "g")]  # no namespace: kubectl's default
    assert found.grants[GrantKey("default", "g")]["metadata"]["namespace"] == "default"
    assert (list(found.policies), list(found.accounts), list(found.namespaces)) == (["p"], ["a"], ["team-ml"])


def test_a_list_a_directory_and_standard_input_are_read(tmp_path: pathlib.Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    write(directory, "1.yaml", {"apiVersion": "v1", "kind": "List", "items": [POLICY]})
    (directory / "README.md").write_text("not a manifest")
    monkeypatch.setattr("sys.stdin", io.StringIO(yaml.safe_dump(GRANT)))
    found = manifests.read([str(directory), "-"])
    assert list(found.policies) == ["p"] and list(found.grants) == [GrantKey("default", "g")]


@pytest.mark.parametrize(("documents", "message"), [
    ([GRANT, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}],
     "document 2: ConfigMap (v1) is not an object the operator reads"),
    ([{**GRANT, "apiVersion": "ecraccess.io/v1"}], "document 1: EcrAccessGrant (ecraccess.io/v1) is not an object"),
    (["just a string"], "document 1: not an object"),
    ([{**GRANT, "metadata": {}}], "document 1: the EcrAccessGrant has no metadata.name"),
    ([{**POLICY, "metadata": {"name": "p", "namespace": "x"}}], "a EcrGrantPolicy is cluster-scoped"),
    ([GRANT, GRANT], "document 2: EcrAccessGrant default/g appears twice"),
    ([{"apiVersion": "v1", "kind": "List", "items": [GRANT, NAMESPACE, {"kind": "Secret"}]}],
     "document 1, item 3: Secret (no apiVersion)"),
])
def test_a_document_it_cannot_take_is_an_error_naming_the_file_and_document(
        tmp_path: pathlib.Path, documents: list[Any], message: str) -> None:
    path = write(tmp_path, "bad.yaml", *documents)
    with pytest.raises(manifests.ManifestError) as raised:
        manifests.read([path])
    assert str(raised.value).startswith(path) and message in str(raised.value)


def test_a_spec_the_operator_would_refuse_is_read_all_the_same(tmp_path: pathlib.Path) -> None:
    found = manifests.read([write(tmp_path, "g.yaml", {**GRANT, "spec": {"role": 5}})])
    assert found.grants[GrantKey("default", "g")]["spec"] == {"role": 5}


def test_unreadable_files_and_yaml_are_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(manifests.ManifestError, match="cannot read it"):
        manifests.read([str(tmp_path / "missing.yaml")])
    (tmp_path / "broken.yaml").write_text("a: [b\n")
    with pytest.raises(manifests.ManifestError, match="not YAML"):
        manifests.read([str(tmp_path / "broken.yaml")])
