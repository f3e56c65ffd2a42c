"""Shell blocks of the Markdown docs, so that tests run the commands the docs show.

A fenced ``bash``/``sh``/``shell``/``console`` block may be preceded by a marker
``<!-- needs: WHAT -->`` naming what a test machine lacks. tests/docs/test_docs_commands.py
runs every unmarked block; e2e tests read the marked blocks they follow (e.g. the Helm
install of docs/operations.md) from the page itself, so page and test cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHELL_LANGS = frozenset({"bash", "sh", "shell", "console"})
MARKER = re.compile(r"^<!--\s*needs:\s*([a-z-]+)\s*-->$")
FENCE = re.compile(r"^```\s*([A-Za-z0-9_-]*)\s*$")
HEADING = re.compile(r"^(#+)\s+(.*?)\s*$")


@dataclass(frozen=True)
class Command:
    """One command line (continuations joined) and, for console blocks, its expected output."""

    line: str
    expected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    page: str
    lineno: int
    lang: str
    needs: str | None
    commands: tuple[Command, ...]
    section: str = ""
    """The heading the block sits under (its text, without the ``#``)."""

    @property
    def id(self) -> str:
        return f"{self.page}:{self.lineno}"


def _bash_commands(body: list[str]) -> list[Command]:
    commands: list[Command] = []
    pending = ""
    for raw in body:
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append(Command(pending + line.strip()))
        pending = ""
    if pending:
        commands.append(Command(pending.strip()))
    return commands


def _console_commands(body: list[str]) -> list[Command]:
    commands: list[Command] = []
    for line in body:
        if line.startswith("$ "):
            commands.append(Command(line[2:]))
        elif commands and line.strip():
            last = commands[-1]
            commands[-1] = Command(last.line, (*last.expected, line.strip()))
    return commands


def parse(page: str, text: str) -> list[Block]:
    """Shell blocks of one Markdown page, each with its marker and section heading."""
    lines = text.splitlines()
    blocks: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        heading = HEADING.match(lines[i])
        if heading is not None:
            section = heading.group(2)
        fence = FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        lang = fence.group(1).lower()
        if lang in SHELL_LANGS:
            marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
            body = lines[i + 1 : end]
            cmds = _console_commands(body) if lang == "console" else _bash_commands(body)
            needs = marker.group(1) if marker else None
            blocks.append(Block(page, i + 1, lang, needs, tuple(cmds), section))
        i = end + 1
    return blocks


def section_blocks(page: str, text: str, section: str) -> list[Block]:
    """The shell blocks directly under the heading ``section`` (not its subsections)."""
    return [b for b in parse(page, text) if b.section == section]
