"""Project settings: ``assetpipe.yaml``, environment variables and command-line flags.

Precedence is CLI flags > environment > ``assetpipe.yaml`` > built-in defaults. Only this
module and the composition root read settings; everything below gets plain values.

Every number has a range, wherever it comes from: a pace of ``1e-9`` images a minute
waits for millennia, ``inf`` or ``nan`` breaks the arithmetic of pacing and budgets, and
neither should get as far as a build. A value out of range is an error that names the
setting, where it came from (the flag, the variable, or its line in ``assetpipe.yaml``)
and the range; a value a user gave is echoed cut short (:func:`echo`), never whole.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from pipeline.catalog import Catalog
from pipeline.errors import Location, SpecError, UsageError, did_you_mean, shortened
from pipeline.exports import ConfiguredExport, configured_exports
from pipeline.jobs.shards import PacingNote, SharedLimit
from pipeline.postprocess.c2pa_config import load_signing
from pipeline.postprocess.c2pa_sign import Signing
from pipeline.providers import registry
from pipeline.spec.loader import inside
from pipeline.spec.models import Strict
from pipeline.spec.validation import validate
from pipeline.spec.yamlsource import YMap, load_yaml
from pipeline.store import REMOTE_MODES, RemoteMode
from pipeline.store.shared_format import parse_url

SETTINGS_FILE = "assetpipe.yaml"

ENV = {
    "provider": "ASSETPIPE_PROVIDER",
    "model": "ASSETPIPE_MODEL",
    "output": "ASSETPIPE_OUTPUT",
    "cache_dir": "ASSETPIPE_CACHE_DIR",
    "concurrency": "ASSETPIPE_CONCURRENCY",
    "images_per_minute": "ASSETPIPE_IMAGES_PER_MINUTE",
    "requests_per_minute": "ASSETPIPE_REQUESTS_PER_MINUTE",
    "limit_scope": "ASSETPIPE_LIMIT_SCOPE",
    "max_cost": "ASSETPIPE_MAX_COST",
    "timeout": "ASSETPIPE_TIMEOUT",
    "max_attempts": "ASSETPIPE_MAX_ATTEMPTS",
    "batch_poll_seconds": "ASSETPIPE_BATCH_POLL_SECONDS",
}
"""Environment variables, one per setting that makes sense to set per machine or CI job."""
REMOTE_ENV = ("ASSETPIPE_REMOTE_CACHE", "ASSETPIPE_REMOTE_CACHE_MODE")
"""The shared cache's URL and mode (``remote_cache: {url, mode}`` in assetpipe.yaml)."""
C2PA_KEY_ENV = "ASSETPIPE_C2PA_KEY"
"""The C2PA signing key as PEM text (a CI secret), over ``provenance.sign.key``."""
REQUIRED_ENV = "ASSETPIPE_REMOTE_CACHE_REQUIRED"
"""``1``: a shared cache that cannot be read stops every command before anything is paid."""


MAX_PRICE = 1_000_000
"""USD per 1M tokens; far above any price, and finite (``inf`` would make every job's
estimate, and so the budget check, meaningless)."""
MAX_TOKENS = 1_000_000
"""Tokens of one image; far above any model's."""
MAX_PER_MINUTE = 1_000_000
"""Above any account's limits; a pace is a finite number (``inf`` is not a pace)."""


class PriceOverride(Strict):
    """One model's price fields a project may override (USD per 1M tokens; token counts).

    A model of its own (rather than a free dict) so a misspelt field is reported at its
    line with a did-you-mean, like every other unknown key.
    """

    text_input: Annotated[float, Field(ge=0, le=MAX_PRICE)] | None = None
    image_input: Annotated[float, Field(ge=0, le=MAX_PRICE)] | None = None
    image_output: Annotated[float, Field(ge=0, le=MAX_PRICE)] | None = None
    output_tokens: dict[str, Annotated[int, Field(ge=0, le=MAX_TOKENS)]] | None = None
    input_image_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS)] | None = None
    per_image: Annotated[float, Field(ge=0, le=MAX_PRICE)] | None = None
    """USD per image on top of the tokens (a provider that bills by the image)."""


