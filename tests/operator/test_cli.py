"""``sloserve``: subcommands load lazily, and one whose extra is missing says which to install."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from sloserve_operator import cli


def test_a_missing_tooling_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [m for m in sys.modules if m.startswith("sloserve_dev.devcluster")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")] + ["rich"]:
        monkeypatch.setitem(sys.modules, name, None)  # import rich... -> ModuleNotFoundError

    assert cli.main(["demo", "--help"]) == 2
    err = capsys.readouterr().err
    assert "missing dependency 'rich" in err
    assert "pip install 'sloserve[bench]'" in err


def test_a_missing_sloserve_module_is_a_bug_not_an_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        cli.SUBCOMMANDS, "crds", cli.Subcommand("sloserve_operator.no_such", "x", "operator")
    )
    with pytest.raises(ModuleNotFoundError):
        cli.main(["crds"])


def test_every_subcommand_names_an_extra_of_pyproject() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    for name, command in cli.SUBCOMMANDS.items():
        assert command.extra in extras, name
