"""The docs point at things that exist: every test a contract decision names, every file a
page links to."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "billing_assets_tests"


def _test_names() -> set[str]:
    return {match for path in TESTS.rglob("test_*.py")
            for match in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(encoding="utf-8"), re.MULTILINE)}


def test_every_decision_names_tests_that_exist():
    text = (ROOT / "docs" / "decisions.md").read_text(encoding="utf-8")
    decisions = re.split(r"\n(?=\d+\. \*\*)", text)[1:]
    names, missing = _test_names(), []
    for decision in decisions:
        number = decision.split(".", 1)[0]
        cited = re.findall(r"\[([^\]]*`[^\]]*)\]", decision)
        assert cited, f"decision {number} names no test"
        for reference in re.findall(r"`([\w/.:]+)`", " ".join(cited)):
            path, _, name = reference.rpartition("::") if "::" in reference else (
                (reference, "", "") if reference.endswith(".py") else ("", "", reference))
            if path and not (TESTS / path).exists():
                missing.append(f"decision {number}: {path}")
            if name and name not in names:
                missing.append(f"decision {number}: {name}")
    assert missing == []


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            # the contract lives beside the repository in the team's layout, not in a clone of it
            if "://" not in target and resolved.is_relative_to(ROOT) and not resolved.exists():
                broken.append(f"{page.name}: {target}")
    assert broken == []