class RemoteCacheFile(Strict):
    """``remote_cache:`` in assetpipe.yaml: the team's shared cache (docs/caching.md)."""

    url: str
    """``s3://``, ``gs://``, ``az://`` or ``file:///`` (docs/caching.md); credentials come
    from each cloud's standard variables."""
    mode: RemoteMode = "read-write"
    required: bool = False
    """Whether a shared cache that cannot be read stops a command (exit 2) rather than
    being a warning: a CI shard that would pay again for what the bucket holds."""


class SignFile(Strict):
    """``provenance: {sign: ...}``: the team's C2PA credentials (docs/delivery.md)."""

    cert: str
    """A PEM file: the signing certificate, then its intermediates."""
    key: str | None = None
    """A PEM file holding the private key (or ``ASSETPIPE_C2PA_KEY`` holds the PEM text)."""
    alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    tsa_url: str | None = None
    """An RFC 3161 timestamp authority, asked for a timestamp with every signature."""


class ProvenanceFile(Strict):
    """``provenance:`` in assetpipe.yaml."""

    sign: SignFile | None = None


class QaFile(Strict):
    """``qa:``: the quality gate's judge, how many rerolls a failing asset gets, and the
    detail its image is sent at (docs/quality.md)."""

    model: str | None = None
    rerolls: Annotated[int, Field(ge=0, le=8)] = 0
    detail: Literal["low", "high", "auto"] = "low"
    enabled: bool = True
    """Whether a build judges by default (``--qa/--no-qa`` and ``ASSETPIPE_QA`` win)."""


@dataclass(frozen=True, slots=True)
class QaSettings:
    """The quality gate of one run, when it is on."""

    model: str
    rerolls: int = 0
    detail: Literal["low", "high", "auto"] = "low"


QA_ENV = "ASSETPIPE_QA"
"""``1``/``0``: judge delivered images or not (over ``qa.enabled``; ``--qa/--no-qa`` win)."""


class ReviewFile(Strict):
    """``review:``: the review page (``assetpipe review``)."""

    partial_images: Annotated[int, Field(ge=0, le=3)] = 1
    """Previews streamed while a reroll from the page is made (0: none). One by default:
    it shows the image coming at the least extra cost (OpenAI has billed about 100 output
    tokens per partial image)."""


