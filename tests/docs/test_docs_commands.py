"""Every shell command in README.md, docs/user-guide.md and docs/operations.md runs, or says why.

A fenced ``bash``/``sh``/``shell``/``console`` block is executed in a fresh copy of the
checkout (tracked and untracked-but-not-ignored files, ``.venv`` linked to this interpreter's
virtualenv as ``make setup`` would create it, no virtualenv activated, only the testenv's
kubectl and helm added to PATH) unless the line right before its fence is a marker
``<!-- needs: WHAT -->`` naming something a test machine lacks. An unmarked block that cannot
run here therefore fails this test. ``console`` blocks also check their printed output.
Marked blocks still get static checks: ``make`` targets exist, repository paths exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sloserve_dev.devcluster.pytest_plugin import require_testenv
from sloserve_dev.docblocks import FENCE, MARKER, SHELL_LANGS, Block, Command, parse

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("README.md", "docs/user-guide.md", "docs/operations.md")
# What a block may need that a test machine does not have. long-run: the demo, the whole
# suite and the e2e suites, each of which is its own test (or is CI itself).
NEEDS = frozenset({"cluster", "gpu", "container-builder", "network", "long-run"})
REPO_DIRS = ("crds/", "helm/", "docs/", "tests/", "hack/", "engine/", "operator/")


def _all_blocks() -> list[Block]:
    return [b for page in PAGES for b in parse(page, (ROOT / page).read_text())]


BLOCKS = _all_blocks()
RUNNABLE = [b for b in BLOCKS if b.needs is None]


def _checkout_files() -> Iterator[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    )
    for name in out.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            yield name


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of this checkout, with `.venv` where `make setup` puts it."""
    dest = tmp_path_factory.mktemp("checkout")
    for name in _checkout_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


def _env(checkout: Path, block: Block) -> dict[str, str]:
    path = ["/usr/local/bin", "/usr/bin", "/bin"]
    words = {w for c in block.commands for w in shlex.split(c.line, comments=True)}
    if words & {"helm", "kubectl"}:
        path.insert(0, str(require_testenv().binary("helm").parent))
    return {
        "PATH": os.pathsep.join(path),
        "HOME": os.environ.get("HOME", str(checkout)),
        "LANG": "C.UTF-8",
        # The copy's sources, not the ones the venv was installed from.
        "PYTHONPATH": f"{checkout}/engine/src{os.pathsep}{checkout}/operator/src",
        "KUBECONFIG": str(checkout / "no-such-kubeconfig"),
    }


def test_pages_have_runnable_blocks() -> None:
    """The parser finds the blocks (a parser that finds nothing would pass everything)."""
    assert len(BLOCKS) >= 12
    assert len(RUNNABLE) >= 2
    assert all(b.commands for b in BLOCKS), [b.id for b in BLOCKS if not b.commands]


def test_markers_name_known_needs_and_precede_a_shell_fence() -> None:
    for page in PAGES:
        lines = (ROOT / page).read_text().splitlines()
        for n, line in enumerate(lines):
            marker = MARKER.match(line.strip())
            if marker is None:
                continue
            assert marker.group(1) in NEEDS, f"{page}:{n + 1}: unknown need {marker.group(1)}"
            fence = FENCE.match(lines[n + 1]) if n + 1 < len(lines) else None
            assert fence and fence.group(1) in SHELL_LANGS, (
                f"{page}:{n + 1}: marker before no fence"
            )


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_static_references_exist(block: Block) -> None:
    """Make targets and repository paths named by any block, marked or not, exist."""
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    for command in block.commands:
        words = shlex.split(command.line, comments=True)
        for prev, word in zip(["", *words], words, strict=False):
            if prev == "make" and not word.startswith("-"):
                assert word in targets, f"{block.id}: no make target {word!r}"
            if word.startswith(REPO_DIRS) and "=" not in word:
                assert (ROOT / word.split("::")[0]).exists(), f"{block.id}: no path {word!r}"


def test_parse_marks_joins_and_reads_console_output() -> None:
    text = (
        "<!-- needs: cluster -->\n```bash\nkubectl get llms\n```\n\n"
        "```bash\n# comment\nhelm install a \\\n  b --x\n```\n\n"
        "```console\n$ helm template x\nError: bad\n- at '/a'\n```\n"
        "```yaml\nkind: x\n```\n"
    )
    cluster, joined, console = parse("p.md", text)
    assert (cluster.needs, cluster.commands) == ("cluster", (Command("kubectl get llms"),))
    assert joined.needs is None and joined.commands == (Command("helm install a b --x"),)
    assert console.commands == (Command("helm template x", ("Error: bad", "- at '/a'")),)


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_unmarked_block_runs_on_a_fresh_checkout(block: Block, checkout: Path) -> None:
    run_block(block, checkout)


def test_a_failing_or_silent_block_fails(checkout: Path) -> None:
    """The runner is not a rubber stamp: a failing command or missing output fails it."""
    with pytest.raises(AssertionError, match="failed"):
        run_block(Block("x.md", 1, "bash", None, (Command("sloserve --help"),)), checkout)
    quiet = Block("x.md", 1, "console", None, (Command("true", ("Error:",)),))
    with pytest.raises(AssertionError, match="did not print"):
        run_block(quiet, checkout)


def run_block(block: Block, checkout: Path) -> None:
    """Run each command of the block in the copy; check its exit status or printed lines."""
    env = _env(checkout, block)
    for command in block.commands:
        out = subprocess.run(
            ["bash", "-c", command.line],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        printed = out.stdout + out.stderr
        if command.expected:
            for line in command.expected:
                assert line in printed, f"{block.id}: {command.line!r} did not print {line!r}"
        else:
            assert out.returncode == 0, f"{block.id}: {command.line!r} failed:\n{printed}"
