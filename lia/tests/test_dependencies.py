"""Every requirement is pinned to one version (RELIABILITY 35): installs are reproducible, and
pip-audit checks exactly what runs."""

import re
from pathlib import Path

import pytest

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements"
PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!-]+$")


@pytest.mark.parametrize("name", sorted(path.name for path in REQUIREMENTS.glob("*.txt")))
def test_every_requirement_is_pinned(name):
    lines = [line.split("#", 1)[0].strip() for line in (REQUIREMENTS / name).read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("-r ")]

    assert requirements
    assert [line for line in requirements if not PINNED.match(line)] == []


def test_the_lists_are_found():
    assert {"base.txt", "dev.txt"} <= {path.name for path in REQUIREMENTS.glob("*.txt")}