class SettingsFile(Strict):
    """The keys of ``assetpipe.yaml``."""

    specs: str = "specs"
    templates: str = "templates"
    output: str = "output"
    cache_dir: str = ".assetpipe"
    provider: str | None = None
    model: str | None = None
    concurrency: Annotated[int, Field(ge=1, le=512)] = 8
    images_per_minute: Annotated[float, Field(ge=0.1, le=MAX_PER_MINUTE)] | None = None
    """At least one image every ten minutes: slower is a build that never ends."""
    requests_per_minute: Annotated[float, Field(ge=0.1, le=MAX_PER_MINUTE)] | None = None
    limit_scope: Literal["organisation", "shard"] = "organisation"
    """Whose rate limits these are: the organisation's, shared by the shards of a
    ``--shard i/n`` build (each paces at 1/n to begin with), or each shard's own."""
    max_cost: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    timeout: Annotated[float, Field(ge=0.1, le=3600)] = 600.0
    """Seconds; the longest image takes minutes, and a timeout of an hour already means
    a request that hangs holds its slot for an hour."""
    max_attempts: Annotated[int, Field(ge=1, le=50)] = 6
    max_jobs: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    embed_metadata: bool = False
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    batch_poll_seconds: Annotated[float, Field(ge=0.01, le=3600)] = 30.0
    batch_max_lines: Annotated[int, Field(ge=1, le=50_000)] = 1000
    remote_cache: RemoteCacheFile | None = None
    exports: list[dict[str, Any]] | None = None
    """``{format: NAME, ...options}`` entries (:mod:`pipeline.exports`); None: the defaults."""
    provenance: ProvenanceFile | None = None
    qa: QaFile | None = None
    review: ReviewFile = Field(default_factory=ReviewFile)


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one run, with absolute paths."""

    root: Path
    specs_dir: Path
    templates_dir: Path
    output_dir: Path
    cache_dir: Path
    provider: str
    provider_is_default: bool
    model: str | None
    concurrency: int
    images_per_minute: float | None
    requests_per_minute: float | None
    max_cost: float | None
    timeout: float
    max_attempts: int
    max_jobs: int
    embed_metadata: bool
    prices: Mapping[str, Mapping[str, Any]]
    batch_poll_seconds: float = 30.0
    """The first wait between polls of an open batch (it grows to 10x this)."""
    batch_max_lines: int = 1000
    """Requests per batch: smaller batches finish, and start paying off, sooner."""
    remote_cache: str | None = None
    """The shared cache's URL, e.g. ``s3://bucket/prefix`` (None: this machine's cache only)."""
    remote_cache_mode: RemoteMode = "read-write"
    remote_cache_required: bool = False
    """A shared cache that cannot be read is exit 2 before anything is paid."""
    exports: tuple[ConfiguredExport, ...] = ()
    """The exporters a build runs, validated (``exports:``; the gallery by default)."""
    signing: Signing | None = None
    """The C2PA credentials re-encoded files are signed with (None: they are not)."""
    qa: QaSettings | None = None
    """The quality gate (None: delivered images are not judged)."""
    limit_scope: Literal["organisation", "shard"] = "organisation"
    shards: int = 1
    """``n`` of ``--shard i/n`` (1: not sharded)."""
    shard_share: float | None = None
    """This shard's part of the build's paid jobs: its part of a shared limit."""
    shared_limit: SharedLimit | None = None
    """Every shard's paid jobs and this shard's place: the turns the shards take."""
    review_partial_images: int = 1
    """Previews streamed while a reroll from the review page is made (0: none)."""

    @property
    def limit_sharers(self) -> int:
        """How many processes spend the rate limits together: the shards of one build
        when the limits are the organisation's."""
        return self.shards if self.limit_scope == "organisation" else 1

    def pacing_note(self) -> PacingNote | None:
        """What the progress line and ``build --json`` say about a shared limit."""
        if self.shards == 1:
            return None
        turns = self.shared_limit is not None and self.limit_sharers > 1
        return PacingNote(self.images_per_minute, self.limit_sharers, self.shard_share, turns)

    @property
    def provider_entry(self) -> registry.ProviderEntry:
        """The chosen provider's registry entry (settings only hold known names)."""
        entry = registry.get(self.provider)
        if entry is None:  # pragma: no cover - resolve_settings admits registered names only
            raise UsageError(f"unknown provider '{self.provider}'")
        return entry

    def catalog(self) -> Catalog:
        """The chosen provider's model table with this project's price overrides."""
        base = self.provider_entry.models()
        return base.with_prices(self.prices) if self.prices else base


def read_settings_file(root: Path) -> tuple[SettingsFile, YMap | None]:
    """Parse ``assetpipe.yaml`` when present."""
    path = root / SETTINGS_FILE
    if not path.is_file():
        return SettingsFile(), None
    tree = load_yaml(path, SETTINGS_FILE)
    if tree is None:
        return SettingsFile(), None
    if not isinstance(tree, YMap):
        raise SpecError("assetpipe.yaml is a mapping of settings", Location(SETTINGS_FILE, 1, 1))
    return validate(SettingsFile, tree, tree, tree.location), tree


