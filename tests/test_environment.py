"""The pinned environment: requirements.lock, environment.yml and pyproject.toml agree.

* requirements.lock pins every package exactly (``name==version``);
* environment.yml (conda) gives Python 3.11 and pip, and pins with pip the same versions;
* every direct dependency in pyproject.toml (including the ``test`` extra) is pinned in both;
* the environment running the tests has the locked versions.
"""
from __future__ import annotations

import re
import tomllib
from importlib import metadata

import pytest
import yaml

from helpers.paths import ROOT

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: list[str], source: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        assert m, f"{source}: not an exact pin: {raw!r}"
        name = canonical(m["name"])
        assert name not in pins, f"{source}: {m['name']} pinned twice"
        pins[name] = m["version"]
    return pins


def lock_pins() -> dict[str, str]:
    return parse_pins((ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines(),
                      "requirements.lock")


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def conda_pip_pins() -> dict[str, str]:
    deps = environment()["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one `pip:` section"
    return parse_pins([str(x) for x in pip_sections[0]], "environment.yml")


def direct_dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return [canonical(re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]) for r in reqs]


def test_lock_is_fully_pinned_and_excludes_the_project():
    pins = lock_pins()
    assert len(pins) > 50  # a full freeze, not just the direct dependencies
    assert "crm-analytics-handbook" not in pins


def test_environment_yml_has_python_311_and_pip():
    deps = environment()["dependencies"]
    plain = [d for d in deps if isinstance(d, str)]
    assert "python=3.11" in plain
    assert "pip" in plain


def test_environment_yml_and_lock_have_the_same_versions():
    lock, conda = lock_pins(), conda_pip_pins()
    differ = {n: (conda[n], lock[n]) for n in conda.keys() & lock.keys() if conda[n] != lock[n]}
    assert not differ, f"environment.yml vs requirements.lock versions differ: {differ}"
    extra = sorted(conda.keys() - lock.keys())
    assert not extra, f"environment.yml pins packages missing from requirements.lock: {extra}"


def test_every_direct_dependency_is_pinned_in_both():
    lock, conda = lock_pins(), conda_pip_pins()
    deps = direct_dependencies()
    assert {"pandas", "papermill", "nbval"} <= set(deps)
    missing = {d: [f for f, pins in (("requirements.lock", lock), ("environment.yml", conda))
                   if d not in pins] for d in deps}
    missing = {d: files for d, files in missing.items() if files}
    assert not missing, f"direct dependencies not pinned: {missing}"


def test_project_python_is_311():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == ">=3.11,<3.12"


@pytest.mark.parametrize("name", sorted(set(direct_dependencies())))
def test_installed_direct_dependencies_match_the_lock(name):
    """The environment running the tests is the locked one (catches an unrecorded upgrade)."""
    assert metadata.version(name) == lock_pins()[name], (
        f"{name} {metadata.version(name)} is installed but requirements.lock pins "
        f"{lock_pins()[name]}: update the lock (make lock) or reinstall (make venv)")
