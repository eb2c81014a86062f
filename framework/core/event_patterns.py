"""EventBridge event patterns: check one (``check_pattern``) and match an event against it (``matches``).

The subset supported, with EventBridge's semantics:

- a field's list of values matches if any matcher in it matches: an exact string, number, boolean
  or ``null``; ``{"prefix": s}``, ``{"suffix": s}`` (each also ``{"equals-ignore-case": s}`` inside);
  ``{"equals-ignore-case": s}``; ``{"wildcard": "a*b"}`` (``\\*`` is a literal star);
  ``{"anything-but": v | [v, ...] | {"prefix": s} | {"suffix": s} | {"equals-ignore-case": s | [s]}}``;
  ``{"numeric": [">", 0, "<=", 5]}``; ``{"exists": true | false}``;
- a nested object matches the event's object at that key; ``{"$or": [pattern, ...]}`` matches if one
  of its patterns does; every other key of a pattern must match (AND);
- an array in the event matches if any of its elements does (for a nested object: any element that
  is an object matching it).

Matching walks the pattern, never the whole event, so an event nested deeper than the pattern costs
nothing more, and no value of the event is ever put in an error message. ``cidr`` is not supported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from framework.errors import InvalidConfigError

MAX_DEPTH = 16  # nesting of a pattern's objects; EventBridge's own limit on a pattern's size is 2,048 chars
NUMERIC_OPS = frozenset({"<", "<=", "=", ">", ">="})
_ABSENT = object()


def check_pattern(pattern: Any, *, what: str = "event pattern") -> dict[str, Any]:
    """Return ``pattern`` if it is a pattern of the supported grammar; else raise InvalidConfigError
    naming the first path that is wrong (a path of the pattern: code, not an event's value)."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise InvalidConfigError(f"{what} must be a non-empty object")
    _check_object(pattern, what, "", 0)
    return dict(pattern)


def _check_object(pattern: Mapping[Any, Any], what: str, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidConfigError(f"{what} nests deeper than {MAX_DEPTH} objects")
    for key, value in pattern.items():
        if not isinstance(key, str):
            raise InvalidConfigError(f"{what}: every key must be a string")
        where = f"{path}.{key}" if path else key
        if key == "$or":
            if not isinstance(value, list) or len(value) < 2:
                raise InvalidConfigError(f"{what}: {where} takes a list of two or more patterns")
            for i, branch in enumerate(value):
                if not isinstance(branch, Mapping) or not branch:
                    raise InvalidConfigError(f"{what}: {where}[{i}] must be a non-empty object")
                _check_object(branch, what, path, depth + 1)
        elif isinstance(value, Mapping):
            if not value:
                raise InvalidConfigError(f"{what}: {where} must not be an empty object")
            _check_object(value, what, where, depth + 1)
        elif isinstance(value, list):
            if not value:
                raise InvalidConfigError(f"{what}: {where} must not be an empty list")
            for matcher in value:
                _check_matcher(matcher, what, where)
        else:
            raise InvalidConfigError(f"{what}: {where} must be an object or a list of values")


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_matcher(matcher: Any, what: str, where: str) -> None:
    if _is_scalar(matcher):
        return
    bad = InvalidConfigError(f"{what}: {where} holds a matcher that is not supported")
    if not isinstance(matcher, Mapping) or len(matcher) != 1:
        raise bad
    ((name, arg),) = matcher.items()
    if name in ("prefix", "suffix"):
        if not (isinstance(arg, str) or _ignore_case_arg(arg)):
            raise InvalidConfigError(f"{what}: {where}: {name} takes a string or {{equals-ignore-case}}")
    elif name in ("equals-ignore-case", "wildcard"):
        if not isinstance(arg, str):
            raise InvalidConfigError(f"{what}: {where}: {name} takes a string")
    elif name == "exists":
        if not isinstance(arg, bool):
            raise InvalidConfigError(f"{what}: {where}: exists takes true or false")
    elif name == "numeric":
        ok = isinstance(arg, list) and len(arg) in (2, 4)
        ok = ok and all(arg[i] in NUMERIC_OPS and _is_number(arg[i + 1]) for i in range(0, len(arg), 2))
        if not ok:
            raise InvalidConfigError(f"{what}: {where}: numeric takes [op, number] or [op, n, op, n]")
    elif name == "anything-but":
        if isinstance(arg, list):
            if not arg or not all(_is_scalar(v) and v is not None for v in arg):
                raise InvalidConfigError(f"{what}: {where}: anything-but takes a non-empty list of values")
        elif isinstance(arg, Mapping):
            inner = dict(arg)
            if len(inner) != 1 or next(iter(inner)) not in ("prefix", "suffix", "equals-ignore-case"):
                raise InvalidConfigError(
                    f"{what}: {where}: anything-but takes a value, a list, or one of prefix/suffix/"
                    "equals-ignore-case"
                )
            value = next(iter(inner.values()))
            if not (
                isinstance(value, str)
                or (isinstance(value, list) and value and all(isinstance(v, str) for v in value))
            ):
                raise InvalidConfigError(f"{what}: {where}: anything-but's inner matcher takes strings")
        elif not _is_scalar(arg) or arg is None:
            raise InvalidConfigError(f"{what}: {where}: anything-but takes a value or a list of values")
    else:
        raise bad


def _ignore_case_arg(arg: Any) -> bool:
    return (
        isinstance(arg, Mapping)
        and set(arg) == {"equals-ignore-case"}
        and isinstance(arg["equals-ignore-case"], str)
    )


# -- matching ----------------------------------------------------------------------------------------
def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """True if ``event`` (a decoded JSON object) matches ``pattern`` (one ``check_pattern`` accepts).
    Never raises on any JSON value of the event."""
    return isinstance(event, Mapping) and _match_object(pattern, event)


def _match_object(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    for key, spec in pattern.items():
        if key == "$or":
            if not any(_match_object(branch, event) for branch in spec):
                return False
            continue
        value = event.get(key, _ABSENT)
        if isinstance(spec, Mapping):
            if isinstance(value, Mapping):
                ok = _match_object(spec, value)
            elif isinstance(value, list):
                ok = any(isinstance(v, Mapping) and _match_object(spec, v) for v in value)
            else:
                # A nested pattern on a missing field still matches if all it asks is that fields
                # do not exist (``{"a": {"b": [{"exists": false}]}}``).
                ok = _match_object(spec, {})
            if not ok:
                return False
        elif not _match_field(spec, value):
            return False
    return True


def _match_field(matchers: Sequence[Any], value: Any) -> bool:
    if isinstance(value, list):
        # An array field: "exists" asks about the field, every other matcher about any element.
        for m in matchers:
            if isinstance(m, Mapping) and "exists" in m:
                if m["exists"]:  # the field is there: exists true matches, false does not
                    return True
            elif any(_match_one(m, v) for v in value if not isinstance(v, (list, Mapping))):
                return True
        return False
    if isinstance(value, Mapping):
        # An object where the pattern wants a value: only "exists" can say something of it.
        return any(isinstance(m, Mapping) and m.get("exists") is True for m in matchers)
    return any(_match_one(m, value) for m in matchers)


def _same(a: Any, b: Any) -> bool:
    """Exact equality of JSON scalars: a boolean is never the number 1, a number never its string."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _match_one(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        return value is not _ABSENT and _same(matcher, value)
    ((name, arg),) = matcher.items()
    if name == "exists":
        return (value is not _ABSENT) is arg
    if value is _ABSENT:
        return False
    if name == "numeric":
        return _is_number(value) and all(_compare(value, arg[i], arg[i + 1]) for i in range(0, len(arg), 2))
    if name == "anything-but":
        if isinstance(arg, Mapping):
            return isinstance(value, str) and not _match_string(
                next(iter(arg)), next(iter(arg.values())), value
            )
        values = arg if isinstance(arg, list) else [arg]
        return not any(_same(v, value) for v in values)
    return isinstance(value, str) and _match_string(name, arg, value)


def _match_string(name: str, arg: Any, value: str) -> bool:
    if isinstance(arg, list):
        return any(_match_string(name, a, value) for a in arg)
    if name in ("prefix", "suffix"):
        if isinstance(arg, Mapping):  # {"equals-ignore-case": s}
            arg, value = arg["equals-ignore-case"].lower(), value.lower()
        return value.startswith(arg) if name == "prefix" else value.endswith(arg)
    if name == "equals-ignore-case":
        return bool(value.lower() == arg.lower())
    if name == "wildcard":
        return wildcard(arg, value)
    return False


def _compare(value: float, op: str, bound: float) -> bool:
    if op == "<":
        return value < bound
    if op == "<=":
        return value <= bound
    if op == "=":
        return value == bound
    if op == ">":
        return value > bound
    return value >= bound


def wildcard(pattern: str, text: str) -> bool:
    """``*`` matches any run of characters, ``\\*`` a star. Greedy with backtracking to the last star
    only, so the time is at most len(pattern) x len(text), whatever the pattern (no regex, no ReDoS)."""
    tokens: list[str | None] = []  # None is a star
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            tokens.append(pattern[i + 1])
            i += 2
            continue
        tokens.append(None if c == "*" else c)
        i += 1
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(tokens) and tokens[p] is not None and tokens[p] == text[t]:
            p, t = p + 1, t + 1
        elif p < len(tokens) and tokens[p] is None:
            star, mark = p, t
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    while p < len(tokens) and tokens[p] is None:
        p += 1
    return p == len(tokens)
