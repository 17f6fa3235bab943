"""Private cattrs converters: models ↔ camelCase documents.

One factory builds every converter the library uses, so the wire format (JSON for
callers and SQLite) and the document format (BSON for MongoDB) differ only in how
a datetime is written. Structuring is strict and reports every bad field of
untrusted input at once as a :class:`~loadmanager.ValidationError`; nothing from
cattrs leaks out.

Two layout rules sit here and not in the models: ``audit`` and a run's
``parameters`` are flattened into the parent document, as the seed's JSON has
``createdBy`` and ``targetUsers`` at the top level.
"""

from __future__ import annotations

import enum
import functools
import json
import warnings
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from . import _constraints as c
from . import grammar
from ._naming import camel
from ._suggest import did_you_mean
from .clock import truncate_to_millis
from .errors import FieldError, ValidationError
from .models import LoadTest, LoadTestRun, Threshold
from .status import MasterState, RunStatus
from .verdicts import Outcome

__all__ = ["Converter", "from_dict", "from_json", "make_converter", "to_dict", "to_json"]

T = TypeVar("T")
DateFormat = Literal["iso", "native"]

# Nested attributes whose fields sit in the parent document itself.
FLATTENED: Mapping[type, tuple[str, ...]] = {
    LoadTest: ("audit",),
    LoadTestRun: ("audit", "parameters"),
}


ENUMS: tuple[type[enum.Enum], ...] = (RunStatus, MasterState, Outcome)


class _BadValueError(ValueError):
    """A problem our own hooks found, with a message fit for the caller."""


def _attr_type(cls: type, name: str) -> type:
    attribute_type = attrs.fields_dict(cls)[name].type
    assert isinstance(attribute_type, type), "resolve_types ran before"
    return attribute_type


def _wire_fields(cls: type) -> tuple[str, ...]:
    attrs.resolve_types(cls)
    names: list[str] = []
    for a in attrs.fields(cls):
        if a.name in FLATTENED.get(cls, ()):
            names.extend(_wire_fields(_attr_type(cls, a.name)))
        else:
            names.append(camel(a.name))
    return tuple(names)


def _structure_str(value: Any, _t: type) -> str:
    if not isinstance(value, str):
        raise _BadValueError("must be a string")
    return value


def _structure_int(value: Any, _t: type) -> int:
    if not c.is_whole(value):
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # JSON has one number type; 5.0 means 5.
        raise _BadValueError("must be a whole number")
    return value


def _structure_float(value: Any, _t: type) -> float:
    problem = c.finite(value)
    if problem is not None:
        raise _BadValueError(problem)
    return float(value)


def _structure_bool(value: Any, _t: type) -> bool:
    if not isinstance(value, bool):
        raise _BadValueError("must be true or false")
    return value


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _enum_hook(cls: type[enum.Enum]) -> Callable[[Any, Any], enum.Enum]:
    allowed = ", ".join(str(member.value) for member in cls)

    def structure(value: Any, _t: Any) -> enum.Enum:
        try:
            return cls(value)
        except ValueError:
            raise _BadValueError(f"must be one of {allowed}") from None

    return structure


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and 10 <= len(value) <= 40:
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _BadValueError(
                "must be an ISO 8601 time such as 2025-01-31T12:00:00.000Z"
            ) from None
    else:
        raise _BadValueError("must be an ISO 8601 time such as 2025-01-31T12:00:00.000Z")
    if moment.utcoffset() is None:
        raise _BadValueError("must carry a time zone (end it with Z for UTC)")
    try:
        return truncate_to_millis(moment)
    except OverflowError:
        raise _BadValueError("is out of range") from None


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _native_time(value: Any, _t: type) -> datetime:
    # pymongo hands back tz-aware datetimes only with tz_aware=True; be sure anyway.
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return _parse_time(value)


def _is_homogeneous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


