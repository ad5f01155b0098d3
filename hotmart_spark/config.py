"""Typed, frozen configuration: the package's defaults.toml, then the user's TOML file (only
the keys it sets), HOTMART_SPARK__ environment variables, then `section.key=value`
overrides."""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import json
import re
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hotmart_spark.errors import UserError
from hotmart_spark.quality import RULE_NAMES

# Every key with its default, inside the package: an installed wheel needs no checkout.
DEFAULTS = resources.files("hotmart_spark").joinpath("defaults.toml")

RULE_ACTIONS = ("quarantine", "warn")
INPUT_FORMATS = ("auto", "csv", "parquet")
OUTPUT_FORMATS = ("csv", "parquet")
DRIVER_MODELS = ("gbt", "random_forest")
# Integer keys with a lower bound, and why where the bound is not obvious.
MINIMUMS: dict[str, tuple[int, str]] = {
    "pipeline.concurrent_stages": (1, ""),
    "jdbc.num_partitions": (1, ""),
    "jdbc.fetch_size": (1, ""),
    "quality.placeholder_burst_min_rows": (2, ""),
    "quality.placeholder_burst_ratio": (2, ""),
    "concentration.bootstrap_replicates": (
        40,
        "a 95% interval needs a replicate beyond each end",
    ),
    "lifetime.horizon_months": (1, ""),
    "lifetime.holdout_months": (1, ""),
    "clusters.fit_max_producers": (100, ""),
    "drivers.early_sales": (2, ""),
    "drivers.min_products": (10, ""),
    "drivers.trees": (1, ""),
    "drivers.permutation_repeats": (2, "the spread needs two shuffles"),
    "drivers.permutation_max_products": (10, ""),
    "drivers.effect_max_products": (1000, "fewer leave the estimators too few products"),
    "forecast.horizon_months": (1, ""),
    "forecast.max_origins": (1, ""),
    "forecast.origin_step_days": (1, ""),
    "forecast.min_seasonal_days": (14, "two weekly cycles"),
    "forecast.max_series": (1, ""),
    "generator.rows": (1, ""),
    "generator.files": (1, ""),
    "generator.months_after": (0, ""),
}


# The columns the forecast has series per (marts/daily_category_niche holds these).
SERIES_COLUMNS = ("product_category", "product_niche")

# The unit of value = z - min(z), when no mean and std convert z to a currency.
RELATIVE_UNIT = "relative value units"


@dataclass(frozen=True)
class PathsConfig:
    input: str
    output: str


@dataclass(frozen=True)
class PipelineConfig:
    concurrent_stages: int


@dataclass(frozen=True)
class InputConfig:
    format: str
    separator: str
    encoding: str
    skip_foreign_files: bool
    from_month: str
    to_month: str


@dataclass(frozen=True)
class JdbcConfig:
    num_partitions: int
    fetch_size: int
    credentials_file: str


@dataclass(frozen=True)
class PeriodConfig:
    # None: "auto", the first or last day of the data (validation resolves it).
    start: dt.date | None
    end: dt.date | None


@dataclass(frozen=True)
class ValueConfig:
    mean: float
    std: float
    currency: str
    platform_fee_rate: float

    @property
    def unit(self) -> str:
        """The unit values are stated in: the currency once mean and std are configured."""
        return self.currency if self.std > 0 else RELATIVE_UNIT


@dataclass(frozen=True)
class QualityConfig:
    placeholder_burst_min_rows: int
    placeholder_burst_ratio: float
    max_abs_z: float
    max_quarantine_share: float
    actions: dict[str, str]


@dataclass(frozen=True)
class ConcentrationConfig:
    bootstrap_replicates: int
    seed: int


@dataclass(frozen=True)
class RfmConfig:
    frequency_tiers: tuple[int, ...]
    segments: dict[str, str]


@dataclass(frozen=True)
class LifetimeConfig:
    horizon_months: int
    holdout_months: int


@dataclass(frozen=True)
class ClustersConfig:
    k_min: int
    k_max: int
    seed: int
    fit_max_producers: int


@dataclass(frozen=True)
class DriversConfig:
    early_sales: int
    min_products: int
    holdout_share: float
    seed: int
    model: str
    trees: int
    max_depth: int
    permutation_repeats: int
    permutation_max_products: int
    effect_max_products: int


@dataclass(frozen=True)
class ForecastConfig:
    horizon_months: int
    origin_step_days: int
    max_origins: int
    min_seasonal_days: int
    flag_quarantined_share: float
    series_by: tuple[str, ...]
    series_min_share: float
    max_series: int


@dataclass(frozen=True)
class GeneratorConfig:
    rows: int
    seed: int
    defects: float
    format: str
    separator: str
    encoding: str
    pandas_index: bool
    blank_first_row: bool
    include_venda: bool
    files: int
    programme_effect: float
    months_after: int


