"""Scenario files: the built-in demo, and what validation refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from identity.simulator.scenario import ScenarioError, idp_user_id, load_scenario
from tests.helpers.simulator_world import ACME, world_data


def test_the_demo_scenario() -> None:
    demo = load_scenario()
    acme = demo.tenant("acme")
    assert acme.member("alice").role == "admin" and acme.member("bob").role == "user"
    assert any(not m.enable for m in acme.members)
    assert {m.org_code for m in acme.members} <= {d.org_code for d in acme.departments}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("tenants", 1, "tenantCode"), "acme", "tenantCode acme appears twice"),
        (("tenants", 1, "clientId"), ACME["clientId"], "two different clientSecrets"),
        (("tenants", 0, "members", 0, "orgCode"), "nowhere", "orgCode nowhere unknown"),
        (("tenants", 0, "departments", 1, "parentCode"), "x", "parentCode x unknown"),
        (("tenants", 0, "members", 0, "role"), "owner", "role"),
        (("tenants", 0, "members", 0, "userName"), "a@b", "userName"),
        (("tenants", 0, "nmae"), "typo", "nmae"),
    ],
)
def test_bad_scenarios_are_refused(
    tmp_path: Path, path: tuple[str | int, ...], value: str, message: str
) -> None:
    data = world_data()
    target = data
    for step in path[:-1]:
        target = target[step]  # type: ignore[index]
    target[path[-1]] = value  # type: ignore[index]
    file = tmp_path / "scenario.json"
    file.write_text(json.dumps(data), "utf-8")
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(file)


def test_a_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.json")


def test_idp_user_ids_are_stable_and_distinct() -> None:
    assert idp_user_id("t-1", "alice") == idp_user_id("t-1", "alice")
    assert idp_user_id("t-1", "alice") != idp_user_id("t-2", "alice")