def resolve_settings(
    root: Path,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    *,
    credentials: bool = True,
) -> Settings:
    """Merge flags, environment and ``assetpipe.yaml`` into the settings of one run.

    ``credentials=False`` is for the commands that never call the provider (``validate``,
    ``plan``, ``check``): they plan a provider's jobs without its key, so a pull request
    with no secrets can see what the build will pay for."""
    env = os.environ if environ is None else environ
    if not root.is_dir():
        raise UsageError(f"project folder not found: {root}")
    file, tree = read_settings_file(root)
    remote_cache, remote_mode = _remote_cache(file, tree, env, flags)
    merged: dict[str, Any] = file.model_dump()
    origin: dict[str, str] = {}  # settings given by a flag or the environment: by which
    for name, var in ENV.items():
        if env.get(var):
            merged[name] = env[var]
            origin[name] = f"{var}="
    for name, value in flags.items():
        if value is not None and name not in REMOTE_FLAGS and name != "qa":
            merged[name] = value
            origin[name] = f"--{name.replace('_', '-')} "
    operator = set(origin)
    try:
        checked = SettingsFile.model_validate(merged)
    except ValidationError as exc:
        raise UsageError(_operator_error(exc, origin)) from None
    _check_folders(root, checked, operator, tree)
    where = (
        tree.value_locations.get("provider")
        if tree is not None and "provider" not in operator
        else None
    )
    provider, is_default = _provider(checked.provider, env, where, credentials)
    _check_price_models(checked, registry.providers()[provider], tree)

    # A folder the operator names (flag or environment) is relative to where they are, as
    # with every command-line tool; one in assetpipe.yaml, to the project.
    def folder(name: str) -> Path:
        return (Path.cwd() if name in operator else root) / str(getattr(checked, name))

    return Settings(
        root=root,
        specs_dir=root / checked.specs,
        templates_dir=root / checked.templates,
        output_dir=folder("output"),
        cache_dir=folder("cache_dir"),
        provider=provider,
        provider_is_default=is_default,
        model=checked.model,
        concurrency=checked.concurrency,
        images_per_minute=checked.images_per_minute,
        requests_per_minute=checked.requests_per_minute,
        limit_scope=checked.limit_scope,
        max_cost=checked.max_cost,
        timeout=checked.timeout,
        max_attempts=checked.max_attempts,
        max_jobs=checked.max_jobs,
        embed_metadata=checked.embed_metadata,
        prices={
            model: fields.model_dump(exclude_none=True) for model, fields in checked.prices.items()
        },
        batch_poll_seconds=checked.batch_poll_seconds,
        batch_max_lines=checked.batch_max_lines,
        remote_cache=remote_cache,
        remote_cache_mode=remote_mode,
        remote_cache_required=_required(file, env),
        signing=signing_settings(root, file, tree, env),
        qa=qa_settings(file, tree, env, flags.get("qa")),
        review_partial_images=checked.review.partial_images,
        exports=configured_exports(
            file.exports,
            tree,
            project=root,
            keep_out={
                "output folder": folder("output"),
                "cache folder": folder("cache_dir"),
                "specs folder": root / checked.specs,
                "templates folder": root / checked.templates,
            },
        ),
    )


REMOTE_FLAGS = ("remote_cache", "remote_cache_mode")


def _remote_cache(
    file: SettingsFile, tree: YMap | None, env: Mapping[str, str], flags: Mapping[str, Any]
) -> tuple[str | None, RemoteMode]:
    """The shared cache's URL and mode: flag, else environment, else ``remote_cache:``.

    The URL is checked here (no network), so a mistake in assetpipe.yaml is reported at
    its line before anything is built."""
    url_var, mode_var = REMOTE_ENV
    written = file.remote_cache
    mode, mode_from = flags.get("remote_cache_mode"), "--remote-cache-mode"
    if not mode and env.get(mode_var):
        mode, mode_from = env[mode_var], mode_var
    if mode and mode not in REMOTE_MODES:
        raise UsageError(f"{mode_from} {echo(mode)}: use one of {', '.join(REMOTE_MODES)}")
    url, url_from = flags.get("remote_cache"), "--remote-cache"
    if not url and env.get(url_var):
        url, url_from = env[url_var], url_var
    if url:
        try:
            parse_url(url)
        except UsageError as exc:
            raise UsageError(f"{url_from}: {exc}") from None
    elif written is not None:
        try:
            parse_url(written.url)
        except UsageError as exc:
            section = tree.get("remote_cache") if tree is not None else None
            where = section.value_locations.get("url") if isinstance(section, YMap) else None
            raise SpecError(
                f"remote_cache: {exc}", where or Location(SETTINGS_FILE, 1, 1)
            ) from None
        url = written.url
    chosen = mode or (written.mode if written is not None else "read-write")
    return url or None, "read-only" if chosen == "read-only" else "read-write"


FOLDER_SETTINGS = ("specs", "templates", "output", "cache_dir")


