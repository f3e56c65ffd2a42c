"""Just enough PromQL parsing to list the series an expression reads.

Why not a full parser: the checks only need vector selectors (metric name + label matchers)
and the label names used in `by`/`without`/`on`/`ignoring`/`group_*` lists. Anything this
tokenizer does not understand raises, so an expression can never be skipped silently; the
real-Prometheus test (test_helm_prometheus.py) additionally has Prometheus parse every one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<range>\[[^\]]*\])
      | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
      | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}@])
    """,
    re.X,
)
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
     "and", "or", "unless", "offset", "atan2", "inf", "nan",
     # aggregation operators may be followed by `by (...)` rather than "("
     "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
     "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class Parsed:
    selectors: tuple[Selector, ...]
    grouping_labels: frozenset[str]


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot tokenize PromQL at {expr[pos : pos + 30]!r} in {expr!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def _unquote(s: str) -> str:
    return s[1:-1].encode().decode("unicode_escape") if s[0] != "`" else s[1:-1]


def _matchers(toks: list[tuple[str, str]], i: int) -> tuple[tuple[Matcher, ...], int]:
    """Parse `{l op "v", ...}` starting at the `{` at index i; returns (matchers, next index)."""
    assert toks[i][1] == "{"
    i += 1
    found: list[Matcher] = []
    while toks[i][1] != "}":
        (k1, label), (k2, op), (k3, value) = toks[i : i + 3]
        if k1 != "ident" or k2 != "op" or k3 != "string":
            raise ValueError(f"bad label matcher near {toks[i : i + 3]}")
        found.append(Matcher(label, op, _unquote(value)))
        i += 3
        if toks[i][1] == ",":
            i += 1
    return tuple(found), i + 1


def parse(expr: str) -> Parsed:
    toks = tokens(expr)
    selectors: list[Selector] = []
    grouping: set[str] = set()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "ident" and text in LABEL_LIST_KEYWORDS and nxt == "(":
            j = i + 2
            while toks[j][1] != ")":
                if toks[j][0] == "ident":
                    grouping.add(toks[j][1])
                elif toks[j][1] != ",":
                    raise ValueError(f"bad label list in {expr!r}")
                j += 1
            i = j + 1
        elif kind == "ident" and text not in KEYWORDS and nxt != "(":
            matchers: tuple[Matcher, ...] = ()
            i += 1
            if nxt == "{":
                matchers, i = _matchers(toks, i)
            selectors.append(Selector(text, matchers))
        elif text == "{":
            raise ValueError(f"selector without a metric name in {expr!r}")
        else:
            i += 1
    return Parsed(tuple(selectors), frozenset(grouping))
