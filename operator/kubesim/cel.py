"""`x-kubernetes-validations` rules evaluated with cel-python, plus the Kubernetes CEL library functions.

The apiserver compiles CRD rules with cel-go and its Kubernetes extensions (strings, lists, regex, url).
cel-python covers the CEL core (`has()`, macros, `size()`, `matches()`, `startsWith()`...); the extension
functions that CRD rules commonly use are added here. Compiled programs are cached per rule text because
parsing dominates the cost and a benchmark may validate thousands of objects.

Outcomes are cached too (`OutcomeCache`): cel-python's tree-walking evaluator takes 0.2-0.7 ms per rule, which
made rule evaluation most of kubesim's time per write (a grant's 5 rules cost ~2.5 ms, and kopf's finalizer,
annotation and status patches re-run them on an unchanged spec). A rule's outcome is a pure function of its text
and of `self`/`oldSelf`, so it is cached under the rule text and the exact `repr` of the values (key order kept,
1, 1.0 and True kept apart); large values are not cached.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
import urllib.parse
from collections.abc import Callable
from typing import Any, cast

import celpy
import celpy.adapter
from celpy import celtypes

MISSING: Any = object()  # no old value: transition rules are skipped


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The result of one rule: passed, or failed with a message (evaluation errors fail too)."""

    passed: bool
    message: str = ""


def _string(value: Any) -> celtypes.StringType:
    return celtypes.StringType(value)


def _lower_ascii(text: Any) -> Any:
    return _string(str(text).lower())


def _upper_ascii(text: Any) -> Any:
    return _string(str(text).upper())


def _trim(text: Any) -> Any:
    return _string(str(text).strip())


def _index_of(text: Any, sub: Any, start: Any = 0) -> Any:
    return celtypes.IntType(str(text).find(str(sub), int(start)))


def _last_index_of(text: Any, sub: Any) -> Any:
    return celtypes.IntType(str(text).rfind(str(sub)))


def _split(text: Any, sep: Any, limit: Any = -1) -> Any:
    count = int(limit)
    if count == 0:
        return celtypes.ListType([])
    parts = str(text).split(str(sep), count - 1 if count > 0 else -1)
    return celtypes.ListType([_string(part) for part in parts])


def _join(items: Any, sep: Any = "") -> Any:
    return _string(str(sep).join(str(item) for item in items))


def _replace(text: Any, old: Any, new: Any, limit: Any = -1) -> Any:
    return _string(str(text).replace(str(old), str(new), int(limit)))


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    value = str(text)
    return _string(value[int(start) : len(value) if end is None else int(end)])


def _char_at(text: Any, index: Any) -> Any:
    value = str(text)
    position = int(index)
    return _string(value[position] if position < len(value) else "")


def _is_sorted(items: Any) -> Any:
    values = list(items)
    return celtypes.BoolType(all(values[i] <= values[i + 1] for i in range(len(values) - 1)))


def _sum(items: Any) -> Any:
    values = list(items)
    if not values:
        return celtypes.IntType(0)
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def _min(items: Any) -> Any:
    return min(items)


def _max(items: Any) -> Any:
    return max(items)


def _is_url(text: Any) -> Any:
    parsed = urllib.parse.urlparse(str(text))
    return celtypes.BoolType(bool(parsed.scheme) and (bool(parsed.netloc) or parsed.scheme in {"file"}))


_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def _is_quantity(text: Any) -> Any:
    return celtypes.BoolType(bool(_QUANTITY.match(str(text))))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "trim": _trim,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "split": _split,
    "join": _join,
    "replace": _replace,
    "substring": _substring,
    "charAt": _char_at,
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "isURL": _is_url,
    "isQuantity": _is_quantity,
}

_ENVIRONMENT = celpy.Environment()
_OLD_SELF = re.compile(r"\boldSelf\b")


class CompileError(Exception):
    """A rule that does not parse; the apiserver rejects such CRDs, kubesim reports it per object."""


@functools.lru_cache(maxsize=1024)
def _program(rule: str) -> Any:
    try:
        ast = _ENVIRONMENT.compile(rule)
    except Exception as error:  # celpy raises lark and CELParseError types
        raise CompileError(str(error)) from error
    return _ENVIRONMENT.program(ast, functions=FUNCTIONS)


def is_transition_rule(rule: str) -> bool:
    """A rule that mentions `oldSelf` runs only on updates where an old value exists."""
    return bool(_OLD_SELF.search(rule))


