"""SECURITY.md names the tests that prove each protection: every one it names must exist."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`([\w/]+\.py)(?:::(\w+))?`")


def test_every_test_named_in_security_md_exists():
    references = REFERENCE.findall((ROOT / "SECURITY.md").read_text())
    missing = []
    for path, name in references:
        if not path.endswith(".py") or "/tests/" not in f"/{path}":  # tests/faults/... too
            continue
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        if name:
            tree = ast.parse(file.read_text())
            defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
            if name not in defined:
                missing.append(f"{path}::{name}")

    assert len(references) > 100
    assert missing == []