class Converter:
    """A configured cattrs converter with the library's error mapping on top."""

    def __init__(self, dates: DateFormat) -> None:
        conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
        conv.register_structure_hook(str, _structure_str)
        conv.register_structure_hook(int, _structure_int)
        conv.register_structure_hook(float, _structure_float)
        conv.register_structure_hook(bool, _structure_bool)
        # Our enums subclass str, and cattrs looks hooks up by class first, so the
        # str hooks would take them; each enum gets its own, more specific, hook.
        for enum_cls in ENUMS:
            conv.register_structure_hook(enum_cls, _enum_hook(enum_cls))
            conv.register_unstructure_hook(enum_cls, _enum_value)
        if dates == "iso":
            conv.register_structure_hook(datetime, lambda v, _t: _parse_time(v))
            conv.register_unstructure_hook(datetime, _iso)
        else:
            conv.register_structure_hook(datetime, _native_time)
            conv.register_unstructure_hook(datetime, lambda d: d)
        conv.register_structure_hook_factory(_is_homogeneous_tuple, self._tuple_hook)
        conv.register_structure_hook_factory(attrs.has, self._class_structure_hook)
        conv.register_unstructure_hook_factory(attrs.has, self._class_unstructure_hook)
        self._conv = conv
        # A criterion may be written as the compact string or as the object.
        as_object = self._class_structure_hook(Threshold)
        conv.register_structure_hook(
            Threshold, lambda v, t: grammar.parse(v) if isinstance(v, str) else as_object(v, t)
        )

    # -- hooks ---------------------------------------------------------------

    def _tuple_hook(self, t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        item_type = get_args(t)[0]
        item_hook = self._conv.get_structure_hook(item_type)
        # A model an attrs constructor made is checked already: a repository
        # that builds rows from typed columns hands them in as they are.
        model = attrs.has(item_type)

        def structure(value: Any, _t: Any) -> tuple[Any, ...]:
            # A string is iterable, but "abc" for a list of tags is a mistake.
            if not isinstance(value, (list, tuple)):
                raise _BadValueError("must be a list")
            items, errors = [], []
            for index, item in enumerate(value):
                if model and type(item) is item_type:
                    items.append(item)
                    continue
                try:
                    items.append(item_hook(item, item_type))
                except Exception as exc:  # noqa: BLE001 - collected, reported by index
                    note = IterableValidationNote(f"@ index {index}", index, item_type)
                    exc.__notes__ = [note]  # type: ignore[attr-defined]  # 3.10 lacks add_note
                    errors.append(exc)
            if errors:
                raise IterableValidationError("While structuring a list", errors, t)
            return tuple(items)

        return structure

    def _class_structure_hook(self, cls: type) -> Callable[[Any, Any], Any]:
        attrs.resolve_types(cls)
        overrides: dict[str, Any] = {}
        for a in attrs.fields(cls):
            base = self._conv.get_structure_hook(a.type)
            if _int_rows(a.type):
                base = _int_rows_first(base, len(get_args(get_args(a.type)[0])))
            if a.converter is c.seconds_as_duration:
                base = _seconds_first(base)
            hook = base if a.validator is None else _validated(base, a)
            overrides[a.name] = override(rename=camel(a.name), struct_hook=hook)
        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls,
            self._conv,
            _cattrs_forbid_extra_keys=True,
            _cattrs_detailed_validation=True,
            **overrides,
        )
        flattened = {name: _wire_fields(_attr_type(cls, name)) for name in FLATTENED.get(cls, ())}

        def structure(value: Any, _t: Any) -> Any:
            if not isinstance(value, Mapping):
                raise _BadValueError("must be an object")
            if flattened:
                value = dict(value)
                for name, keys in flattened.items():
                    value[camel(name)] = {k: value.pop(k) for k in keys if k in value}
            return inner(value, cls)

        return structure

    def _class_unstructure_hook(
        self, cls: type, omit: Collection[str] = ()
    ) -> Callable[[Any], dict[str, Any]]:
        attrs.resolve_types(cls)

        # A field that holds only str, int, float, bool or None is written as
        # it is: cattrs then inlines it instead of dispatching on each value's
        # type, a third of the cost of a snapshot's document.
        def written_as(a: attrs.Attribute[Any]) -> Any:  # cattrs keeps its override type private
            if a.name in omit:
                return override(omit=True)
            if _plain(a.type):
                return override(rename=camel(a.name), unstruct_hook=identity)
            if _plain_rows(a.type):
                # cattrs' own answer (a list of the tuples), without dispatching
                # on every cell: a histogram holds hundreds of buckets.
                return override(rename=camel(a.name), unstruct_hook=list)
            return override(rename=camel(a.name))

        overrides = {a.name: written_as(a) for a in attrs.fields(cls)}
        inner: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
            cls,
            self._conv,
            **overrides,
        )
        flattened = [camel(name) for name in FLATTENED.get(cls, ())]

        def unstructure(obj: Any) -> dict[str, Any]:
            doc: dict[str, Any] = inner(obj)
            for key in flattened:
                doc.update(doc.pop(key))
            return doc

        return unstructure

    # -- public --------------------------------------------------------------

    def unstructure(self, obj: Any) -> Any:
        """The document of a model (or of a list of models)."""
        return self._conv.unstructure(obj)

    def unstructurer(self, cls: type, *, omit: Collection[str]) -> Callable[[Any], dict[str, Any]]:
        """A function giving a ``cls``'s document without the fields in ``omit``.

        For a backend that keeps those fields elsewhere (SQLite's endpoint
        rows); structuring a document without them gives their defaults.
        """
        unknown = set(omit) - {a.name for a in attrs.fields(cls)}
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
        return self._class_unstructure_hook(cls, omit)

    def structure(self, data: Any, cls: type[T], *, subject: str | None = None) -> T:
        """A ``cls`` from ``data``, or a :class:`ValidationError` listing every problem."""
        try:
            return self._conv.structure(data, cls)
        except ValidationError as exc:
            raise ValidationError(exc.errors, subject=subject or cls.__name__) from None
        except Exception as exc:  # noqa: BLE001 - cattrs raises many types; all are mapped
            # cattrs' exception group is internal detail: every problem it held
            # is in ``errors``, so the traceback shows one clean message.
            errors = _collect(exc, "")
            raise ValidationError(errors, subject=subject or cls.__name__) from None


