"""The operator's image is named in one place per install path, and every path runs the same release: the kustomize
base's `images:` entry (the tag), the chart's appVersion (its default tag), and the project's version agree, and no
overlay names an image of its own. The Argo CD and Flux examples override the image the way a user would
(test_argocd.py, test_flux.py). No registry serves that image, so both install guides begin by building it."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.manifests import CHART, DEPLOY, IMAGE, ROOT, VERSION, Obj, helm_render, kustomize
from tests.deploy.monitoring import HELM_MONITORING

# The base and every overlay a user may apply (a new overlay is covered at once).
KUSTOMIZATIONS = ("base", *sorted(f"overlays/{path.parent.name}"
                                  for path in (DEPLOY / "overlays").glob("*/kustomization.yaml")))


def _images(objects: list[Obj]) -> set[str]:
    found: set[str] = set()
    for obj in objects:
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            found |= {c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])}
    return found


def test_the_base_tag_the_chart_and_the_project_name_one_version() -> None:
    base = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    assert base["images"] == [{"name": IMAGE, "newTag": VERSION}]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == VERSION
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert (values["image"]["repository"], values["image"]["tag"]) == (IMAGE, ""), "the tag defaults to appVersion"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_kustomization_runs_the_bases_image(directory: str) -> None:
    assert _images(kustomize(directory)) == {f"{IMAGE}:{VERSION}"}
    if directory != "base":
        assert "images" not in yaml.safe_load((DEPLOY / directory / "kustomization.yaml").read_text()), (
            "only deploy/base names the image; users override it in their own overlay")


@pytest.mark.parametrize("values", [None, HELM_MONITORING], ids=["defaults", "monitoring"])
def test_the_chart_runs_the_same_image(values: Obj | None) -> None:
    assert _images(helm_render(values)) == {f"{IMAGE}:{VERSION}"}


def test_the_install_guide_shows_this_releases_image() -> None:
    # deploy/README.md's build, kustomize and Helm examples: a version bump must update them too.
    text = (DEPLOY / "README.md").read_text()
    tags = set(re.findall(r"ecr-access-operator:([0-9][0-9A-Za-z.+-]*[0-9A-Za-z])", text))
    tags |= set(re.findall(r'newTag: "([^"]+)"', text))
    assert tags == {VERSION}


def test_the_readmes_install_steps_begin_by_building_and_pushing_the_image() -> None:
    """The manifests name `ecr-access-operator:<version>`, which no registry serves: a newcomer who
    follows the README's steps in order must build and push it from the Dockerfile before anything
    else, and then point the install at it, in kustomize or in Helm."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Install in a cluster\n", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", section, re.MULTILINE | re.DOTALL)
    (number, first), (_, second) = steps[0], steps[1]
    assert number == "0", "a step before the first one of the other steps: the image comes first"
    for words in ("Dockerfile", "docker build", "docker push", "OCI", "`images:`", "`image.repository`",
                  "`image.tag`"):
        assert words in first, f"the README's first install step does not say {words}"
    assert set(re.findall(r"ecr-access-operator:([0-9][0-9A-Za-z.+-]*[0-9A-Za-z])", first)) == {VERSION}
    assert "operator-policy.json" in second, "then the AWS role, as before"
    assert re.findall(r"\]\((?!#)[A-Za-z][A-Za-z0-9+.-]*:", readme) == [], "the README links only within the repository"
