"""Hypothesis strategies that walk a protobuf message descriptor (no hypothesis-pb).

:func:`messages` builds a strategy for any message type from its descriptor:
each field is set or left unset; scalars draw from their whole range with
the boundaries favoured; enums include unknown numbers (proto3 enums are
open); repeated and map fields get a few entries; oneofs get at most one
member; ``Timestamp``, ``Duration`` and ``FieldMask`` get values that are
valid, out of range, or nonsense. String fields draw from a :class:`Pool` of
values that mean something to the services under test (ids that exist,
valid emails, service names...) as often as from arbitrary text, so the
search reaches the code behind the validation, not just the validation.

Example::

    pool = Pool({"id": ["u-1"], "email": ["ada@example.com"]})
    strategy = messages(CreateUserRequest.DESCRIPTOR, pool)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import descriptor, descriptor_pool, message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

__all__ = ["Pool", "descriptor_of", "message_type_of", "messages", "mutants"]

FD = descriptor.FieldDescriptor
MAX_DEPTH = 4

_INT_RANGES: dict[int, tuple[int, int]] = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
# Hand-picked strings that break naive code: empty, blanks, controls, RTL and
# zero-width marks, a lone combining mark, injections, paths, huge ones.
_NASTY = [
    "",
    " ",
    "\t\n",
    "\x00",
    "\x7f",
    "\u202e",
    "\u200b",
    "\u0301",
    "🙂" * 3,
    "%s%n",
    "'; DROP TABLE users; --",
    "../../etc/passwd",
    "a" * 65,
    "x" * 5000,
]


def descriptor_of(cls: type[Message]) -> descriptor.Descriptor:
    """A message class's descriptor (protobuf's stubs type it as a union of two classes)."""
    found: descriptor.Descriptor = cls.DESCRIPTOR  # type: ignore[assignment]
    return found


def message_type_of(fd: FD) -> descriptor.Descriptor:
    """The message type of a message field."""
    assert fd.message_type is not None, fd.full_name
    return fd.message_type


@dataclass(frozen=True)
class Pool:
    """Meaningful values for string fields, by field name (``"id"``, ``"email"``, ...).

    ``by_name`` values are tried for a field of that name; ``ids`` stand in for
    any field whose name ends in ``id`` (``seller_id``, ``lease_id``, ...).
    """

    by_name: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ids: Sequence[str] = ()
    paths: Sequence[str] = ()

    def strings(self, name: str) -> st.SearchStrategy[str]:
        known = [*self.by_name.get(name, ()), *(self.ids if name.endswith("id") else ())]
        anything = st.text(max_size=80) | st.sampled_from(_NASTY)
        if not known:
            return anything
        return st.sampled_from(known) | anything


def messages(
    message: descriptor.Descriptor, pool: Pool, depth: int = 0
) -> st.SearchStrategy[Message]:
    """A strategy for ``message``: every field set or not, values from the whole range.

    Example: ``messages(ResolveRequest.DESCRIPTOR, Pool()).example()``.
    """
    special = _WELL_KNOWN.get(message.full_name)
    if special is not None:
        return special(pool)
    cls = message_factory.GetMessageClass(message)
    optional = {
        f.name: _field_values(f, pool, depth) for f in message.fields if f.containing_oneof is None
    }
    oneofs = [_oneof(o, pool, depth) for o in message.oneofs]
    return st.builds(
        _build,
        st.just(cls),
        st.fixed_dictionaries({}, optional=optional),
        st.tuples(*oneofs) if oneofs else st.just(()),
    )


def mutants(template: Message, pool: Pool, max_changes: int = 2) -> st.SearchStrategy[Message]:
    """A valid ``template`` with up to ``max_changes`` fields (nested ones too) redrawn.

    Reaches what lies behind validation: most drawn messages are only
    slightly wrong, and the unchanged template itself is a valid request.
    Example: ``mutants(CreateUserRequest(user=User(email="a@b.co", ...)), pool)``.
    """
    leaves = _leaf_paths(descriptor_of(type(template)))
    if not leaves:
        return st.just(template)
    change = st.sampled_from(leaves).flatmap(
        lambda path: st.tuples(st.just(path), _field_values(path[-1], pool, len(path)))
    )
    return st.lists(change, max_size=max_changes).map(lambda c: _mutated(template, c))


def _leaf_paths(message: descriptor.Descriptor, depth: int = 3) -> list[tuple[FD, ...]]:
    """Every field path, whole sub-messages included: ``(user,)``, ``(user, email)``..."""
    paths: list[tuple[FD, ...]] = []
    for fd in message.fields:
        paths.append((fd,))
        nested = fd.type == FD.TYPE_MESSAGE and not fd.is_repeated and depth > 1
        if nested and message_type_of(fd).full_name not in _WELL_KNOWN:
            paths.extend((fd, *rest) for rest in _leaf_paths(message_type_of(fd), depth - 1))
    return paths


def _mutated(template: Message, changes: list[tuple[tuple[FD, ...], Any]]) -> Message:
    message = type(template)()
    message.CopyFrom(template)
    for path, value in changes:
        target = message
        for fd in path[:-1]:
            target = getattr(target, fd.name)
        target.ClearField(path[-1].name)
        _assign(target, path[-1], value)
    return message


def _build(cls: type[Message], values: dict[str, Any], oneofs: tuple[Any, ...]) -> Message:
    message = cls()
    for name, value in [*values.items(), *(o for o in oneofs if o is not None)]:
        _assign(message, descriptor_of(cls).fields_by_name[name], value)
    return message


def _assign(message: Message, fd: FD, value: Any) -> None:
    target = getattr(message, fd.name)
    if _is_map(fd):
        for key, item in value.items():
            if message_type_of(fd).fields_by_name["value"].type == FD.TYPE_MESSAGE:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif fd.is_repeated:
        if fd.type == FD.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif fd.type == FD.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(message, fd.name, value)


def _oneof(
    oneof: descriptor.OneofDescriptor, pool: Pool, depth: int
) -> st.SearchStrategy[tuple[str, Any] | None]:
    members = [st.tuples(st.just(f.name), _single(f, pool, depth)) for f in oneof.fields]
    return st.none() | st.one_of(members)


def _is_map(fd: FD) -> bool:
    if fd.type != FD.TYPE_MESSAGE or not fd.is_repeated:
        return False
    return bool(message_type_of(fd).GetOptions().map_entry)


def _field_values(fd: FD, pool: Pool, depth: int) -> st.SearchStrategy[Any]:
    if _is_map(fd):
        entry = message_type_of(fd)
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        few = st.dictionaries(_single(key, pool, depth), _single(value, pool, depth), max_size=4)
        if key.type != FD.TYPE_STRING or value.type != FD.TYPE_STRING:
            return few
        # Around a typical cap (64 entries): just under, at and over it.
        many = st.dictionaries(
            st.text(min_size=1, max_size=8), st.just("v"), min_size=60, max_size=70
        )
        return few | many
    if fd.is_repeated:
        return st.lists(_single(fd, pool, depth), max_size=4)
    return _single(fd, pool, depth)


def _single(fd: FD, pool: Pool, depth: int) -> st.SearchStrategy[Any]:
    if fd.type == FD.TYPE_MESSAGE:
        if depth >= MAX_DEPTH:
            return st.just(message_factory.GetMessageClass(message_type_of(fd))())
        return messages(message_type_of(fd), pool, depth + 1)
    if fd.type == FD.TYPE_STRING:
        return pool.strings(fd.name)
    if fd.type == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if fd.type == FD.TYPE_BOOL:
        return st.booleans()
    if fd.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.floats(width=64 if fd.type == FD.TYPE_DOUBLE else 32)
    if fd.type == FD.TYPE_ENUM:
        assert fd.enum_type is not None
        known = [v.number for v in fd.enum_type.values]
        return st.sampled_from(known) | st.integers(-3, 1000)
    return _integers(*_INT_RANGES[fd.type])


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    """Boundaries first, then small numbers, then anything in range."""
    candidates = (low, high, 0, 1, -1, 2, 10, 50, 1000, 1001, 2**31 - 1, -(2**31))
    edges = [value for value in candidates if low <= value <= high]
    small = st.integers(max(low, -1000), min(high, 1000))
    return st.sampled_from(edges) | small | st.integers(low, high)


# --- well-known types -------------------------------------------------------------------

_SECONDS = (-(2**63), 2**63 - 1)
_NANOS = (-(2**31), 2**31 - 1)


def _time_like(full_name: str) -> Callable[[Pool], st.SearchStrategy[Message]]:
    def strategy(pool: Pool) -> st.SearchStrategy[Message]:
        cls = _class_of(full_name)
        return st.builds(
            lambda s, n: cls(seconds=s, nanos=n),
            _integers(*_SECONDS) | st.integers(0, 400),
            st.sampled_from([0, 1, 999_999_999, 1_000_000_000, -1]) | st.integers(*_NANOS),
        )

    return strategy


def _field_mask(pool: Pool) -> st.SearchStrategy[Message]:
    cls = _class_of("google.protobuf.FieldMask")
    paths = st.sampled_from(list(pool.paths)) if pool.paths else st.nothing()
    return st.builds(lambda p: cls(paths=p), st.lists(paths | st.text(max_size=20), max_size=4))


def _class_of(full_name: str) -> type[Message]:
    found = descriptor_pool.Default().FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(found)


_WELL_KNOWN: dict[str, Callable[[Pool], st.SearchStrategy[Message]]] = {
    "google.protobuf.Timestamp": _time_like("google.protobuf.Timestamp"),
    "google.protobuf.Duration": _time_like("google.protobuf.Duration"),
    "google.protobuf.FieldMask": _field_mask,
}
