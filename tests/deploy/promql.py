"""Just enough PromQL to check alerting rules against what the operator exposes: which series each expression
selects (metric name and label matchers), which labels it groups or matches on, which functions it calls.

A tokenizer and a walk over its tokens, not a parser: an identifier followed by `(` is a function or an aggregation,
a keyword is skipped, anything inside `[...]` (ranges, subqueries) and after `offset` is a duration, and every other
identifier is a metric name, with the `{...}` after it its matchers. That is all the check needs: a misspelt metric,
label or function, a bucket bound that no series has, or unbalanced brackets, is reported (`problems`). It does not
type-check the expression; Prometheus does that when it loads the rules.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    "limitk", "limit_ratio",
})
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time", "ceil",
    "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month", "day_of_week",
    "day_of_year", "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "end", "exp", "floor",
    "histogram_avg", "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "info", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time", "min_over_time",
    "minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
    "start", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector",
    "year",
})
# Followed by a parenthesised list of label names.
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
# Labels Prometheus adds to every series of a target scraped through a ServiceMonitor: not in the scrape itself.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint", "container"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)
               (?:(?:ms|s|m|h|d|w|y)(?:[0-9]+(?:ms|s|m|h|d|w|y))*)?)  # 3, 0.05, 1e3, and durations: 5m, 1h30m
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@:])
""", re.VERBOSE)
_CLOSE = {"(": ")", "{": "}", "[": "]"}


@dataclasses.dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str


@dataclasses.dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...] = ()


@dataclasses.dataclass(frozen=True)
class Expression:
    selectors: tuple[Selector, ...]
    grouping: frozenset[str]  # labels of by/without/on/ignoring/group_left/group_right
    functions: frozenset[str]
    errors: tuple[str, ...]  # what the walk itself found wrong

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(selector.metric for selector in self.selectors)


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) pairs: string, number (durations included), ident, op. Raises on a character PromQL has not."""
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"unexpected {expr[position]!r} at {position} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append((kind, match.group()))
        position = match.end()
    return found


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body if text[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _balance(found: list[tuple[str, str]]) -> list[str]:
    stack: list[str] = []
    for kind, text in found:
        if kind == "op" and text in _CLOSE:
            stack.append(_CLOSE[text])
        elif kind == "op" and text in _CLOSE.values() and (not stack or stack.pop() != text):
            return [f"unbalanced {text!r}"]
    return [f"unclosed, expected {stack[-1]!r}"] if stack else []


def _matchers(found: list[tuple[str, str]], start: int) -> tuple[list[Matcher], int, list[str]]:
    """The matchers of the `{` at `start`; the index after its `}`."""
    matchers: list[Matcher] = []
    errors: list[str] = []
    i = start + 1
    while i < len(found) and found[i][1] != "}":
        if found[i][1] == ",":
            i += 1
            continue
        if found[i][0] == "string" and (i + 1 >= len(found) or found[i + 1][1] in (",", "}")):
            matchers.append(Matcher("__name__", "=", _unquote(found[i][1])))  # {"metric.name"} (UTF-8 names)
            i += 1
            continue
        if i + 2 < len(found) and found[i][0] in ("ident", "string") and found[i + 1][1] in ("=", "!=", "=~", "!~") \
                and found[i + 2][0] == "string":
            label = found[i][1] if found[i][0] == "ident" else _unquote(found[i][1])
            matchers.append(Matcher(label, found[i + 1][1], _unquote(found[i + 2][1])))
            i += 3
            continue
        errors.append(f"malformed label matcher at {found[i][1]!r}")
        i += 1
    return matchers, i + 1, errors


def parse(expr: str) -> Expression:
    found = tokens(expr)
    errors = _balance(found)
    selectors: list[Selector] = []
    grouping: set[str] = set()
    functions: set[str] = set()
    i = 0
    while i < len(found):
        kind, text = found[i]
        following = found[i + 1][1] if i + 1 < len(found) else ""
        if kind == "op" and text == "[":  # a range or a subquery: durations only
            while i < len(found) and found[i][1] != "]":
                i += 1
            i += 1
            continue
        if kind == "op" and text == "{":  # a selector with no name before its braces
            matchers, i, problems = _matchers(found, i)
            errors.extend(problems)
            names = [m.value for m in matchers if m.label == "__name__" and m.op == "="]
            if not names:
                errors.append("a selector without a metric name")
            selectors.append(Selector(names[0] if names else "", tuple(m for m in matchers if m.label != "__name__")))
            continue
        if kind != "ident":
            i += 1
            continue
        word = text.lower()
        if word in GROUPING and following == "(":
            i += 2
            while i < len(found) and found[i][1] != ")":
                if found[i][0] == "ident":
                    grouping.add(found[i][1])
                i += 1
            i += 1
            continue
        if word in KEYWORDS:
            i += 2 if word == "offset" else 1
            continue
        if following == "(" or (text in AGGREGATIONS and following.lower() in ("by", "without")):
            if text not in FUNCTIONS and text not in AGGREGATIONS:
                errors.append(f"unknown function {text}()")
            functions.add(text)
            i += 1
            continue
        if following == "{":
            matchers, i, problems = _matchers(found, i + 1)
            errors.extend(problems)
        else:
            matchers, i = [], i + 1
        selectors.append(Selector(text, tuple(matchers)))
    return Expression(tuple(selectors), frozenset(grouping), frozenset(functions), tuple(errors))


Series = Mapping[str, Mapping[str, Iterable[str]]]  # sample name -> label name -> the values seen


def problems(expr: str, series: Series) -> list[str]:
    """What is wrong with `expr` against `series` (as tests.deploy.monitoring.series reads a scrape): a metric not
    exposed, a matcher on a label its series do not have (or, with `=`, a value none has), a regex that does not
    compile, a grouping label none of the expression's series has, an unknown function, unbalanced brackets."""
    parsed = parse(expr)
    found = list(parsed.errors)
    for selector in parsed.selectors:
        labels = series.get(selector.metric)
        if labels is None:
            close = difflib.get_close_matches(selector.metric, list(series), n=1)
            found.append(f"{selector.metric} is not exposed" + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        for matcher in selector.matchers:
            if matcher.op in ("=~", "!~"):
                try:
                    re.compile(matcher.value)
                except re.error as error:
                    found.append(f"{selector.metric}{{{matcher.label}{matcher.op}...}}: bad regex: {error}")
            if matcher.label in TARGET_LABELS:
                continue
            if matcher.label not in labels:
                found.append(f"{selector.metric} has no label {matcher.label} (it has {sorted(labels) or 'none'})")
            elif matcher.op == "=" and matcher.value not in set(labels[matcher.label]):
                found.append(f"no {selector.metric} series has {matcher.label}={matcher.value!r} "
                             f"(values: {sorted(labels[matcher.label])})")
    used = {label for selector in parsed.selectors for label in series.get(selector.metric, {})}
    for label in sorted(parsed.grouping - used - TARGET_LABELS):
        found.append(f"groups or matches on {label}, which none of {sorted(parsed.metrics)} has")
    return found