def _check_folders(
    root: Path, checked: SettingsFile, operator: set[str], tree: YMap | None
) -> None:
    """Folders from ``assetpipe.yaml`` or the defaults must stay inside the project.

    The project's files may come from a pull request that CI builds with a real key:
    ``templates: ../../home/runner/.ssh`` (or a ``templates`` link to it) would put a
    private key into a prompt sent to the API and written to the manifest, and an
    ``output`` or ``cache_dir`` outside would write there. A folder given by a flag or an
    environment variable is the operator's choice and may be anywhere.
    """
    for name in FOLDER_SETTINGS:
        value = str(getattr(checked, name))
        if name in operator or inside(root / value, root):
            continue
        if tree is not None and name in tree.value_locations:
            flag = {"output": "--output", "cache_dir": "--cache-dir"}.get(name)
            raise SpecError(
                f"'{name}: {shortened(value)}' leads outside the project folder",
                tree.value_locations[name],
                "folders named in assetpipe.yaml stay inside the project"
                + (f"; to use one elsewhere, pass {flag}" if flag else ""),
            )
        raise SpecError(
            f"the {shortened(value)} folder is a symbolic link that leads outside the "
            "project folder",
            Location(value),
            "replace the link with the folder itself",
        )


def _check_price_models(
    checked: SettingsFile, provider: registry.ProviderEntry, tree: YMap | None
) -> None:
    """Price overrides name models of the chosen provider's table."""
    if not checked.prices:
        return
    catalog = provider.models()
    for model in checked.prices:
        if catalog.get(model) is None:
            raise SpecError(
                f"prices: unknown model '{model}' (provider {provider.name})",
                _price_key_location(tree, model),
                did_you_mean(model, catalog.models)
                or f"price overrides name a model of the provider, e.g. {catalog.default_model}",
            )


def _price_key_location(tree: YMap | None, model: str) -> Location | None:
    """Where ``prices: {<model>: ...}`` names ``model`` in assetpipe.yaml."""
    prices = tree.get("prices") if tree is not None else None
    if isinstance(prices, YMap) and model in prices.key_locations:
        return prices.key_locations[model]
    return tree.location if tree is not None else None


def _provider(
    chosen: str | None, env: Mapping[str, str], where: Location | None, credentials: bool = True
) -> tuple[str, bool]:
    """The provider asked for, or the first whose credentials the environment holds.

    ``where`` is the provider's place in assetpipe.yaml when the file chose it."""
    known = registry.providers()
    if chosen is None:
        auto = next((e for e in known.values() if e.auto and not e.missing_credentials(env)), None)
        if auto is not None:
            return auto.name, True
        if in_ci(env):
            raise UsageError(
                "no provider is named and no API key is set, and CI is set: in CI assetpipe "
                "never falls back to the free preview provider on its own. If this job should "
                "call the API, its OPENAI_API_KEY secret did not arrive (set it, or "
                "AZURE_OPENAI_API_KEY for --provider azure); to draw placeholders on purpose, "
                "pass --provider preview (or set provider: preview in assetpipe.yaml)"
            )
        return "preview", True
    entry = known.get(chosen)
    if entry is None:
        message = f"unknown provider {echo(chosen)}"
        hint = did_you_mean(chosen, known) or f"use one of {', '.join(known)}"
        if where is not None:
            raise SpecError(message, where, hint)
        raise UsageError(f"{message}; {hint}")
    missing = entry.missing_credentials(env) if credentials else []
    if missing:
        needs = ", ".join(missing)
        first = "an API key: set " if missing == ["OPENAI_API_KEY"] else ""
        raise UsageError(
            f"--provider {chosen} needs {first}{needs}" + (f" ({entry.hint})" if entry.hint else "")
        )
    return chosen, False


UNITS = {
    "concurrency": "requests in flight",
    "images_per_minute": "images a minute",
    "requests_per_minute": "requests a minute",
    "max_cost": "USD",
    "timeout": "seconds",
    "max_attempts": "tries of a request",
    "max_jobs": "jobs",
    "batch_poll_seconds": "seconds",
    "batch_max_lines": "requests a batch",
}
"""What each number setting counts, said with its range."""


def echo(value: object) -> str:
    """``value`` as an error shows what a user gave: text quoted with its control
    characters escaped (as Python writes it), anything else as Python writes it; either
    cut to :data:`~pipeline.errors.ECHO_CHARS` characters."""
    return repr(shortened(value)) if isinstance(value, str) else shortened(repr(value))