_PLAIN = (str, int, float, bool, type(None))


def _plain(t: Any) -> bool:
    """Whether values of type ``t`` unstructure to themselves (not enums: str subclasses)."""
    if t in _PLAIN:
        return True
    args = get_args(t)
    return bool(args) and get_origin(t) in (Union, UnionType) and all(a in _PLAIN for a in args)


def _plain_rows(t: Any) -> bool:
    """Whether ``t`` is ``tuple[tuple[plain, ...], ...]`` (a histogram's buckets)."""
    if not _is_homogeneous_tuple(t):
        return False
    row = get_args(t)[0]
    return get_origin(row) is tuple and all(a in _PLAIN for a in get_args(row))


def _int_rows(t: Any) -> bool:
    """Whether ``t`` is ``tuple[tuple[int, ...], ...]`` of a fixed width (buckets)."""
    return _plain_rows(t) and all(a is int for a in get_args(get_args(t)[0]))


def _int_rows_first(base: Callable[[Any, Any], Any], width: int) -> Callable[[Any, Any], Any]:
    """Rows of whole numbers (a stored histogram's buckets) checked a column at a
    time in C; anything else goes through ``base``, which names what is wrong.
    Through ``base`` each cell was a hook call: most of reading histograms back."""

    def structure(value: Any, t: Any) -> Any:
        rows = c.whole_rows(value, width)
        return rows if rows is not None else base(value, t)

    return structure


