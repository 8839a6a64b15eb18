"""What happened to each job of a build, and how it is written into the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.jobs import Job, ProviderFailure
from pipeline.output import Companion, ManifestEntry

Status = Literal["generated", "cached", "up-to-date", "failed", "blocked", "skipped", "pending"]
OK_STATUSES = frozenset({"generated", "cached", "up-to-date"})


@dataclass(slots=True)
class Outcome:
    """The result of one job in one build."""

    job: Job
    status: Status
    cache_key: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    mtime_ns: int | None = None
    inputs: list[str] = field(default_factory=list)
    usage: Mapping[str, int] | None = None
    cost_usd: float = 0.0
    spent_usd: float = 0.0
    request_id: str | None = None
    returned_size: str | None = None
    error: Mapping[str, Any] | None = None
    attempts: int = 0
    checks: list[Mapping[str, Any]] | None = None
    phash: str | None = None
    provenance: Mapping[str, Any] | None = None
    companions: tuple[Companion, ...] | None = None
    """Files written beside the main one (a sheet's atlas JSON): path and sha256 each."""
    width: int | None = None
    height: int | None = None
    """The delivered size when only the build knows it (a packed sheet)."""
    batch_id: str | None = None
    """The batch that made the image, when it came through the Batch API."""

    @classmethod
    def from_entry(
        cls, job: Job, key: str | None, sha256: str | None, entry: ManifestEntry | None
    ) -> Outcome:
        """An up-to-date job: everything but the status as the manifest recorded it."""
        if entry is None:
            return cls(job, "up-to-date", cache_key=key, sha256=sha256)
        return cls(
            job,
            "up-to-date",
            cache_key=key,
            sha256=sha256,
            bytes=entry.bytes,
            mtime_ns=entry.mtime_ns,
            inputs=list(entry.inputs),
            usage=entry.usage,
            cost_usd=entry.cost_usd,
            request_id=entry.request_id,
            returned_size=entry.returned_size,
            checks=list(entry.checks) if entry.checks is not None else None,
            phash=entry.phash,
            provenance=entry.provenance,
            companions=entry.companions,
            width=entry.width,
            height=entry.height,
            batch_id=entry.batch_id,
        )

    @classmethod
    def from_failure(cls, job: Job, failure: ProviderFailure) -> Outcome:
        """A failed job, with the error as the manifest shows it."""
        error: dict[str, Any] = {
            "type": failure.kind,
            "code": failure.code,
            "message": failure.message,
        }
        if failure.status is not None:
            error["status"] = failure.status
        error.update(failure.details)
        return cls(
            job, "failed", error=error, request_id=failure.request_id, attempts=failure.attempts
        )

    @classmethod
    def pending(cls, job: Job, key: str, batch_id: str) -> Outcome:
        """A job whose request waits in an open batch (paid or about to be)."""
        error = {
            "type": "pending",
            "message": f"in the open batch {batch_id}; `assetpipe build --batch` collects it",
        }
        return cls(job, "pending", cache_key=key, error=error)

    @classmethod
    def waiting_for(cls, job: Job, source: Outcome) -> Outcome:
        """A job whose input is still in an open batch: it runs once that is collected."""
        error = {
            "type": "pending",
            "message": f"waits for {source.job.id}, which is in an open batch",
        }
        return cls(job, "pending", error=error)

    @classmethod
    def blocked(cls, job: Job, input_id: str) -> Outcome:
        """A job not run because one of its inputs failed (or was itself blocked)."""
        error = {"type": "blocked", "message": f"input {input_id} did not build"}
        return cls(job, "blocked", error=error)

    @classmethod
    def local_failure(cls, job: Job, exc: Exception, kind: str, cost: float = 0.0) -> Outcome:
        """A job that failed here, not at the provider (a decode, a write); ``cost`` is
        what its image cost when it had already been paid for."""
        error = {"type": kind, "code": None, "message": str(exc)}
        return cls(job, "failed", error=error, cost_usd=cost, spent_usd=cost)

    @property
    def ok(self) -> bool:
        """Whether the job's file is in place."""
        return self.status in OK_STATUSES

    def entry(self) -> ManifestEntry:
        """The manifest entry (the format is in docs/cli.md)."""
        job = self.job
        return ManifestEntry(
            job=job.id,
            collection=job.collection,
            asset=job.asset,
            variant=job.variant,
            kind=job.kind,
            path=job.output_path,
            sha256=self.sha256,
            bytes=self.bytes,
            mtime_ns=self.mtime_ns,
            width=self.width if self.width is not None else job.size[0],
            height=self.height if self.height is not None else job.size[1],
            format=job.format,
            model="-" if job.kind == "sheet" else job.model,
            provider=job.provider,
            prompt="" if job.kind == "sheet" else job.prompt,
            params=dict(job.params),
            requested_size=f"{job.requested_size[0]}x{job.requested_size[1]}",
            returned_size=self.returned_size,
            inputs=tuple(self.inputs),
            cache_key=self.cache_key,
            status=self.status,
            error=dict(self.error) if self.error else None,
            usage=dict(self.usage) if self.usage else None,
            cost_usd=round(self.cost_usd, 6),
            estimated_cost_usd=round(job.estimated_cost_usd, 6),
            request_id=self.request_id,
            source=job.source,
            checks=tuple(self.checks) if self.checks is not None else None,
            phash=self.phash,
            provenance=dict(self.provenance) if self.provenance else None,
            companions=self.companions or None,
            via="batch" if self.batch_id else None,
            batch_id=self.batch_id,
            ops=applied_ops(job),
            transparency=transparency_route(job),
        )


def applied_ops(job: Job) -> tuple[dict[str, Any], ...] | None:
    """The image operations a job's file went through, as the manifest records them."""
    calls = (
        job.ops
        if job.kind in ("generate", "edit")
        else job.op.ops
        if job.kind == "rendition"
        else ()
    )
    return tuple(c.as_dict() for c in calls) or None


def transparency_route(job: Job) -> dict[str, str] | None:
    """How the job's transparent background was made, when by the chroma route."""
    key = getattr(job, "chroma_key", None) if job.kind in ("generate", "edit") else None
    return {"route": "chroma", "key": key} if isinstance(key, str) else None


@dataclass(frozen=True, slots=True)
class RunReport:
    """Every job's outcome, why the build stopped early (if it did), and what it spent."""

    outcomes: Mapping[str, Outcome]
    stop_reason: str | None
    budget_hit: bool
    interrupted: bool
    spent_usd: float
    elapsed_s: float