@dataclass(frozen=True)
class Config:
    paths: PathsConfig
    pipeline: PipelineConfig
    input: InputConfig
    jdbc: JdbcConfig
    period: PeriodConfig
    value: ValueConfig
    quality: QualityConfig
    concentration: ConcentrationConfig
    rfm: RfmConfig
    lifetime: LifetimeConfig
    clusters: ClustersConfig
    drivers: DriversConfig
    forecast: ForecastConfig
    generator: GeneratorConfig

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (dates as ISO strings) for the run manifest."""
        return _jsonable(dataclasses.asdict(self))


# HOTMART_SPARK__PERIOD__END=2016-06-30 sets period.end: the prefix, then the section and
# key (and a subsection's), each after two underscores, in any case.
ENV_PREFIX = "HOTMART_SPARK__"
DEFAULT_SOURCE = "default"
COMMAND_LINE = "command line"


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Config:
    """The defaults, the keys the TOML file at path sets, the HOTMART_SPARK__ variables of
    `environ` (none unless given), then `section.key=value` overrides; every value checked."""
    return resolve_config(path, overrides, environ)[0]


def resolve_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> tuple[Config, dict[str, str]]:
    """The config, as `load_config` builds it, and where each key's value comes from, by
    "section.key": "default", "file <path>", "environment <variable>" or "command line";
    the last layer that sets a key wins."""
    raw, sources = _layers(path, overrides, environ)
    config = _build(Config, raw, prefix="")
    _check(config)
    return config, sources


def _layers(
    path: str | Path | None,
    overrides: list[str] | None,
    environ: typing.Mapping[str, str] | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    raw = tomllib.loads(DEFAULTS.read_text(encoding="utf-8"))
    sources = dict.fromkeys(_keys(raw), DEFAULT_SOURCE)
    if path:
        changes = _read_toml(Path(path))
        _merge(raw, changes)
        sources.update(dict.fromkeys(_keys(changes), f"file {path}"))
    for name, value in sorted((environ or {}).items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        key = ".".join(name[len(ENV_PREFIX) :].lower().split("__"))
        _apply_override(raw, f"{key}={value}", source=f"environment variable {name}")
        sources[key] = f"environment {name}"
    for override in overrides or []:
        _apply_override(raw, override)
        sources[override.partition("=")[0].strip()] = COMMAND_LINE
    return raw, sources


def _keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """Every leaf's dotted key."""
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict):
            keys += _keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def render_config(config: Config, sources: dict[str, str]) -> str:
    """The resolved config as TOML that load_config reads back, each key with its source."""
    lines: list[str] = []

    def section(name: str, values: dict[str, Any]) -> None:
        leaves = {k: v for k, v in values.items() if not isinstance(v, dict)}
        if leaves:
            lines.extend(["", f"[{name}]"])
            for key, value in leaves.items():
                dotted = f"{name}.{key}"
                shown = json.dumps(key) if not key.isidentifier() else key
                lines.append(f"{shown} = {_toml_value(value)}  # {sources.get(dotted, '?')}")
        for key, value in values.items():
            if isinstance(value, dict):
                section(f"{name}.{key}", value)

    for name, values in _jsonable(dataclasses.asdict(config)).items():
        section(name, values)
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '"auto"'  # the only optional values are dates, where absent means "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> None:
    """Set in base every key that changes sets, section by section."""
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _apply_override(raw: dict[str, Any], override: str, source: str = "--set") -> None:
    key, sep, value = override.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise UserError(f"{source} expects section.key=value, got '{override}'")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{source} {key}: '{part}' is not a section")
    # Kept as text here; _build converts it to the field's declared type.
    node[parts[-1]] = _OverrideText(value.strip())


class _OverrideText(str):
    """A value typed on the command line, converted to the field's type when the config is built."""


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise UserError(f"config key '{prefix.rstrip('.')}' must be a section")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise UserError(f"unknown config key '{prefix}{unknown[0]}'")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw]
    if missing:
        raise UserError(f"config key '{prefix}{missing[0]}' is missing")
    values = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, prefix=f"{key}.")
        else:
            values[name] = _convert(value, hint, key)
    return cls(**values)


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}' must be a section")
        return {k: _convert(v, str, f"{key}.{k}") for k, v in value.items()}
    from_text = isinstance(value, _OverrideText)
    if origin is tuple:
        # On the command line a list is written 2,3,4,6.
        # "a,b" on the command line; "" is the empty list.
        items = (
            [_OverrideText(i.strip()) for i in value.split(",") if i.strip()]
            if from_text
            else value
        )
        if not isinstance(items, list):
            raise UserError(f"config key '{key}' must be a list")
        return tuple(_convert(i, typing.get_args(hint)[0], key) for i in items)
    try:
        if hint is bool:
            if from_text and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, bool):
                return value
        elif hint is int:
            if from_text:
                return int(value)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif hint is float:
            if from_text:
                return float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif hint is str:
            if isinstance(value, str):
                return str(value)
        elif hint == dt.date | None:
            if value == "auto":
                return None
            return _convert(value, dt.date, key)
        elif hint is dt.date:
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return value
            if isinstance(value, str):
                return dt.date.fromisoformat(value)
    except ValueError:
        pass
    expected = getattr(hint, "__name__", str(hint))
    raise UserError(f"config key '{key}' must be {expected}, got {value!r}")


