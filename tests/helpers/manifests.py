"""The deployment files as data: the kustomization rendered (by `kubectl kustomize` when it is
on PATH, else by loading the base's resources and applying its `images`), the compose file, and
the commands and settings they name."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import yaml

from identity.cli import app
from tests.helpers.servers import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
KUBECTL = shutil.which("kubectl")

Manifest = dict[str, Any]


def kubectl_render(folder: Path) -> list[Manifest]:
    assert KUBECTL is not None
    done = subprocess.run(
        [KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def yaml_render(folder: Path) -> list[Manifest]:
    """Without kubectl: the resources (files, or folders with their own kustomization) with
    the `images` replaced. Patches, labels and namespaces are not applied: enough for the base,
    which has none that the checks look at."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    found: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if path.is_dir():
            found += yaml_render(path)
        else:
            found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in
              kustomization.get("images", [])}  # fmt: skip
    for container in containers(found):
        container["image"] = images.get(container["image"], container["image"])
    return found


def render(folder: Path, how: str) -> list[Manifest]:
    return kubectl_render(folder) if how == "kubectl" else yaml_render(folder)


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(manifest, pod spec) of every workload."""
    for manifest in manifests:
        template = manifest.get("spec", {}).get("template")
        if template is not None:
            yield manifest, template["spec"]


def containers(manifests: list[Manifest]) -> Iterator[Manifest]:
    for _, spec in pod_specs(manifests):
        yield from spec.get("initContainers", [])
        yield from spec["containers"]


def one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, [m["metadata"]["name"] for m in found])
    return found[0]


def compose() -> Manifest:
    loaded: Manifest = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def identity_invocations(argv: list[str]) -> list[list[str]]:
    """The `identity …` commands in a container's argv; in a `sh -c` script, every one of
    them, up to a redirection or `&&`."""
    if argv[:2] == ["sh", "-c"] or argv[:1] == ["sh"]:
        argv = shlex.split(argv[-1])
    found: list[list[str]] = []
    for i, word in enumerate(argv):
        if word == "identity":
            words = []
            for following in argv[i + 1 :]:
                if following in (">", "&&", "|", ";") or following.startswith(">"):
                    break
                words.append(following)
            found.append(words)
    return found


def check_command(args: list[str]) -> None:
    """`identity ARGS` names commands of the typer app, and the last one takes these options
    and arguments: it is parsed as `identity` would parse it, without being run. Groups are
    walked by name (no invocation passes a group an option)."""
    command: Any = typer.main.get_command(app)
    context, path, rest = None, ["identity"], list(args)
    while hasattr(command, "list_commands"):
        assert rest, f"identity {' '.join(args)}: {' '.join(path)} needs a command"
        context = command.make_context(" ".join(path), [], parent=context, resilient_parsing=True)
        name, *rest = rest
        found = command.get_command(context, name)
        assert found is not None, f"identity {' '.join(args)}: no command {name!r} in {path}"
        command, path = found, [*path, name]
    command.make_context(" ".join(path), rest, parent=context)  # raises on what it lacks
