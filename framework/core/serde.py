"""Step results and outputs as stored JSON, and the checks every stored value passes.

Plain JSON values are stored as they are. A pydantic model or a dataclass at the top level is stored
with its type's import path and rebuilt from it, so a step returns the same type on first run and on
replay. The engine always hands the workflow the *decoded* value, on first run too.

``dumps`` is the one check of a value that is stored as JSON: results, outputs, params and event
payloads all pass it. What it refuses, it refuses with SerializationError, and no message written here
holds a value or a dict key of what it refuses (``problems`` renders pydantic's errors the same way):
those messages are stored as the instance's error and logged.

pydantic is imported only for a model or a dataclass: plain JSON values never load it, so a worker
whose workflows use none starts without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from framework.errors import SerializationError

if TYPE_CHECKING:
    from pydantic import TypeAdapter

MAX_DEPTH = 64  # nesting of a stored value: json would recurse out of the stack at about 1,000
_TYPE_KEY = "$type"
_VALUE_KEY = "$value"


def encode(value: Any, *, what: str) -> str:
    """Return the JSON text for ``value``. Raise SerializationError naming ``what`` and the type."""
    kind: Any = type(value)
    if _is_model(value) or (dataclasses.is_dataclass(value) and not isinstance(value, type)):
        path = _type_path(kind, what=what)
        dumped = dump_model(value, what=f"{what} ({path})")
        return _dumps({_TYPE_KEY: path, _VALUE_KEY: dumped}, dumped, what=what)
    return _dumps({_VALUE_KEY: value}, value, what=what)


def dumps(value: Any, *, what: str) -> str:
    """The JSON text of a plain JSON value, as it is stored: every number finite, every dict key a str,
    at most ``MAX_DEPTH`` levels, every string Unicode text (UTF-8 has no lone surrogates). Raise
    SerializationError otherwise, naming ``what``, the type and where it is, never a value or a dict
    key: the message is stored as the instance's error, and logged."""
    return _dumps(value, value, what=what)


def _dumps(data: Any, value: Any, *, what: str) -> str:
    """``data`` as JSON text, once ``value`` (all of it that comes from the caller) is checked."""
    _check_plain(value, what=what, where="", depth=0)
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # all else is checked: an int too long to write (sys.get_int_max_str_digits)
        raise SerializationError(
            f"{what} cannot be stored: an integer of more than {sys.get_int_max_str_digits()} digits"
        ) from None
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _surrogate(what, _surrogate_at(value, "") or "") from None
    return text


def _surrogate(what: str, where: str) -> SerializationError:
    return SerializationError(
        f"{what} cannot be stored: a lone surrogate (U+D800 to U+DFFF){where}, which is not Unicode "
        "text (UTF-8 cannot encode it)"
    )


_UNKNOWN_TYPE = re.compile(r"Unable to serialize unknown type: <class '[^']+'>")


def dump_model(value: Any, *, what: str) -> Any:
    """A pydantic model or dataclass as plain JSON data for ``_check_plain``: NaN and infinities kept
    (pydantic's JSON would write null, changing the value), a lone surrogate refused (pydantic's JSON
    turns one in a dict key into U+FFFD, changing the value, or raises UnicodeEncodeError), and a field
    whose value does not fit its type refused (pydantic would warn, quoting the value, and store it)."""
    from pydantic_core import PydanticSerializationError

    kind: Any = type(value)
    adapter = _adapter(kind)
    try:
        where = _surrogate_at(adapter.dump_python(value, warnings="error"), "")
        dumped = None if where is not None else adapter.dump_python(value, mode="json", warnings="error")
    except RecursionError:
        raise SerializationError(
            f"{what} cannot be stored: it nests deeper than {MAX_DEPTH} levels"
        ) from None
    except (PydanticSerializationError, ValueError, TypeError) as exc:
        # pydantic's text may quote the value: keep only its "unknown type" message, which names a type.
        known = _UNKNOWN_TYPE.search(str(exc))
        if known:
            why = known.group(0)
        elif "Circular reference" in str(exc):  # pydantic's word for too deep as well
            why = "it refers to itself, or nests too deep"
        else:
            why = "a field holds a value that does not fit its type"
        raise SerializationError(f"{what} cannot be serialized: {why}") from None
    if where is not None:
        raise _surrogate(what, where)
    return dumped


def decode(text: str) -> Any:
    """Rebuild the value that ``encode`` stored. Raise SerializationError if its type no longer
    accepts it (the model changed since)."""
    data = json.loads(text)
    if _TYPE_KEY in data:
        kind = _import_type(data[_TYPE_KEY])
        from pydantic import ValidationError

        try:
            return _adapter(kind).validate_python(data[_VALUE_KEY])
        except ValidationError as exc:
            raise SerializationError(
                f"cannot rebuild stored {data[_TYPE_KEY]}: it no longer accepts the stored value: "
                + describe(problems(exc, kind))
            ) from None
    return data[_VALUE_KEY]


def same_json(a: str, b: str) -> bool:
    """Whether two stored JSON texts (as ``dumps`` writes them) hold the same value: equal texts, or
    equal once each object's keys are sorted. Numbers keep their spelling (``1`` is not ``1.0``), and
    ``true`` is not ``1``; only the order of an object's keys does not count."""
    if a == b:
        return True

    def canonical(text: str) -> str:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    return canonical(a) == canonical(b)


def roundtrip(value: Any, *, what: str) -> tuple[str, Any]:
    """Encode ``value`` and decode it again: what replay will return, returned on first run too."""
    text = encode(value, what=what)
    return text, decode(text)


