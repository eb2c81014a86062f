"""Step results and outputs as stored JSON.

Plain JSON values are stored as they are. A pydantic model or a dataclass at the top level is stored
with its type's import path and rebuilt from it, so a step returns the same type on first run and on
replay. The engine always hands the workflow the *decoded* value, on first run too.

pydantic is imported only for a model or a dataclass: plain JSON values never load it, so a worker
whose workflows use none starts without it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
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
        from pydantic_core import PydanticSerializationError

        path = _type_path(kind, what=what)
        try:
            dumped = _adapter(kind).dump_python(value, mode="json")
        except PydanticSerializationError as exc:
            raise SerializationError(f"{what} cannot be serialized: {path}: {exc}") from None
        data: Any = {_TYPE_KEY: path, _VALUE_KEY: dumped}
    else:
        _check_plain(value, what=what, where="", depth=0)
        data = {_VALUE_KEY: value}
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # pragma: no cover - _check_plain catches these first
        raise SerializationError(f"{what} cannot be serialized: {exc}") from None


def decode(text: str) -> Any:
    """Rebuild the value that ``encode`` stored."""
    data = json.loads(text)
    if _TYPE_KEY in data:
        return _adapter(_import_type(data[_TYPE_KEY])).validate_python(data[_VALUE_KEY])
    return data[_VALUE_KEY]


def roundtrip(value: Any, *, what: str) -> tuple[str, Any]:
    """Encode ``value`` and decode it again: what replay will return, returned on first run too."""
    text = encode(value, what=what)
    return text, decode(text)


def _is_model(value: Any) -> bool:
    # A pydantic model exists only once pydantic is imported: until then, do not import it to check.
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(value, main.BaseModel)


def _check_plain(value: Any, *, what: str, where: str, depth: int) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if depth >= MAX_DEPTH:
        raise SerializationError(f"{what} nests deeper than {MAX_DEPTH} levels{where[:200]}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SerializationError(f"{what} holds {value!r}{where}, which JSON cannot store")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_plain(item, what=what, where=f"{where}[{index}]", depth=depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{what} has a dict key of type {type(key).__name__}{where}: JSON keys must be str"
                )
            _check_plain(item, what=what, where=f"{where}[{key!r}]", depth=depth + 1)
        return
    raise SerializationError(
        f"{what} cannot be serialized: {type(value).__module__}.{type(value).__qualname__}{where} is not "
        "a JSON value; return JSON values (dict, list, str, int, float, bool, None), a pydantic model "
        "or a dataclass"
    )


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
