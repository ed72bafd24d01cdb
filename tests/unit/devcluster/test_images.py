"""The names the dev cluster's nodes hold the local builds under are the names the operator's
install and the WebSocketService default ask for, so both run there unchanged."""

from __future__ import annotations

import yaml

from tests.conftest import ROOT
from wsfleet_devcluster import images
from wsfleet_operator.model import DEFAULT_IMAGE


def test_the_workload_default_image_is_the_published_name() -> None:
    assert images.published_name("workload") == DEFAULT_IMAGE


def test_the_operator_install_runs_the_published_operator_image() -> None:
    path = ROOT / "deploy" / "operator" / "deployment" / "deployment.yaml"
    deployment = next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == images.published_name("operator")
    # a tag (not :latest) without a pull policy means IfNotPresent: a node that holds it never pulls
    assert container.get("imagePullPolicy", "IfNotPresent") == "IfNotPresent"
    assert not container["image"].endswith(":latest")
