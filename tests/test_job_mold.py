"""A mold makes the same record the class's own constructor makes, or refuses to exist.

The planner makes the jobs (and resolved assets) of a matrix's combinations with a
:class:`~pipeline.jobs.mold.Mold`, which fills the slots directly: these tests hold every
field of what it makes equal to the constructor's, defaults included, and show that a
class whose constructor does more than set fields is refused rather than bypassed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pipeline.jobs import ApiJob, InputRef
from pipeline.jobs.mold import Mold
from pipeline.planner.asset_jobs import API_VARYING

SHARED: dict[str, Any] = {
    "kind": "generate",
    "collection": "tiles",
    "model": "gpt-image-1",
    "provider": "preview",
    "endpoint": "images/generations",
    "params": {"size": "1024x1024", "quality": "low"},
    "size": (1024, 1024),
    "requested_size": (1024, 1024),
    "source": "specs/tiles.yaml:3",
    "palette": ("#E4572E",),
    "tags": ("ui",),
    "keep_original": True,
    "ops": (),
}
VARYING = ("tiles/a#2", "a", 2, "a prompt", "tiles/a.v2.png", 0.011, "k" * 64, None)


def _fields(record: object) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]


def test_a_molded_job_is_the_constructed_one() -> None:
    made = Mold(ApiJob, API_VARYING, SHARED)(*VARYING)
    built = ApiJob(**SHARED, **dict(zip(API_VARYING, VARYING, strict=True)))
    assert type(made) is ApiJob
    assert _fields(made) == _fields(built)  # every field, the defaults too
    assert made == built
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.prompt = "other"  # type: ignore[misc]


def test_but_changes_only_the_fields_it_names() -> None:
    image = InputRef(path="in.png", sha256="a" * 64, width=8, height=8, format="png", bytes=9)
    mold = Mold(ApiJob, API_VARYING, SHARED).but(inputs=(image,), kind="edit")
    made = mold(*VARYING)
    assert made.inputs == (image,)
    assert made.kind == "edit"
    assert made.params == SHARED["params"]
    assert made.mask is None


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    value: int
    other: str = "x"


def test_a_class_that_checks_its_fields_is_refused() -> None:
    with pytest.raises(TypeError, match="only sets its fields"):
        Mold(_Checked, ("value",), {})


@pytest.mark.parametrize(
    ("varying", "shared"),
    [
        (("value", "nope"), {}),  # no such field
        (("value",), {"value": 1}),  # given twice
        ((), {"other": "y"}),  # value has no default and is not given
    ],
)
def test_a_mold_that_would_leave_a_field_wrong_is_refused(
    varying: tuple[str, ...], shared: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        Mold(_Plain, varying, shared)


def test_each_varying_value_is_asked_for() -> None:
    mold = Mold(_Plain, ("value",), {})
    assert mold(3) == _Plain(3)
    with pytest.raises(TypeError):
        mold()
    with pytest.raises(TypeError):
        mold(1, 2)
