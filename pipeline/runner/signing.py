"""Signing a build's re-encoded files with the team's C2PA credentials, once each.

Which files are re-encoded, and what they were made from, is the runner's knowledge: a
paid image cropped or converted (its parent: the API's bytes), an operated file, a
rendition (its parent: its source's file) and a sheet (its frames). The signature itself
and its cache are :mod:`pipeline.postprocess.c2pa_files`; a file signed once is kept in
the cache and delivered again on every rebuild (see ``signature_request``), so its
sha256, and every key made from it, stays put. Without credentials nothing here runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.hashing import CacheRequest, sha256_bytes
from pipeline.jobs import ApiJob, Job, RenditionJob, SheetJob
from pipeline.postprocess.c2pa_files import signed_file
from pipeline.postprocess.c2pa_sign import Parent, Signing
from pipeline.runner.inputs import InputReader
from pipeline.runner.restoring import Restored
from pipeline.store import CacheRecord, InspectionMemo, ResultStore

if TYPE_CHECKING:
    from pipeline.runner.outcome import Outcome
    from pipeline.runner.paid import Kept

Commit = Callable[[CacheRequest, bytes, bytes | None, Mapping[str, Any]], "Kept"]


class Signed:
    """Signs the files of one build (a no-op without credentials)."""

    def __init__(
        self,
        signing: Signing | None,
        store: ResultStore,
        inputs: InputReader,
        outcomes: Mapping[str, Outcome],
        commit: Commit,
    ):
        self.signing = signing
        self.store = store
        self.inputs = inputs
        self.outcomes = outcomes
        self.commit = commit

    @property
    def fingerprint(self) -> str | None:
        """The credentials' fingerprint for keys (None: files are not signed)."""
        return self.signing.fingerprint if self.signing is not None else None

    def paid(
        self, job: ApiJob, data: bytes, original: bytes | None, sha: str | None
    ) -> tuple[bytes, str | None]:
        """A paid image's file and its sha256: signed when it is not the API's bytes."""
        if original is None or (original == data and not job.ops):
            return data, sha
        signed = self._sign(
            job, data, [sha256_bytes(original)], lambda: [_original(job, original)], job.ops
        )
        return (data, sha) if signed is data else (signed, sha256_bytes(signed))

    def rendition(self, job: RenditionJob, data: bytes, source: bytes) -> bytes:
        """A rendition, signed with its source's file as its parent."""
        parent = self.outcomes[job.parent]
        title = parent.job.output_path.rsplit("/", 1)[-1]
        shas = [parent.sha256 or sha256_bytes(source)]
        return self._sign(job, data, shas, lambda: [Parent(source, title)], job.op.ops)

    def sheet(self, job: SheetJob, data: bytes) -> bytes:
        """A sheet, signed as a composite of its frames."""
        frames = [self.outcomes[dep] for dep in job.depends_on]
        shas = [frame.sha256 or "" for frame in frames]

        def parents() -> list[Parent]:
            return [Parent(self.inputs.delivered(f.job, f.sha256), _name(f.job)) for f in frames]

        return self._sign(job, data, shas, parents, (), composite=True)

    def restored(
        self, job: Job, record: CacheRecord, restored: Restored, memo: InspectionMemo
    ) -> Restored:
        """A file restored from the cache, signed as a fresh one is (the signature is
        itself cached, so this reads only its bytes)."""
        if self.signing is None:
            return restored
        data = restored.data
        if isinstance(job, ApiJob):
            original = restored.original
            source_sha = record.original or record.blob
            if original is None and not job.ops:
                return restored
            if isinstance(original, bytes) and original == data and not job.ops:
                return restored

            def api_parent() -> list[Parent]:
                source = original if isinstance(original, bytes) else None
                source = source or self.store.read_blob(source_sha)
                return [_original(job, source)] if source is not None else []

            signed = self._sign(job, data, [source_sha], api_parent, job.ops)
        elif isinstance(job, RenditionJob):
            parent = self.outcomes[job.parent]
            source = self.inputs.delivered
            shas = [parent.sha256 or ""]
            signed = self._sign(
                job,
                data,
                shas,
                lambda: [Parent(source(parent.job, parent.sha256), _name(parent.job))],
                job.op.ops,
            )
        elif isinstance(job, SheetJob):
            signed = self.sheet(job, data)
        else:
            return restored
        if signed is data:
            return restored
        sha = sha256_bytes(signed)
        return Restored(restored.original, signed, sha, memo.inspection(sha))

    def _sign(
        self,
        job: Job,
        data: bytes,
        parent_shas: Sequence[str],
        parents: Callable[[], Sequence[Parent]],
        edited: Sequence[object],
        *,
        composite: bool = False,
    ) -> bytes:
        if self.signing is None:
            return data

        def lookup(asked: CacheRequest) -> bytes | None:
            hit = self.store.get(asked)
            return hit[1] if hit is not None else None

        def keep(asked: CacheRequest, signed: bytes) -> bytes:
            return self.commit(asked, signed, None, {"kind": "signed"}).data

        return signed_file(
            self.signing,
            data,
            _name(job),
            parent_shas,
            parents,
            lookup,
            keep,
            edited=bool(edited),
            composite=composite,
        )


def _name(job: Job) -> str:
    return job.output_path.rsplit("/", 1)[-1]


def _original(job: Job, data: bytes) -> Parent:
    """The API's image, named as ``keep_original`` would write it."""
    stem = _name(job).rsplit(".", 1)[0]
    return Parent(data, f"{stem}.original")
