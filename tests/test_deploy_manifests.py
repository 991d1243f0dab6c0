"""The deployment files against the code: the kustomization renders (with `kubectl kustomize`
when it is on PATH, else from the YAML), every setting it or compose sets is one the settings
class reads, the probes answer, the commands exist, and every container runs as the security
rules say, from an image pinned by tag."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from identity.secret_files import SECRET_SETTINGS
from identity.settings import Settings
from tests.helpers.manifests import (
    BASE,
    DEPLOY,
    KUBECTL,
    KUBERNETES,
    PRODUCTION,
    Manifest,
    check_command,
    compose,
    containers,
    identity_invocations,
    kubectl_render,
    one,
    pod_specs,
    render,
)

HOW = [
    "yaml",
    pytest.param("kubectl", marks=pytest.mark.skipif(KUBECTL is None, reason="no kubectl")),
]
KINDS = {
    "ConfigMap": 1, "Deployment": 2, "Job": 1, "Service": 1, "Ingress": 1,
    "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1, "NetworkPolicy": 1,
}  # fmt: skip
DEV_ONLY = {"notify_file"}  # README: never in production (the file holds the secrets)
SECRETS_MOUNT = "/run/secrets/identity/"
FILE_SETTINGS = {f"{name}_file" for name in SECRET_SETTINGS}


@pytest.fixture(scope="module", params=HOW)
def base(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(BASE, request.param)


def setting_names() -> set[str]:
    return set(Settings.model_fields) | FILE_SETTINGS


def secret_template() -> Manifest:
    loaded: Manifest = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    return loaded


def test_the_base_renders_every_kind_and_no_secret(base: list[Manifest]) -> None:
    kinds: dict[str, int] = {}
    for manifest in base:
        kinds[manifest["kind"]] = kinds.get(manifest["kind"], 0) + 1
    assert kinds == KINDS  # no Secret: applying the base never overwrites the real one


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl")
@pytest.mark.parametrize("entry", [DEPLOY, KUBERNETES])
def test_the_entry_points_render_the_base(entry: Path) -> None:
    assert kubectl_render(entry) == kubectl_render(BASE)


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl")
def test_the_production_overlay_renders_on_the_base() -> None:
    production = kubectl_render(PRODUCTION)
    assert {m["metadata"].get("namespace") for m in production if m["kind"] != "Namespace"} == {
        "identity"
    }
    check_workloads(production)
    settings = one(production, "ConfigMap")["data"]
    assert settings["IDENTITY_BASE_URL"] == "https://id.isv.example.cn"
    assert len(settings) == len(one(kubectl_render(BASE), "ConfigMap")["data"])  # merged


def test_the_configmap_holds_every_setting_and_the_template_every_secret() -> None:
    data = one(render(BASE, "yaml"), "ConfigMap")["data"]
    names = {key.removeprefix("IDENTITY_").lower() for key in data if key.startswith("IDENTITY_")}
    assert names <= setting_names()
    plain = set(Settings.model_fields) - set(SECRET_SETTINGS) - DEV_ONLY
    assert plain <= names, plain - names
    assert names >= FILE_SETTINGS, FILE_SETTINGS - names
    secret_keys = set(secret_template()["stringData"])
    for name in [*FILE_SETTINGS, "marketplace_private_key_file"]:
        path = data[f"IDENTITY_{name.upper()}"]
        assert path.startswith(SECRETS_MOUNT) and path.removeprefix(SECRETS_MOUNT) in secret_keys
    assert len(secret_keys) == len(FILE_SETTINGS) + 1  # nothing else is in the template


def test_the_secret_template_holds_no_value() -> None:
    template = secret_template()
    assert template["kind"] == "Secret" and template["metadata"]["name"] == "identity"
    for key, value in template["stringData"].items():
        assert value == "" or "CHANGE-ME" in value, key


def test_every_identity_variable_anywhere_is_a_setting(base: list[Manifest]) -> None:
    named = set(one(base, "ConfigMap")["data"])
    for container in containers(base):
        named |= {variable["name"] for variable in container.get("env", [])}
    for service in compose()["services"].values():
        named |= set(service.get("environment", {}))
    commented = re.findall(r"#\s*(IDENTITY_\w+):", (DEPLOY / "compose.yaml").read_text())
    identity = {n.removeprefix("IDENTITY_").lower() for n in named | set(commented)
                if n.startswith("IDENTITY_")}  # fmt: skip
    assert identity and identity <= setting_names(), identity - setting_names()
    assert {"smtp_host", "smtp_password_file", "sms_sender"} <= identity  # in both forms


def check_workloads(manifests: list[Manifest]) -> None:
    """Every pod and container: non-root 10001, read-only root, no privilege escalation, no
    capabilities, a writable /tmp, requests and limits, the secrets read-only."""
    for manifest, spec in pod_specs(manifests):
        name = manifest["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["automountServiceAccountToken"] is False, name
        scratch = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert mounts["/tmp"]["name"] in scratch, name
            assert mounts[SECRETS_MOUNT.rstrip("/")]["readOnly"] is True, name
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, name


def test_every_container_follows_the_security_rules(base: list[Manifest]) -> None:
    check_workloads(base)


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition("/")[2].partition(":")
    return bool(name) and bool(tag) and tag.split("@")[0] not in ("", "latest")


def test_every_image_is_pinned_by_tag_and_the_job_is_named_after_it(
    base: list[Manifest],
) -> None:
    images = {container["image"] for container in containers(base)}
    assert len(images) == 1 and all(pinned(image) for image in images), images
    tag = images.pop().rpartition(":")[2]
    assert one(base, "Job")["metadata"]["name"] == f"identity-migrate-{tag}"
    assert all(pinned(service["image"]) for service in compose()["services"].values())


def test_every_command_exists_in_the_cli(
    base: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    argvs = [container["command"] for container in containers(base)]
    for service in compose()["services"].values():
        if service["image"].startswith("identity:"):
            argvs.append([*service.get("entrypoint", []), *service["command"]])
    if any("export EXAMPLE_APP_CLIENT_SECRET=" in " ".join(argv) for argv in argvs):
        monkeypatch.setenv("EXAMPLE_APP_CLIENT_SECRET", "set by the script")
    invocations = [args for argv in argvs for args in identity_invocations(argv)]
    assert {args[0] for args in invocations} >= {"serve", "worker", "migrate", "simulate"}
    for args in invocations:
        check_command(args)


def probe_paths(base: list[Manifest]) -> dict[str, str]:
    server = one(base, "Deployment", "identity")["spec"]["template"]["spec"]["containers"][0]
    return {
        probe: server[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }


async def test_the_probes_answer(base: list[Manifest], client: httpx.AsyncClient) -> None:
    paths = probe_paths(base)
    assert paths["readinessProbe"] == "/readyz" and paths["livenessProbe"] == "/healthz"
    healthcheck = " ".join(compose()["services"]["identity"]["healthcheck"]["test"])
    paths["compose"] = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", healthcheck)[0]
    for path in paths.values():
        assert (await client.get(path)).status_code == 200, path


def test_metrics_are_scraped_on_the_metrics_port(base: list[Manifest]) -> None:
    port = int(one(base, "ConfigMap")["data"]["IDENTITY_METRICS_PORT"])
    template = one(base, "Deployment", "identity")["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    assert ports == {"http": 8000, "metrics": port}


def test_the_network_policy_admits_only_the_ingress_and_the_scraper(
    base: list[Manifest],
) -> None:
    policy = one(base, "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "identity"}
    admitted = {
        (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in policy["ingress"]
        for peer in rule["from"]
        for port in rule["ports"]
    }
    assert admitted == {("ingress-nginx", 8000), ("monitoring", 9100)}
    assert all(rule.get("ports") for rule in policy["egress"])  # no rule opens every port
    egress = {port["port"] for rule in policy["egress"] for port in rule["ports"]}
    assert egress == {53, 5432, 443, 587, 465}


def test_requests_under_way_finish_before_the_pod_is_killed(base: list[Manifest]) -> None:
    """`identity serve` stops within IDENTITY_SHUTDOWN_GRACE_SECONDS of SIGTERM; the pod's own
    grace period, after which the kubelet kills it, must be longer."""
    grace = int(one(base, "ConfigMap")["data"]["IDENTITY_SHUTDOWN_GRACE_SECONDS"])
    pod = one(base, "Deployment", "identity")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > grace


def test_the_service_rolls_without_losing_capacity(base: list[Manifest]) -> None:
    deployment = one(base, "Deployment", "identity")["spec"]
    assert "replicas" not in deployment  # the autoscaler's
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert one(base, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2
    selector = one(base, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert selector == deployment["selector"]["matchLabels"]
    ingress = one(base, "Ingress")["spec"]
    assert ingress["tls"][0]["hosts"] == [ingress["rules"][0]["host"]]


def identity_services() -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    return {name: s for name, s in services.items() if s["image"].startswith("identity:")}


def test_compose_migrates_first_and_runs_two_replicas_behind_tls() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["identity", "migrate"]
    for name in ("identity", "worker"):
        needs = services[name]["depends_on"]["migrate"]
        assert needs == {"condition": "service_completed_successfully"}, name
    assert services["identity"]["deploy"]["replicas"] == 2
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert "tls internal" in caddyfile and "health_uri /readyz" in caddyfile
    checked = {name for name, service in services.items() if "healthcheck" in service}
    assert checked == {"postgres", "identity", "proxy", "simulator", "example-app"}


def test_compose_reads_its_secrets_from_files_it_mounts() -> None:
    declared = compose()["secrets"]
    script = (DEPLOY / "compose-secrets.sh").read_text()
    for name, secret in declared.items():
        assert secret["file"] == f"./secrets/{name}" and name in script, name
    for name, service in identity_services().items():
        environment = service["environment"]
        assert service["read_only"] is True and service["user"].startswith("10001:"), name
        assert "/tmp" in service["tmpfs"], name
        assert not {f"IDENTITY_{n.upper()}" for n in SECRET_SETTINGS} & set(environment), name
        for key, value in environment.items():
            if str(value).startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in service["secrets"], (name, key)


def docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.skipif(not docker_compose(), reason="no docker compose")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    """Compose's own reading (no daemon needed), beside placeholder secret files."""
    folder = tmp_path / "deploy"
    (folder / "secrets").mkdir(parents=True)
    shutil.copy(DEPLOY / "compose.yaml", folder)
    for name in compose()["secrets"]:
        (folder / "secrets" / name).write_text("placeholder\n")
    done = subprocess.run(
        ["docker", "compose", "-f", str(folder / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("form", ["kubernetes", "compose"])
def test_the_settings_they_set_are_accepted(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private_key_file: Path
) -> None:
    """The ConfigMap's and compose's settings, with placeholder files at the secret paths,
    pass the settings class: every value parses, SMTP is complete, the keys differ."""
    if form == "kubernetes":
        env, mount = dict(one(render(BASE, "yaml"), "ConfigMap")["data"]), SECRETS_MOUNT
    else:
        env, mount = dict(compose()["services"]["identity"]["environment"]), "/run/secrets/"
    for name in [n for n in os.environ if n.startswith("IDENTITY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for key, value in [(k, str(v)) for k, v in env.items() if k.startswith("IDENTITY_")]:
        if value.startswith(mount):
            file = tmp_path / value.removeprefix(mount)
            pem = file.name.endswith(".pem")
            file.write_text(private_key_file.read_text() if pem else f"{file.name}-placeholder\n")
            value = str(file)
        monkeypatch.setenv(key, value)
    if env.get("IDENTITY_MARKETPLACE_SK_FILE"):  # its placeholder needs the AK of its pair
        monkeypatch.setenv("IDENTITY_MARKETPLACE_AK", "HPUA-placeholder")
    settings = Settings()
    assert settings.base_url.startswith("https://") and settings.session_cookie_secure
    assert settings.smtp_host and settings.smtp_password is not None
    assert settings.secret_key is not None and not settings.is_embedded_default