# -- pydantic's errors, without the input ------------------------------------------------------------
# Error types whose message quotes part of the input; shown as this instead.
_QUOTING = {
    "union_tag_invalid": "Input tag does not match any of the expected tags",
    "uuid_parsing": "Input should be a valid UUID",
}
HIDDEN = "*"  # a location part that is not a name of the model: a key of a dict-typed field, say


def problems(
    exc: Any, kind: Any = None, *, names: frozenset[str] = frozenset(), hide: bool = True
) -> list[dict[str, Any]]:
    """A pydantic ValidationError's errors as ``{"loc", "type", "msg"}``, with nothing of the input: no
    input values and no message that quotes them. With ``hide``, each location part that is not a field
    name of ``kind`` or one of ``names`` is shown as ``HIDDEN``: a key of a dict-typed field is data.
    List positions are kept."""
    known = _names(kind) | names
    found = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = tuple(p if not hide or isinstance(p, int) or p in known else HIDDEN for p in error["loc"])
        found.append({"loc": loc, "type": error["type"], "msg": _QUOTING.get(error["type"], error["msg"])})
    return found


def error_text(exc: BaseException) -> str:
    """``str(exc)`` as it may be stored and logged: UTF-8 text (a lone surrogate escaped), and a
    pydantic ValidationError without the input values its own text quotes."""
    core = sys.modules.get("pydantic_core")
    try:
        if core is not None and isinstance(exc, core.ValidationError):
            text = f"{exc.title}: {describe(problems(exc, hide=False))}"
        else:
            text = str(exc)
    except Exception:  # an exception whose __str__ raises: its type must still be recorded
        text = f"<{type(exc).__name__} whose message cannot be shown>"
    return text if _is_text(text) else text.encode("utf-8", "backslashreplace").decode()


def describe(found: list[dict[str, Any]]) -> str:
    """``problems`` as one line: ``loc: msg; ...``."""
    return f"{len(found)} error(s): " + "; ".join(
        f"{'.'.join(map(str, p['loc'])) or 'value'}: {p['msg']}" for p in found
    )


@lru_cache(maxsize=256)
def _names(kind: Any) -> frozenset[str]:
    """Every field name (and alias) of ``kind`` and the models it holds, from its JSON schema."""
    if kind is None:
        return _MARKERS
    found: set[str] = set(getattr(kind, "model_fields", {}))
    with contextlib.suppress(Exception):  # a type JSON schema cannot describe: top-level names only
        _properties(_adapter(kind).json_schema(), found)
    return frozenset(found) | _MARKERS


_MARKERS = frozenset({"[key]"})  # pydantic's mark for "the key itself" in a dict's location


def _properties(schema: Any, found: set[str]) -> None:
    if isinstance(schema, dict):
        if isinstance(schema.get("properties"), dict):
            found.update(schema["properties"])
        for item in schema.values():
            _properties(item, found)
    elif isinstance(schema, list):
        for item in schema:
            _properties(item, found)


def _is_model(value: Any) -> bool:
    # A pydantic model exists only once pydantic is imported: until then, do not import it to check.
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(value, main.BaseModel)


def _check_plain(value: Any, *, what: str, where: str, depth: int) -> None:
    # ``where`` shows list positions and hides dict keys (they are data): ``[<key>][2]``.
    if value is None or isinstance(value, bool | int | str):
        return
    at = f" at {where}" if where else ""
    if depth >= MAX_DEPTH:
        raise SerializationError(
            f"{what} cannot be stored: it nests deeper than {MAX_DEPTH} levels{at[:200]}"
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(
                f"{what} cannot be stored: NaN or an infinity{at}, which JSON cannot represent"
            )
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(item, what=what, where=f"{where}[{index}]", depth=depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{what} cannot be stored: a dict key of type {type(key).__name__}{at}: JSON keys "
                    "must be str"
                )
            _check_plain(item, what=what, where=f"{where}[<key>]", depth=depth + 1)
        return
    raise SerializationError(
        f"{what} cannot be serialized: {type(value).__module__}.{type(value).__qualname__}{at} is not "
        "a JSON value; return JSON values (dict, list, str, int, float, bool, None), a pydantic model "
        "or a dataclass"
    )


def _surrogate_at(value: Any, where: str, depth: int = 0) -> str | None:
    """Where the first string or dict key that UTF-8 cannot encode is, in ``_check_plain``'s terms.
    Values of other types (a model's dump in Python mode holds datetimes and the like) are skipped, and
    so is what lies deeper than ``MAX_DEPTH``, which ``_check_plain`` refuses anyway."""
    if isinstance(value, str):
        return None if _is_text(value) else f" at {where or 'the top'}"
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not _is_text(key):
                return f" in a dict key at {where or 'the top'}"
            if (found := _surrogate_at(item, f"{where}[<key>]", depth + 1)) is not None:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            shown = index if isinstance(value, list | tuple) else "<item>"
            if (found := _surrogate_at(item, f"{where}[{shown}]", depth + 1)) is not None:
                return found
    return None


def _is_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _type_path(kind: type, *, what: str) -> str:
    path = f"{kind.__module__}:{kind.__qualname__}"
    if "<locals>" in kind.__qualname__:
        raise SerializationError(
            f"{what} cannot be serialized: {path} is defined inside a function, so replay could not "
            "rebuild it; define it at module level"
        )
    return path


@lru_cache(maxsize=256)
def _import_type(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SerializationError(f"cannot rebuild stored type {path}: {exc}") from None
    if not isinstance(obj, type):
        raise SerializationError(f"cannot rebuild stored type {path}: it is not a class")
    return obj


@lru_cache(maxsize=256)
def _adapter(kind: Any) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(kind)
