"""Making many records of one frozen, slotted dataclass that share most of their values.

A plan of a 100,000-combination matrix makes 100,000 jobs (and as many resolved assets)
that differ in a handful of fields: the id, the path, the prompt, the key. The
constructor a frozen dataclass generates sets each of the 26 fields of an
:class:`~pipeline.jobs.job.ApiJob` through ``object.__setattr__`` (about 5 us a job);
``dataclasses.replace`` of a prototype first reads every field back (twice that).
A :class:`Mold` puts each value straight into its slot through the slot's own
descriptor, the shared ones bound once: the same record, at half the cost or less.
Its setting is one straight-line function made per mold (as ``dataclasses`` makes
``__init__``), whose source holds only generated names (``v0``, ``s0``), never a field's
name or value: a loop over the slots costs a third more per record.

It is only for a class whose constructor does nothing but set its fields: a class with a
``__post_init__`` (a check, a derived field) or a field without a value is refused when
the mold is made, so no record can skip what its constructor would have done.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_Put = Callable[[object, object], None]


class Mold(Generic[T]):
    """Makes instances of ``cls`` with ``shared`` values and the ``varying`` fields given
    per call, positionally in that order; a field in neither takes its default."""

    __slots__ = ("_cls", "_values", "make", "varying")

    def __init__(self, cls: type[T], varying: Sequence[str], shared: Mapping[str, Any]):
        if not dataclasses.is_dataclass(cls) or hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} is not a dataclass that only sets its fields")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = [n for n in (*varying, *shared) if n not in fields]
        twice = set(varying) & set(shared)
        if unknown or twice or len(set(varying)) != len(varying):
            raise TypeError(f"{cls.__name__} mold: unknown {unknown}, given twice {sorted(twice)}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in varying:
                continue
            if name in shared:
                values[name] = shared[name]
            elif f.default is not dataclasses.MISSING:
                values[name] = f.default
            else:  # nor a default_factory's: one value made here would be every record's
                raise TypeError(f"{cls.__name__} mold: no value for {name}")
        self._cls = cls
        self._values = values
        self.varying = tuple(varying)
        self.make: Callable[..., T] = _maker(
            cls,
            tuple((_slot(cls, n), v) for n, v in values.items()),
            tuple(_slot(cls, n) for n in varying),
        )

    def __call__(self, *values: object) -> T:
        """An instance with these values of the ``varying`` fields (every one given:
        :attr:`make`, which a hot loop may call itself, takes exactly as many, and raises
        TypeError otherwise)."""
        return self.make(*values)

    def but(self, **shared: Any) -> Mold[T]:
        """This mold with other values of some shared fields."""
        return Mold(self._cls, self.varying, {**self._values, **shared})


def _slot(cls: type, name: str) -> _Put:
    """The setter of ``cls``'s slot ``name`` (frozen classes refuse ``setattr`` itself)."""
    slot = getattr(cls, name, None)
    if not isinstance(slot, types.MemberDescriptorType):
        raise TypeError(f"{cls.__name__}.{name} is not a slot")
    put: _Put = slot.__set__
    return put


def _maker(
    cls: type, shared: Sequence[tuple[_Put, object]], varying: Sequence[_Put]
) -> Callable[..., Any]:
    """A function of the varying values that makes an instance of ``cls`` and puts every
    value into its slot, one statement per slot. Its source is made of generated names
    alone (the setters and shared values are bound in its namespace), so nothing of the
    class or its values is ever compiled."""
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    params = ", ".join(f"v{i}" for i in range(len(varying)))
    lines = [f"def make({params}):", "    made = new(cls)"]
    for i, (put, value) in enumerate(shared):
        namespace[f"s{i}"], namespace[f"c{i}"] = put, value
        lines.append(f"    s{i}(made, c{i})")
    for i, put in enumerate(varying):
        namespace[f"p{i}"] = put
        lines.append(f"    p{i}(made, v{i})")
    lines.append("    return made")
    exec("\n".join(lines), namespace)  # noqa: S102 - generated names only, see above
    make: Callable[..., Any] = namespace["make"]
    return make
