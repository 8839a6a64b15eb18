"""Making many records of one frozen, slotted dataclass that share most of their values.

A plan of a 100,000-combination matrix makes 100,000 jobs (and as many resolved assets)
that differ in a handful of fields: the id, the path, the prompt, the key. The
constructor a frozen dataclass generates sets each of the 26 fields of an
:class:`~pipeline.jobs.job.ApiJob` through ``object.__setattr__`` (about 5 us a job);
``dataclasses.replace`` of a prototype first reads every field back (twice that).
A :class:`Mold` puts each value straight into its slot through the slot's own
descriptor, the shared ones from a list made once: the same record, at half the cost.

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

    __slots__ = ("_cls", "_shared", "_values", "_varying", "varying")

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
        self._shared = tuple((_slot(cls, n), v) for n, v in values.items())
        self._varying = tuple(_slot(cls, n) for n in varying)

    def __call__(self, *values: object) -> T:
        """An instance with these values of the ``varying`` fields (every one given)."""
        if len(values) != len(self._varying):
            raise TypeError(f"{self._cls.__name__} mold takes {len(self._varying)} values")
        made: T = object.__new__(self._cls)
        for put, value in self._shared:
            put(made, value)
        for put, value in zip(self._varying, values):  # noqa: B905 - lengths checked above
            put(made, value)
        return made

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
