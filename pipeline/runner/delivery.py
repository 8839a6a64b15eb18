"""Writing a delivered file and inspecting it: quality checks, provenance, atlases.

Runs in a worker thread after the paid bytes are already in the cache: nothing here can
lose a result, and everything here can be recomputed from the cache on the next build.

Inspecting is a pure function of the written bytes (and of what the checks are asked), so
it is memoised by their sha256 (:mod:`pipeline.store.memo`): a file delivered again (after
``rm -rf output/``, or restored from the cache) is written and recorded, and its checks,
perceptual hash and thumbnail are read back instead of decoding the image again. What
depends on the pixels alone is memoised by the name of a PNG's pixels as well
(:mod:`pipeline.postprocess.pixels`): files that differ only in their text (each API
answer's identifier, the job's stamp) are decoded once between them. Output
files are renamed into place but not synced: the cache holds the paid bytes (synced), and
a file lost to a crash no longer matches the manifest, so the next build copies it again.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import checks, ops, postprocess
from pipeline.gallery import encode_thumbnail, has_thumbnail, keep_thumbnail, link_thumbnail
from pipeline.hashing import canonical_json, sha256_bytes
from pipeline.jobs import ApiJob, Job, PinnedJob, RenditionJob, SheetJob
from pipeline.jobs.atlases import AtlasLayoutError, atlas_options, render_atlases
from pipeline.output import Companion, OutputTree
from pipeline.postprocess import Sample
from pipeline.postprocess.c2pa_read import may_hold_store
from pipeline.postprocess.c2pa_sign import Signing
from pipeline.postprocess.pixels import pixel_digest
from pipeline.runner.credentials import c2pa_check, c2pa_provenance, original_verdict
from pipeline.runner.inputs import InputReader
from pipeline.runner.outcome import Outcome, Status
from pipeline.sheets import SheetError, SheetOptions, render_sheet
from pipeline.sizes import parse_size
from pipeline.store import Inspection, InspectionMemo, NoMemo


@dataclass(frozen=True, slots=True)
class Stored:
    """A delivered file on disk and what inspecting it found."""

    mtime_ns: int
    sha256: str
    bytes: int
    checks: list[Mapping[str, Any]]
    phash: str | None
    provenance: dict[str, Any]
    companions: tuple[Companion, ...] | None = None
    width: int | None = None
    height: int | None = None

    def outcome(
        self, job: Job, status: Status, key: str, inputs: list[str], **fields: Any
    ) -> Outcome:
        """The outcome of a job whose file this is; ``fields`` describe the call (if any)."""
        return Outcome(
            job,
            status,
            cache_key=key,
            sha256=self.sha256,
            bytes=self.bytes,
            inputs=inputs,
            mtime_ns=self.mtime_ns,
            checks=self.checks,
            phash=self.phash,
            provenance=self.provenance,
            companions=self.companions,
            width=self.width,
            height=self.height,
            **fields,
        )


@dataclass(frozen=True, slots=True)
class OriginalFacts:
    """The API's bytes behind a cached file, when they differ from the delivered ones and
    were not read: what the provenance needs to know about them (from the memo)."""

    sha256: str
    c2pa: bool


class Delivery:
    """Writes delivered files into the output tree and inspects them (memoised)."""

    def __init__(
        self,
        output: OutputTree,
        jobs: Mapping[str, Job],
        embed_metadata: bool,
        placeholders: bool = False,
        memo: InspectionMemo | None = None,
        *,
        signing: Signing | None = None,
    ):
        self.signing = signing
        """Re-encoded files arrive signed with these C2PA credentials (see
        :mod:`pipeline.runner.signing`); a PNG text stamp would break the signature."""
        self.output = output
        self.jobs = jobs
        self.embed_metadata = embed_metadata
        self.placeholders = placeholders
        """Images of a free provider (``preview``) are drawn placeholders: checking their
        colors against the brand would only report noise."""
        self.memo: InspectionMemo = memo if memo is not None else NoMemo()
        self._lock = threading.Lock()
        self._pictures: dict[str, threading.Lock] = {}
        """One lock per PNG picture (by its pixels' name) being inspected."""

    def store(
        self,
        job: Job,
        key: str,
        data: bytes,
        original: bytes | OriginalFacts | None,
        atlas: bytes | None,
        inherited: Sequence[Mapping[str, Any]] = (),
        *,
        sha256: str | None = None,
        sample: Sample | None = None,
        known: Inspection | None = None,
    ) -> Stored:
        """Write a delivered file, then inspect it: quality checks and provenance.

        ``original`` is what the API returned (None for local files such as renditions),
        or what the memo knows of it when it differs and was not read. A rendition takes
        its source's ``palette`` verdict from ``inherited`` (the source's checks): the
        colors are the source's, only smaller. ``sha256`` (of ``data``, when the caller
        verified it) and ``sample`` (of ``data``'s pixels, when the caller decoded them)
        save hashing and decoding again, and ``known`` (what the memo knows of ``data``)
        reading the memo again. Bytes that must be decoded are decoded before the file is
        written, so an :class:`~pipeline.postprocess.ImageDecodeError` leaves no file.
        """
        written = data
        signed = self.signing is not None and postprocess.has_c2pa(data)
        if self.embed_metadata and job.format == "png" and not signed:
            stamp = json.dumps({"job": job.id, "cache_key": key}, sort_keys=True)
            written = postprocess.with_png_text(data, "assetpipe", stamp)
        sha = sha256 if sha256 is not None and written is data else sha256_bytes(written)
        look = _Look(self.memo, sha, written, sample, known if written is data else None)
        data_sha = sha if written is data else sha256
        with self._once_per_picture(job, look):
            if not self._knows_written(job, look.known):
                look.sample()  # decoded before the file is written: an undecodable one never lands
            return self._write_and_inspect(job, data, data_sha, original, atlas, inherited, look)

    @contextlib.contextmanager
    def _once_per_picture(self, job: Job, look: _Look) -> Iterator[None]:
        """Around the inspection of a file the memo does not know all of: what the memo
        of its pixels knows is added first, and files with the same pixels are inspected
        one after the other, so the first one's work is read back by the others instead
        of done again at the same time in another thread."""
        if self._knows_written(job, look.known) or look.pixel() is None:
            yield
            return
        with self._lock:
            picture = self._pictures.setdefault(str(look.pixel()), threading.Lock())
        with picture:
            look.recall_pixels()
            yield

    def _write_and_inspect(
        self,
        job: Job,
        data: bytes,
        data_sha: str | None,
        original: bytes | OriginalFacts | None,
        atlas: bytes | None,
        inherited: Sequence[Mapping[str, Any]],
        look: _Look,
    ) -> Stored:
        """:meth:`store`'s work once the bytes to write (``look.data``) are known;
        ``data_sha`` is the sha256 of ``data`` when known (None: not hashed yet)."""
        written, sha = look.data, look.sha
        path = self.output.write(job.output_path, written, fsync=False)
        mtime, size = path.stat().st_mtime_ns, len(written)
        companions = None
        if atlas is not None and job.kind == "sheet":
            companions = self._atlases(job, atlas)
        if job.kind == "sheet":
            width, height = look.size()
            self._thumbnail(look)
            look.remember()
            self._share(look, data, data_sha)
            return Stored(
                mtime,
                sha,
                size,
                [],
                None,
                c2pa_provenance(
                    {"reencoded": True, "c2pa": postprocess.has_c2pa(written)},
                    self.memo,
                    sha,
                    written,
                    None,
                ),
                companions,
                width,
                height,
            )
        found = look.checks(self._check_config(job))
        if job.kind == "rendition":
            found += [dict(c) for c in inherited if c.get("name") == "palette"]
        phash = look.phash()
        provenance = self._provenance(job, data, original)
        facts = original if isinstance(original, OriginalFacts) else None
        api = None
        # API bytes that cannot hold a manifest store have no verdict: neither read nor
        # looked up (a memo entry claiming one for them would be a planted one).
        if facts is not None or (isinstance(original, bytes) and may_hold_store(original)):
            api = original_verdict(
                self.memo,
                original if isinstance(original, bytes) else None,
                # The API's bytes are often the delivered ones: their hash is known already.
                data_sha if original is data else facts.sha256 if facts is not None else None,
            )
        provenance = c2pa_provenance(provenance, self.memo, sha, written, api)
        found += c2pa_check(provenance)
        self._thumbnail(look)  # last: it shrinks the sample
        look.remember()
        self._share(look, data, data_sha)
        operated = look.size() if sized_by_content(job) else operated_size(job)
        return Stored(
            mtime_ns=mtime,
            sha256=sha,
            bytes=size,
            checks=found,
            phash=phash,
            provenance=provenance,
            width=operated[0] if operated else None,
            height=operated[1] if operated else None,
        )

    def _atlases(self, job: SheetJob, layout: bytes) -> tuple[Companion, ...]:
        """Write each of the sheet's atlases, made from its layout (the default format's
        JSON, as packed or as the cache kept it) and its options (animation, Godot folder)."""
        base = job.output_path.rsplit(".", 1)[0]
        try:
            options = atlas_options(job.params, job.asset)
            made = render_atlases(layout, job.atlases, base, options, job.frames)
        except AtlasLayoutError as exc:
            raise SheetError(f"{job.id}: the cached atlas is damaged ({exc})") from None
        companions = []
        for _, path in job.atlases:
            self.output.write(path, made[path], fsync=False)
            companions.append(Companion(path, sha256_bytes(made[path])))
        return tuple(companions)

    def knows(self, job: Job, known: Inspection | None) -> bool:
        """Whether ``known`` (the memo's record of ``job``'s delivered bytes) holds all that
        storing the file needs: then nothing is decoded."""
        if self.embed_metadata and job.format == "png":  # the written bytes are others
            return False
        return self._knows_written(job, known)

    def _knows_written(self, job: Job, known: Inspection | None) -> bool:
        """:meth:`knows`, of the bytes that are written (``known`` is of those)."""
        if known is None or known.thumbnail is None:
            return False
        if job.kind == "sheet":
            return known.width is not None and known.height is not None
        return (
            config_digest(self._check_config(job)) in known.checks
            and known.phash is not None
            and known.method == checks.PHASH_METHOD
        )

    def _check_config(self, job: ApiJob | RenditionJob | PinnedJob) -> dict[str, Any]:
        """What the checks of ``job``'s file are asked: with the checks' version, the key
        of their memoised verdicts."""
        source = self.jobs.get(job.parent) if job.kind == "rendition" else job
        transparent = source is not None and (
            source.params.get("background") == "transparent"
            or getattr(source, "chroma_key", None) is not None
        )
        own_palette = not self.placeholders and job.kind != "rendition"
        width, height = operated_size(job) or job.size
        content_sized = sized_by_content(job)
        return {
            "version": checks.CHECKS_VERSION,
            "width": None if content_sized else width,
            "height": None if content_sized else height,
            "expect_alpha": transparent and job.format != "jpeg",
            "palette": list(job.palette) if own_palette else [],
            "tolerance": checks.PALETTE_DEFAULT_TOLERANCE,
        }

    def _provenance(
        self, job: Job, data: bytes, original: bytes | OriginalFacts | None
    ) -> dict[str, Any]:
        c2pa = postprocess.has_c2pa(data)
        if isinstance(original, OriginalFacts):
            return {
                "reencoded": True,
                "c2pa": c2pa,
                "c2pa_in_original": original.c2pa,
                "original_path": None,
            }
        reencoded = original is None or original != data
        provenance: dict[str, Any] = {
            "reencoded": reencoded,
            "c2pa": c2pa,
            "c2pa_in_original": (c2pa if original is data else postprocess.has_c2pa(original))
            if original
            else None,
            "original_path": None,
        }
        if original is not None and reencoded:
            # The provenance of a restore reads this instead of the original's bytes.
            self.memo.remember(
                sha256_bytes(original), Inspection(c2pa=provenance["c2pa_in_original"])
            )
            if isinstance(job, ApiJob) and job.keep_original:
                fmt = postprocess.probe(original).format
                stem = job.output_path.rsplit(".", 1)[0]
                kept = f"{stem}.original.{'jpg' if fmt == 'jpeg' else fmt}"
                self.output.write(kept, original, fsync=False)
                provenance["original_path"] = kept
        return provenance

    def _thumbnail(self, look: _Look) -> None:
        """The gallery thumbnail of the file: in the tree already, else the memo's (of the
        file, else of its pixels), else drawn and memoised (with the pixels when they have
        a name); the memo's file is shared with the tree (see :meth:`_share_thumbnail`)."""
        if has_thumbnail(self.output, look.sha):
            return
        known = look.known.thumbnail
        if known is not None and self._share_thumbnail(look, known):
            return
        thumbnail = encode_thumbnail(look.sample().small)
        digest = sha256_bytes(thumbnail)
        pixel = look.pixel()
        if pixel is not None:
            self.memo.pixels().keep_thumbnail(pixel, thumbnail)
        else:
            self.memo.keep_thumbnail(look.sha, thumbnail)
        look.learn(thumbnail=digest)
        look.drawn = thumbnail
        if not self._share_thumbnail(look, digest):  # no memo to share from
            keep_thumbnail(self.output, look.sha, thumbnail)

    def _share(self, look: _Look, data: bytes, data_sha: str | None) -> None:
        """Offer the team what inspecting these pixels found here, when this machine drew
        their thumbnail (so it did the work: what it read from the memo, or another
        machine shared, is not offered again), under the name of the cached image
        ``data`` (the one a restore downloads)."""
        if look.drawn is None or not self.memo.shares():
            return
        pixel = look.pixel()
        if pixel is None and look.data is not data:  # facts of other bytes than the image's
            return
        facts = _pixel_facts(look.known.merged(look.found))
        blob = data_sha if data_sha is not None else sha256_bytes(data)
        self.memo.share(blob, pixel, facts, look.drawn)

    def _share_thumbnail(self, look: _Look, digest: str) -> bool:
        """Put the memo's thumbnail of the file (or of its pixels) in the tree when it is
        the one named ``digest``: a hard link (no file to create), or a copy where the
        file systems differ. Whether it was there to share."""
        kept_by = [(self.memo, look.sha)]
        pixel = look.pixel()
        if pixel is not None:  # where a PNG's thumbnail is kept (:meth:`_thumbnail`): first
            kept_by.insert(0, (self.memo.pixels(), pixel))
        for memo, name in kept_by:
            with memo.thumbnail_file(name, digest) as kept:
                if kept is None:
                    continue
                if not link_thumbnail(self.output, look.sha, kept.fd):
                    keep_thumbnail(self.output, look.sha, kept.data)
                return True
        return False


class _Look:
    """The inspection of one written file: from the memo where it knows, decoded (once)
    where it does not; what was found is remembered at the end."""

    def __init__(
        self,
        memo: InspectionMemo,
        sha: str,
        data: bytes,
        sample: Sample | None,
        known: Inspection | None = None,
    ):
        self.memo = memo
        self.sha = sha
        self.data = data
        self._sample = sample
        self.known = known or memo.inspection(sha) or Inspection()
        self.found = Inspection()
        self._pixel: str | None = None
        self._named = False
        self._recalled = Inspection()
        """What the memo of pixels knew (not written back to it)."""
        self.drawn: bytes | None = None
        """The thumbnail, when it was drawn here (not found in a memo)."""

    def pixel(self) -> str | None:
        """The name of the file's pixels (a PNG's: see :func:`pixel_digest`), or None."""
        if not self._named:
            self._pixel = pixel_digest(self.data)
            self._named = True
        return self._pixel

    def recall_pixels(self) -> None:
        """Add what the memo of pixels knows of this file's (its own memo's facts first);
        it is remembered for the file too, so the next restore of its bytes reads it
        without naming the pixels."""
        pixel = self.pixel()
        shared = self.memo.pixels().inspection(pixel) if pixel is not None else None
        if shared is None:
            return
        facts = self._recalled = _pixel_facts(shared)
        self.known = facts.merged(self.known)
        self.found = facts.merged(self.found)

    def sample(self) -> Sample:
        """The file's pixels, decoded at most once."""
        if self._sample is None:
            self._sample = postprocess.sample_bytes(self.data)
        return self._sample

    def size(self) -> tuple[int, int]:
        """The image's width and height."""
        if self.known.width is not None and self.known.height is not None:
            return self.known.width, self.known.height
        info = self.sample().info
        self.learn(width=info.width, height=info.height)
        return info.width, info.height

    def checks(self, config: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The checks ``config`` asks for (see ``Delivery._check_config``)."""
        digest = config_digest(config)
        memoised = self.known.checks.get(digest)
        if memoised is not None:
            return [dict(c) for c in memoised]
        found: list[Mapping[str, Any]] = [
            c.as_dict()
            for c in checks.run_checks(
                self.sample(),
                width=config["width"],
                height=config["height"],
                expect_alpha=config["expect_alpha"],
                palette=config["palette"],
                palette_tolerance=config["tolerance"],
            )
        ]
        info = self.sample().info
        self.learn(width=info.width, height=info.height, checks={digest: tuple(found)})
        return found

    def phash(self) -> str:
        """The perceptual hash, as the manifest records it (16 hex digits)."""
        if self.known.phash is not None and self.known.method == checks.PHASH_METHOD:
            return self.known.phash
        phash = f"{checks.perceptual_hash(self.sample()):016x}"
        self.learn(phash=phash, method=checks.PHASH_METHOD)
        return phash

    def learn(self, **facts: Any) -> None:
        """Note what was found, to remember it at the end."""
        self.found = self.found.merged(Inspection(**facts))

    def remember(self) -> None:
        """Keep what was found (nothing to write when the memo knew it all), and what of it
        depends on the pixels alone under their name too."""
        found = self.found
        if found == Inspection():
            return
        self.memo.remember(self.sha, found)
        pixel = self.pixel() if self._named or self._sample is not None else None
        facts = _pixel_facts(found)
        if pixel is not None and facts not in (Inspection(), self._recalled):
            self.memo.pixels().remember(pixel, facts)


def _pixel_facts(inspection: Inspection) -> Inspection:
    """What of an inspection depends on the pixels alone (not the C2PA verdicts, which
    depend on the bytes)."""
    return Inspection(
        width=inspection.width,
        height=inspection.height,
        phash=inspection.phash,
        method=inspection.method,
        thumbnail=inspection.thumbnail,
        checks=inspection.checks,
    )


def operated_size(job: Job) -> tuple[int, int] | None:
    """The size of an API job's file when its ``ops:`` make it (None without them): its
    ``size`` is what the API's image is cut to before they run."""
    if isinstance(job, ApiJob) and job.ops:
        return ops.chain_size(job.size, job.ops)
    return None


def sized_by_content(job: Job) -> bool:
    """Whether the size of the job's file is decided by its pixels (a ``trim`` not
    followed by an operation of one size): then the file's own size is recorded."""
    if isinstance(job, ApiJob):
        calls = job.ops
    elif isinstance(job, RenditionJob):
        calls = job.op.ops
    else:
        return False
    return bool(calls) and not ops.chain_exact(calls)


def config_digest(config: Mapping[str, Any]) -> str:
    """The memo's name for a check configuration."""
    return sha256_bytes(canonical_json(config).encode())[:32]


def make_sheet(
    reader: InputReader, job: SheetJob, finished: Mapping[str, Outcome]
) -> tuple[bytes, bytes]:
    """Pack a sheet job's frames: the sheet image and its TexturePacker JSON."""
    frames = [
        (name, reader.delivered(finished[dep].job, finished[dep].sha256))
        for name, dep in zip(job.frames, job.depends_on, strict=True)
    ]
    size = job.params.get("frame_size")
    options = SheetOptions(
        padding=int(job.params["padding"]),
        power_of_two=bool(job.params["power_of_two"]),
        max_size=int(job.params["max_size"]),
        format=str(job.params["format"]),
        frame_size=parse_size(str(size)) if size else None,
    )
    return render_sheet(frames, options, job.output_path.rsplit("/", 1)[-1])