def _check(config: Config) -> None:
    def fail(key: str, why: str) -> None:
        raise UserError(f"config key '{key}' {why}")

    for key, (minimum, why) in MINIMUMS.items():
        section, name = key.split(".")
        if getattr(getattr(config, section), name) < minimum:
            fail(key, f"must be at least {minimum}" + (f" ({why})" if why else ""))
    if config.input.format not in INPUT_FORMATS:
        fail("input.format", f"must be one of {', '.join(INPUT_FORMATS)}")
    if config.input.separator != "auto" and len(separator_char(config.input.separator)) != 1:
        fail("input.separator", "must be one character or 'auto'")
    _check_encoding("input.encoding", config.input.encoding, fail)
    for key in ("from_month", "to_month"):
        month = getattr(config.input, key)
        if month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            fail(f"input.{key}", f"must be a month as YYYY-MM or empty, got {month!r}")
    months = (config.input.from_month, config.input.to_month)
    if all(months) and months[0] > months[1]:
        fail("input.from_month", "is after input.to_month")
    start, end = config.period.start, config.period.end
    if start is not None and end is not None and start > end:
        fail("period.start", f"({start}) is after period.end ({end})")
    for key, month in (("from", months[0]), ("to", months[1])):
        if month and start is not None and month < f"{start:%Y-%m}":
            fail(f"input.{key}_month", f"({month}) is before the period ({start} to {end})")
        if month and end is not None and month > f"{end:%Y-%m}":
            fail(f"input.{key}_month", f"({month}) is after the period ({start} to {end})")
    if (start is None or end is None) and any(months):
        fail("period.start", "'auto' takes the whole input's days: give dates with --from/--to")
    if not 0 <= config.quality.max_quarantine_share <= 1:
        fail("quality.max_quarantine_share", "must be between 0 and 1")
    if not config.quality.max_abs_z > 0:
        fail("quality.max_abs_z", "must be > 0")
    if config.value.std < 0:
        fail("value.std", "must be >= 0 (0 means relative value units)")
    if not 0 <= config.value.platform_fee_rate <= 1:
        fail("value.platform_fee_rate", "must be between 0 and 1")
    unset = [rule for rule in RULE_NAMES if rule not in config.quality.actions]
    if unset:
        fail(f"quality.actions.{unset[0]}", "is missing; set it to 'quarantine' or 'warn'")
    for rule, action in config.quality.actions.items():
        if rule not in RULE_NAMES:
            fail(f"quality.actions.{rule}", f"is not a rule; rules: {', '.join(RULE_NAMES)}")
        if action not in RULE_ACTIONS:
            fail(f"quality.actions.{rule}", "must be 'quarantine' or 'warn'")
    tiers = config.rfm.frequency_tiers
    if len(tiers) != 4 or tiers[0] < 2 or list(tiers) != sorted(set(tiers)):
        fail("rfm.frequency_tiers", "must be four increasing purchase counts, the first at least 2")
    if not config.rfm.segments:
        fail("rfm.segments", "must name at least one segment")
    for name, pattern in config.rfm.segments.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            fail(f"rfm.segments.{name}", f"is not a regular expression: {exc}")
    if not 2 <= config.clusters.k_min <= config.clusters.k_max:
        fail("clusters.k_min", "must be at least 2 and at most clusters.k_max")
    drivers = config.drivers
    if not 0 < drivers.holdout_share < 1:
        fail("drivers.holdout_share", "must be between 0 and 1 (exclusive)")
    if drivers.model not in DRIVER_MODELS:
        fail("drivers.model", f"must be one of {', '.join(DRIVER_MODELS)}")
    if not 1 <= drivers.max_depth <= 30:
        fail("drivers.max_depth", "must be between 1 and 30 (Spark's limit)")
    if not 0 < config.forecast.flag_quarantined_share <= 1:
        fail("forecast.flag_quarantined_share", "must be above 0 and at most 1")
    unknown = sorted(set(config.forecast.series_by) - set(SERIES_COLUMNS))
    if unknown:
        fail(
            "forecast.series_by",
            f"names {', '.join(unknown)}; it takes {', '.join(SERIES_COLUMNS)}",
        )
    if not 0 <= config.forecast.series_min_share < 1:
        fail("forecast.series_min_share", "must be at least 0 and below 1")
    gen = config.generator
    if not 0 <= gen.defects <= 0.05:
        fail("generator.defects", "must be between 0 and 0.05")
    if gen.format not in OUTPUT_FORMATS:
        fail("generator.format", f"must be one of {', '.join(OUTPUT_FORMATS)}")
    if len(separator_char(gen.separator)) != 1:
        fail("generator.separator", "must be one character")
    _check_encoding("generator.encoding", gen.encoding, fail)


def _check_encoding(key: str, name: str, fail: typing.Callable[[str, str], None]) -> None:
    try:
        codecs.lookup(name)
    except LookupError:
        fail(key, f"names an unknown encoding '{name}'")


def separator_char(separator: str) -> str:
    """Lets a tab be written as \\t in TOML or on the command line."""
    return "\t" if separator == "\\t" else separator


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