def _seconds_first(base: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Let a whole number of seconds stand for a duration, as Locust's ``-t 90`` does."""

    def structure(value: Any, t: Any) -> Any:
        return base(c.seconds_as_duration(value), t)

    return structure


def _validated(base: Callable[[Any, Any], Any], attribute: attrs.Attribute[Any]) -> Any:
    validator = attribute.validator
    assert validator is not None

    def structure(value: Any, t: Any) -> Any:
        result = base(value, t)
        validator(None, attribute, result)
        return result

    return structure


def _join(prefix: str, segment: str) -> str:
    if not prefix:
        return segment
    if not segment:
        return prefix
    return prefix + segment if segment.startswith("[") else f"{prefix}.{segment}"


def _message(exc: BaseException) -> str:
    if isinstance(exc, _BadValueError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "is required"
    return "is not valid"


def _collect(exc: BaseException, prefix: str) -> list[FieldError]:
    if isinstance(exc, ValidationError):
        return [FieldError(_join(prefix, e.path), e.message) for e in exc.errors]
    if isinstance(exc, ForbiddenExtraKeysError):
        known = _wire_fields(exc.cl)
        # Keys are strings in JSON; a parsed YAML or Python dict may hold others.
        return [
            FieldError(_join(prefix, key), "is not a known field" + did_you_mean(key, known))
            for key in sorted(str(k) for k in exc.extra_fields)
        ]
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        with_notes, without = exc.group_exceptions()
        errors: list[FieldError] = []
        for sub, note in with_notes:
            if isinstance(note, AttributeValidationNote):
                flat = note.name in FLATTENED.get(exc.cl, ())
                path = prefix if flat else _join(prefix, camel(note.name))
            else:
                path = _join(prefix, f"[{note.index}]")
            if isinstance(sub, ValidationError):
                # Validators name their own field; place it under our parent.
                located = prefix if isinstance(note, AttributeValidationNote) else path
                errors.extend(_collect(sub, located))
            else:
                errors.extend(_collect(sub, path))
        for sub in without:
            errors.extend(_collect(sub, prefix))
        return errors
    return [FieldError(prefix, _message(exc))]


_JSON = Converter("iso")


def to_dict(model: Any) -> Any:
    """The camelCase document of a model (a dict, or a list of them), as the seed spells it.

    Datetimes become ISO 8601 strings in UTC with milliseconds and a ``Z``, so
    the result goes straight to ``json.dumps``; :func:`to_json` does that too.
    """
    return _JSON.unstructure(model)


def compact_json(doc: Any) -> str:
    """``doc`` as compact JSON text, as ``json.dumps(doc, separators=(",", ":"))``.

    orjson writes it when the ``fast`` extra is installed (a snapshot's
    histograms are hundreds of number pairs: a tenth of the cost); what orjson
    refuses (a lone surrogate, an integer past 64 bits) the standard library
    writes, so both read back alike.
    """
    return _compact_writer()(doc)


@functools.cache
def _compact_writer() -> Callable[[Any], str]:
    def standard(doc: Any) -> str:
        return json.dumps(doc, separators=(",", ":"))

    try:
        import orjson
    except ImportError:
        return standard

    def fast(doc: Any) -> str:
        try:
            return orjson.dumps(doc).decode()
        except TypeError:  # orjson.JSONEncodeError subclasses it
            return standard(doc)

    return fast


def to_json(model: Any, *, indent: int | None = None) -> str:
    """The camelCase document of a model as JSON text (``to_dict`` then ``json.dumps``)."""
    return json.dumps(to_dict(model), indent=indent, ensure_ascii=False)


def from_dict(cls: type[T], data: Any) -> T:
    """Structure an untrusted camelCase document (already parsed) into a ``cls``.

    Raises:
        ValidationError: listing every bad, missing or unknown field by its path.
    """
    return _JSON.structure(data, cls)


def from_json(cls: type[T], text: str | bytes | Mapping[str, Any]) -> T:
    """Parse JSON text and structure it into a ``cls``.

    A parsed document (a dict) is still taken, as before 0.2, with a
    ``DeprecationWarning``: use :func:`from_dict` for those.

    Raises:
        ValidationError: the text is not JSON, or the document is not a valid ``cls``.
    """
    if not isinstance(text, (str, bytes, bytearray)):
        warnings.warn(
            "from_json() of a parsed document is deprecated; use from_dict()",
            DeprecationWarning,
            stacklevel=2,
        )
        return from_dict(cls, text)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # The decoder's message says where; its traceback says nothing more.
        raise ValidationError.single("", f"is not JSON: {exc}", subject=cls.__name__) from None
    return from_dict(cls, data)


def make_converter(dates: DateFormat = "iso") -> Converter:
    """A new converter; ``"native"`` keeps datetimes as datetimes (for BSON)."""
    return Converter(dates)