def to_cel(value: Any) -> Any:
    """JSON data to CEL values."""
    return celpy.adapter.json_to_cel(value)


class OutcomeCache:
    """A bounded LRU of results by (rule, self, oldSelf), sized by the characters of its keys."""

    def __init__(self, max_chars: int = 8_000_000, max_key_chars: int = 64_000) -> None:
        self.max_chars = max_chars
        self.max_key_chars = max_key_chars
        self._entries: collections.OrderedDict[tuple[str, str, str | None], Any] = collections.OrderedDict()
        self._chars = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(key: tuple[str, str, str | None]) -> int:
        return len(key[0]) + len(key[1]) + len(key[2] or "")

    def key(self, kind: str, rule: str, value: Any, old_value: Any) -> tuple[str, str, str | None] | None:
        """The cache key, or None when the values are too large to be worth keeping.

        `repr` tells apart everything the JSON and YAML decoders produce that CEL tells apart: 1, 1.0 and
        True, the keys 1 and "1", and the order of map keys (which `map()` over a map exposes).
        """
        value_repr = repr(value)
        old_repr = None if old_value is MISSING else repr(old_value)
        key = (f"{kind}:{rule}", value_repr, old_repr)
        return key if self._size(key) <= self.max_key_chars else None

    def get(self, key: tuple[str, str, str | None]) -> Any:
        """The cached result, or MISSING."""
        result = self._entries.get(key, MISSING)
        if result is MISSING:
            self.misses += 1
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        return result

    def put(self, key: tuple[str, str, str | None], result: Any) -> None:
        """Remember a result, dropping the least recently used entries beyond `max_chars`."""
        if key in self._entries:
            return
        self._entries[key] = result
        self._chars += self._size(key)
        while self._chars > self.max_chars and self._entries:
            dropped, _ = self._entries.popitem(last=False)
            self._chars -= self._size(dropped)

    def clear(self) -> None:
        """Forget every result (tests)."""
        self._entries.clear()
        self._chars = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)


OUTCOMES = OutcomeCache()


def evaluate(rule: str, value: Any, old_value: Any = MISSING) -> Outcome:
    """Run one rule with `self` (and `oldSelf` when given); anything but `true` is a failure."""
    key = OUTCOMES.key("rule", rule, value, old_value)
    if key is not None:
        cached = OUTCOMES.get(key)
        if cached is not MISSING:
            return cast(Outcome, cached)
    outcome = _evaluate(rule, value, old_value)
    if key is not None:
        OUTCOMES.put(key, outcome)
    return outcome


def _evaluate(rule: str, value: Any, old_value: Any) -> Outcome:
    activation = {"self": to_cel(value)}
    if old_value is not MISSING:
        activation["oldSelf"] = to_cel(old_value)
    try:
        result = _program(rule).evaluate(activation)
    except CompileError as error:
        return Outcome(False, f"compilation failed: {error}")
    except Exception as error:  # CELEvalError and the Python errors celpy lets through
        return Outcome(False, f"rule evaluation error: {_first_line(error)}")
    if isinstance(result, Exception):
        return Outcome(False, f"rule evaluation error: {_first_line(result)}")
    return Outcome(result is True or (isinstance(result, celtypes.BoolType) and bool(result)))


def evaluate_message(expression: str, value: Any, old_value: Any = MISSING) -> str | None:
    """A `messageExpression`: its string result, or None when it fails (the static message is used)."""
    key = OUTCOMES.key("message", expression, value, old_value)
    if key is not None:
        cached = OUTCOMES.get(key)
        if cached is not MISSING:
            return cast("str | None", cached)
    message = _evaluate_message(expression, value, old_value)
    if key is not None:
        OUTCOMES.put(key, message)
    return message


def _evaluate_message(expression: str, value: Any, old_value: Any) -> str | None:
    activation = {"self": to_cel(value)}
    if old_value is not MISSING:
        activation["oldSelf"] = to_cel(old_value)
    try:
        result = _program(expression).evaluate(activation)
    except Exception:  # a broken messageExpression falls back to the static message, as in the apiserver
        return None
    return str(result) if isinstance(result, str) and result.strip() else None


def _first_line(error: BaseException) -> str:
    text = error.args[0] if error.args else str(error)
    return str(text).splitlines()[0] if str(text) else type(error).__name__
