"""Unset values: false when a template tests them, an error when it prints them.

A brand kit may leave out ``style``, an asset has a ``size`` or an ``aspect`` but not
both, and one matrix value may have a key another lacks. Templates test for such values
(``{% if brand.style %}``, ``{{ asset.aspect or asset.size }}``, ``| default(...)``,
``is defined``) and that has to work. What must never happen is the value reaching a
paid prompt as an empty string or the word "None": printing it, joining or formatting
it into text, iterating over it, measuring it or computing with it stays an error,
reported at its template line by :mod:`pipeline.templating.failures`.

A name that nothing defines (``{% if colour %}``) is a misspelling far more often than
an optional value, so it stays an error even in a test; ``is defined`` and ``default``
still work on it. ``brand`` is the exception: a spec without a brand kit has none, and
a template shared by specs with and without one may test ``{% if brand %}``.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.utils import missing

OPTIONAL_NAMES = frozenset({"brand"})
"""Top-level names a template may test for although the spec does not set them."""


class Unset(jinja2.Undefined):
    """Jinja's undefined value: strict like ``StrictUndefined`` except where a template
    only asks whether the value is there.

    A field missing from a value that exists (``brand.style``, ``asset.aspect``,
    ``placement.ratio``) is false in a test, equal to nothing but another unset value,
    and chains (``brand.style.name`` is unset too, as in ``ChainableUndefined``).
    Everything that would put it into text fails with the undefined error.
    """

    __slots__ = ()

    def _is_optional(self) -> bool:
        """Whether this is a missing field (or an optional top-level name), rather than
        a misspelt name or a refusal of the sandbox (which carries a hint)."""
        if self._undefined_hint is not None:
            return False
        if self._undefined_exception is not jinja2.UndefinedError:
            return False
        if self._undefined_obj is missing:
            return self._undefined_name in OPTIONAL_NAMES
        return True

    def __bool__(self) -> bool:
        if not self._is_optional():
            self._fail_with_undefined_error()
        return False

    def __eq__(self, other: object) -> bool:
        if not self._is_optional():
            self._fail_with_undefined_error()
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        if not self._is_optional():
            self._fail_with_undefined_error()
        return id(type(self))

    def __getattr__(self, name: str) -> Any:
        # Python probes objects for protocols (``__html__``, ``__setstate__``): answer
        # those as an object without them, never with an unset value.
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        if not self._is_optional():
            self._fail_with_undefined_error()
        return self

    def __getitem__(self, key: Any) -> Any:
        if not self._is_optional():
            self._fail_with_undefined_error()
        return self

    # Whatever makes text of it, or looks inside it, is a mistake worth stopping for.
    __str__ = __iter__ = __len__ = __contains__ = jinja2.Undefined._fail_with_undefined_error
    __format__ = __repr__ = jinja2.Undefined._fail_with_undefined_error