def _operator_error(exc: ValidationError, origin: Mapping[str, str]) -> str:
    """The first error of settings merged from flags and the environment, naming the flag
    or variable that gave the value and, for a number, the range it must be in.

    Values from ``assetpipe.yaml`` were checked on their own before the merge (errors at
    their line), so a value that fails here came from a flag or a variable."""
    first = exc.errors(include_url=False)[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    given = f"{origin.get(name, name + ' ')}{echo(first.get('input'))}"
    span = _range(name)
    if span is not None:
        return f"{given}: {name} must be {span}"
    return f"{given}: {name}: {first['msg']}"


def _range(name: str) -> str | None:
    """``a number from LOW to HIGH (UNIT)`` of a number setting; None for any other.

    Read from the model's own bounds, so the message and the check cannot disagree."""
    info = SettingsFile.model_fields.get(name)
    if info is None:
        return None
    kind, metadata = info.annotation, list(info.metadata)
    for arg in typing.get_args(info.annotation):  # an optional number: Annotated inside
        if typing.get_origin(arg) is typing.Annotated:
            kind, *extras = typing.get_args(arg)
            for extra in extras:
                metadata.extend(getattr(extra, "metadata", [extra]))
    low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in metadata if hasattr(m, "le")), None)
    if low is None or high is None:
        return None
    words = "a whole number" if kind is int else "a number"
    unit = f" ({UNITS[name]})" if name in UNITS else ""
    return f"{words} from {low} to {high}{unit}"


def in_ci(env: Mapping[str, str]) -> bool:
    """Whether the environment says this is a CI job (``CI`` set, as every CI service
    does, to anything but ``false`` or ``0``)."""
    return env.get("CI", "").strip().lower() not in ("", "false", "0", "no")


def _required(file: SettingsFile, env: Mapping[str, str]) -> bool:
    """``ASSETPIPE_REMOTE_CACHE_REQUIRED`` (``1``/``true``/``yes``, or ``0``/``false``/``no``),
    else ``remote_cache: {required: ...}``."""
    value = env.get(REQUIRED_ENV, "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    if value:
        raise UsageError(f"{REQUIRED_ENV}={echo(value)}: use 1 or 0")
    return file.remote_cache is not None and file.remote_cache.required


def signing_settings(
    root: Path, file: SettingsFile, tree: YMap | None, env: Mapping[str, str]
) -> Signing | None:
    """The C2PA credentials of ``provenance.sign`` (None when not configured)."""
    sign = file.provenance.sign if file.provenance is not None else None
    if sign is None:
        return None
    section = tree.get("provenance") if tree is not None else None
    where = (
        section.location
        if isinstance(section, YMap)
        else (tree.location if tree is not None else Location(SETTINGS_FILE, 1, 1))
    )
    key_env = (C2PA_KEY_ENV, env.get(C2PA_KEY_ENV))
    return load_signing(root, sign.cert, sign.key, sign.alg, sign.tsa_url, key_env, where)


def qa_settings(
    file: SettingsFile, tree: YMap | None, env: Mapping[str, str], flag: object
) -> QaSettings | None:
    """The quality gate when it is on: ``--qa/--no-qa``, else ``ASSETPIPE_QA``, else
    ``qa.enabled`` when ``assetpipe.yaml`` has ``qa:`` (off without one)."""
    from pipeline.providers.openai_judge_catalog import (  # noqa: PLC0415 - only for qa
        default_judge,
        openai_judges,
    )

    qa = file.qa or QaFile()
    if isinstance(flag, bool):
        on = flag
    elif env.get(QA_ENV):
        value = env[QA_ENV].strip().lower()
        if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise UsageError(f"{QA_ENV} is {echo(env[QA_ENV])}; set it to 1 (judge) or 0 (do not)")
        on = value in ("1", "true", "yes", "on")
    else:
        on = file.qa is not None and qa.enabled
    if not on:
        return None
    model = qa.model or default_judge()
    judges = openai_judges()
    if model not in judges:
        qa_tree = tree.get("qa") if tree is not None else None
        where = qa_tree.value_locations.get("model") if isinstance(qa_tree, YMap) else None
        raise SpecError(
            f"unknown judge model {echo(model)}",
            where or Location(SETTINGS_FILE),
            did_you_mean(model, judges) or f"use one of {', '.join(sorted(judges))}",
        )
    return QaSettings(model=model, rerolls=qa.rerolls, detail=qa.detail)
