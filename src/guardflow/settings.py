"""The configuration, validated once at the edge into strict, frozen pydantic models.

Unknown keys are rejected and types are checked without coercion, so a typo in a YAML file fails loudly
instead of silently falling back to a default.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from guardflow.errors import ConfigError
from guardflow.gate_settings import GateSettings
from guardflow.strict_model import StrictModel


class DataFile(StrictModel):
    """One data file with the sha256 of its (decompressed) content."""

    path: Path
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    skip_rows: Annotated[int, Field(ge=0)] = 0


class LabelSettings(StrictModel):
    """The label column, its two classes, and spellings that mean the same class."""

    column: str
    positive: str
    negative: str
    aliases: dict[str, str] = {}

    @model_validator(mode="after")
    def _aliases_point_at_classes(self) -> LabelSettings:
        unknown = {target for target in self.aliases.values() if target not in (self.positive, self.negative)}
        if unknown:
            raise ValueError(f"label aliases point at unknown classes: {sorted(unknown)}")
        return self


class NumericFeature(StrictModel):
    """A numeric feature with public bounds; values are clipped to them, then scaled to [0, 1].

    `bins` are optional, fixed public cut points (round numbers chosen a priori, never quantiles of the data):
    each value is also one-hot encoded by the interval it falls in.
    """

    type: Literal["numeric"]
    min: float
    max: float
    transform: Literal["identity", "log1p"] = "identity"
    bins: list[float] = []

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> NumericFeature:
        if not self.min < self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if self.transform == "log1p" and self.min < 0:
            raise ValueError("log1p needs min >= 0")
        if self.bins != sorted(set(self.bins)) or any(not self.min < edge <= self.max for edge in self.bins):
            raise ValueError("bins must be increasing, distinct and inside (min, max]")
        return self


class CategoricalFeature(StrictModel):
    """A categorical feature with its public list of categories; anything else is encoded as 'other'."""

    type: Literal["categorical"]
    categories: Annotated[list[str], Field(min_length=1)]


Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="type")]


class DatasetSettings(StrictModel):
    """Where the data lives, how to read it, and what each column means."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    # csv, or parquet (every column read as text, like a CSV); a `.parquet` file is read as Parquet either way.
    format: Literal["csv", "parquet"] = "csv"
    # The text encoding of a CSV (Python codec name: utf-8, latin-1, cp1252, ...); rows keep their source_row.
    encoding: Annotated[str, Field(min_length=1)] = "utf-8"
    # False in a config `guardflow init` drafted: its bounds and categories came from the data, and `train`
    # refuses it until a person has replaced them with public ones and set this to true.
    reviewed: bool = True
    header: bool = True
    na_values: list[str] = []
    columns: list[str] | None = None
    train: DataFile
    test: DataFile
    label: LabelSettings
    sensitive: list[str] = []
    features: dict[str, Feature]

    @model_validator(mode="after")
    def _encoding_is_known(self) -> DatasetSettings:
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r} (e.g. utf-8, latin-1, cp1252)") from None
        return self

    @model_validator(mode="after")
    def _columns_are_consistent(self) -> DatasetSettings:
        if not self.header and not self.columns:
            raise ValueError("a file without a header needs `columns`")
        if self.label.column in self.features:
            raise ValueError(f"the label `{self.label.column}` cannot also be a feature")
        missing_sensitive = [name for name in self.sensitive if name not in self.features]
        if missing_sensitive:
            raise ValueError(f"sensitive attributes must be features: {missing_sensitive}")
        if self.columns is not None:
            undeclared = [name for name in [*self.features, self.label.column] if name not in self.columns]
            if undeclared:
                raise ValueError(f"features or label not among `columns`: {undeclared}")
        return self

    @property
    def expected_columns(self) -> list[str]:
        """Columns every batch must carry: the declared ones, or the features plus the label."""
        return list(self.columns) if self.columns else [*self.features, self.label.column]


class ContractSettings(StrictModel):
    """The Great Expectations suite that is this dataset's contract, and how much quarantine it tolerates."""

    suite: Path
    max_quarantined_share: Annotated[float, Field(ge=0, le=1)] = 0.05


class PoisoningSettings(StrictModel):
    """Which poisoning detectors run and when their flags fail the run."""

    seed: int = 0
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    label_noise: bool = True
    # A cleanlab label issue is flagged only when the out-of-fold probability of its given label is below this.
    label_noise_max_confidence: Annotated[float, Field(gt=0, le=1)] = 0.2
    outliers: bool = True
    outlier_contamination: Annotated[float, Field(gt=0, lt=0.5)] = 0.005
    # Off-manifold: a pair of values flags its row when the count independence predicts is e^threshold times
    # the count seen (both smoothed by one); so does a value that breaks a dependency between two columns
    # (poisoning/dependencies.py, no setting of its own).
    off_manifold: bool = True
    off_manifold_threshold: Annotated[float, Field(gt=0)] = 2.5
    duplicate_limit: Annotated[int, Field(ge=1)] = 5
    # Near-duplicates: every numeric within this relative difference (on log1p) and every other column equal.
    near_duplicate_tolerance: Annotated[float, Field(gt=0, lt=1)] = 0.025
    # Data with few values in every column: a group of identical rows is a flood when a Poisson test against its
    # one-column neighbours' mean count rejects it at this false-discovery rate (Benjamini-Hochberg).
    duplicate_fdr: Annotated[float, Field(gt=0, lt=1)] = 0.01
    # Backdoor: a pair of values whose rows are mostly one label while each value alone is not.
    backdoor: bool = True
    backdoor_min_support: Annotated[int, Field(ge=2)] = 30
    backdoor_min_purity: Annotated[float, Field(gt=0.5, le=1)] = 0.9
    backdoor_max_alone: Annotated[float, Field(gt=0, lt=1)] = 0.6
    # Slice purity (no reference needed): a slice of one to three values at least `purity_min_purity` one label,
    # with `purity_min_rows` rows of it, whose purity exceeds what models blind to its columns expect by
    # `purity_min_gap` (as a share of the most it could: one minus what they grant the label on rows of the other
    # label), flags its rows of that label that the blind models find least likely.
    slice_purity: bool = True
    purity_min_rows: Annotated[int, Field(ge=2)] = 20
    purity_min_purity: Annotated[float, Field(gt=0.5, le=1)] = 0.8
    purity_min_gap: Annotated[float, Field(gt=0, le=2)] = 0.75
    # A slice of two or three values must remove this share of the impurity each slice with one value fewer leaves.
    purity_min_lift: Annotated[float, Field(ge=0, le=1)] = 0.5
    # A slice of two or three values is a candidate only while its purest part (one value fewer) is below this.
    # Raising it finds triggers made of values each already mostly the target label (race=Black is 87% <=50K on
    # Adult), at the price of more genuine pure conjunctions of the majority label (configs/adult.yaml: 0.95).
    purity_max_part_purity: Annotated[float, Field(gt=0.5, le=1)] = 0.8
    # Trusted reference (the champion's training rows, when there is one): a label's rate in a slice of one or
    # two values is shifted when Benjamini-Hochberg passes it at `reference_fdr`, its odds ratio against the
    # reference's expectation is at least `reference_min_odds_ratio` (a genuine shift of a few points is not a
    # finding) and it holds at least `reference_min_rows` more rows of that label than expected.
    trusted_reference: bool = True
    reference_fdr: Annotated[float, Field(gt=0, lt=1)] = 0.01
    reference_min_odds_ratio: Annotated[float, Field(gt=1)] = 1.5
    reference_min_rows: Annotated[int, Field(ge=1)] = 10
    max_flagged_share: Annotated[float, Field(ge=0, le=1)] = 0.15


class PrivacySettings(StrictModel):
    """DP-SGD settings: the target guarantee, clipping and schedule, and the dataset's lifetime budget."""

    target_epsilon: Annotated[float, Field(gt=0)] = 1.0
    # Keep delta well below 1 / (training rows): the default suits up to about 100,000 rows.
    delta: Annotated[float, Field(gt=0, lt=1)] = 1.0e-5
    max_grad_norm: Annotated[float, Field(gt=0)] = 1.0
    epochs: Annotated[int, Field(ge=1)] = 5
    batch_size: Annotated[int, Field(ge=1)] = 512
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: Annotated[float, Field(gt=0)] = 2.0
    accountant: Literal["prv", "rdp"] = "prv"
    # Share of rows held out from the MLP to fit Platt scaling with DP-SGD (0 turns calibration off).
    calibration_fraction: Annotated[float, Field(ge=0, lt=0.5)] = 0.1
    # Share of the accepted rows held out of training as the membership audit's non-members (same pool as the
    # members, so a shift between populations cannot pass for a leak). 0.1 gives Adult ~3,200 rows a side (AUC
    # standard error ~0.007) for 10% of the rows; nothing is spent on them, so the accounting is unchanged.
    audit_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1
    lifetime_epsilon: Annotated[float, Field(gt=0)] = 10.0
    # Out-of-core training (data on disk, large path) only: stop DP-SGD after this many steps when `epochs`
    # would take more (10M rows at batch 512 would be 100,000 steps). The noise is calibrated to, and the
    # accountant records, the steps actually run at the sample rate, so the guarantee stays exact.
    max_steps: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _target_fits_budget(self) -> PrivacySettings:
        if self.target_epsilon > self.lifetime_epsilon:
            raise ValueError("target_epsilon is larger than lifetime_epsilon")
        return self


class ModelSettings(StrictModel):
    """The MLP's shape and the seed of everything random in training."""

    hidden_units: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = [64]
    seed: int = 0


Cron = Annotated[str, Field(pattern=r"^(@\w+|\S+( \S+){4})$")]


class DriftSettings(StrictModel):
    """When a new batch counts as drifted, and (on a Prefect server) where batches arrive and how often to look.

    `rule: family_wise` (the default) tests every column (and the champion's scores, when given) with a
    p-value test at `family_alpha / number of tests` (Bonferroni): the batch drifts when any column does, and
    an undrifted batch is flagged with probability at most `family_alpha`. `rule: drifted_share` is the
    older rule: Evidently's automatic tests at `column_threshold`, drift when the drifted share reaches
    `max_drifted_share`. Either way at most `sample_rows` rows of each side, drawn with `sample_seed`, are compared.

    `inbox`: the folder the scheduled drift-check takes new batch files from, each once (processed files move to
    `inbox/processed/`); `schedule`: its cron; `cooldown_minutes`: after a drift retrain starts, another trigger
    for the same dataset inside this window is recorded, not acted on.
    """

    max_drifted_share: Annotated[float, Field(gt=0, le=1)] = 0.3
    column_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.1
    rule: Literal["family_wise", "drifted_share"] = "family_wise"
    family_alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    sample_rows: Annotated[int, Field(ge=1000)] = 20_000
    sample_seed: int = 0
    inbox: Path | None = None
    schedule: Cron = "*/10 * * * *"
    cooldown_minutes: Annotated[int, Field(ge=0)] = 60
    # Share of a drifted batch held out of the retrain: the new data window the gate judges candidate and champion on.
    window_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3
    # Who lets a drift retrain become champion (README, "A poisoned batch"): `auto` (the gate alone), `required`
    # (every drift retrain waits as challenger for `guardflow approve`), `on_suspicious` (it waits when the batch
    # screen found suspects, a slice whose label rate moved, or one of the two signs below).
    retrain_approval: Literal["auto", "required", "on_suspicious"] = "on_suspicious"
    # A batch whose share of the positive label differs by more than this from what its features predict (a model
    # trained on the champion's data) waits: a subpopulation shift is explained by its features, a batch
    # relabelled wholesale is not.
    max_label_prior_shift: Annotated[float, Field(gt=0, le=1)] = 0.10
    # A label drift carried only by values that hold under this share of the batch is a narrow-slice drift.
    narrow_slice_share: Annotated[float, Field(gt=0, le=1)] = 0.05


class DeploySettings(StrictModel):
    """Prefect deployments of this dataset: the process work pool they run on and safety-train's optional cron."""

    work_pool: Annotated[str, Field(min_length=1)] = "guardflow"
    train_schedule: Cron | None = None


class RegistrySettings(StrictModel):
    """The registered model that candidates of this dataset become versions of, and who promotes them.

    `approval: required` keeps a passing candidate as `challenger` until `guardflow approve` names who approved.
    """

    model_name: Annotated[str, Field(min_length=1)]
    approval: Literal["none", "required"] = "none"


class LineageSettings(StrictModel):
    """OpenLineage job namespace, and an optional HTTP endpoint (else `OPENLINEAGE_URL`, else a file)."""

    namespace: Annotated[str, Field(min_length=1)] = "guardflow"
    url: str | None = None


PiiPolicy = Literal["drop", "hash", "block"]


class PiiSettings(StrictModel):
    """The PII guard: a policy per column holding personal data, and how columns are judged from their values.

    `drop` removes the column, `hash` replaces each value with its keyed HMAC-SHA256 (the key is never in the
    config: `GUARDFLOW_PII_KEY`, else a random key kept in `$GUARDFLOW_HOME`), `block` stops the run when the
    column is present. A column detected as personal data with no policy stops the run.
    """

    columns: dict[Annotated[str, Field(min_length=1)], PiiPolicy] = {}
    # Values judged per column: evenly spaced over its non-missing values (no randomness, same answer each run).
    sample_size: Annotated[int, Field(ge=10)] = 1000
    # A column holds personal data when at least this share of its sampled values is one (an email, a phone...).
    min_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    # A free-text column holds personal data when at least this share of its sampled values contains one.
    min_text_share: Annotated[float, Field(gt=0, le=1)] = 0.05
    # Stray values (an email, phone or national id) in columns with no policy are replaced by a marker.
    redact_stray_values: bool = True
    # A malformed line (one that cannot be parsed into the columns) may hold anything, undeclared columns included:
    # by default the quarantine keeps its line number, length and keyed hash (the PII key), never its text.
    keep_malformed_text: bool = False


class ComputeSettings(StrictModel):
    """Where the data stages run: in this process, on a LocalCluster, or on an existing Dask cluster.

    `DASK_SCHEDULER_ADDRESS` in the environment overrides `scheduler_address`."""

    # An existing Dask scheduler (`tcp://host:8786`); its workers must see the data and run folders' paths.
    scheduler_address: Annotated[str, Field(pattern=r"^[a-z]+://\S+$")] | None = None
    # Inputs larger than this (CSV text, gzip counted decompressed) or with more Parquet rows than that, and
    # folders of files, start a LocalCluster sized to the machine; below both the stages run in this process, in
    # memory. The in-memory scan runs its row-comparing detectors on every row (at 1M rows it had not finished
    # after 3 minutes); the partitioned one on a sample of `sample_rows`. 64 MiB is ~650,000 rows of Adult's CSV.
    cluster_above_bytes: Annotated[int, Field(ge=0)] = 64 * 2**20
    cluster_above_rows: Annotated[int, Field(ge=0)] = 500_000
    # LocalCluster workers (one process with one thread each); default: one per CPU core.
    workers: Annotated[int, Field(ge=1)] | None = None
    # Each partition holds about this many bytes of input (whole records): GX has a fixed cost per validation.
    partition_bytes: Annotated[int, Field(ge=2**16)] = 56 * 2**20
    # Detectors that cannot run partition by partition (a model fitted across rows) see at most this many rows.
    sample_rows: Annotated[int, Field(ge=1000)] = 200_000


class Settings(StrictModel):
    """A whole guardflow configuration: one dataset and its policy."""

    dataset: DatasetSettings
    contract: ContractSettings
    poisoning: PoisoningSettings = PoisoningSettings()
    # Every section but `dataset` and `contract` is optional; `guardflow config-schema` shows each default.
    privacy: PrivacySettings = PrivacySettings()
    model: ModelSettings = ModelSettings()
    gate: GateSettings = GateSettings()
    drift: DriftSettings = DriftSettings()
    # Default: model_name `guardflow-<dataset.id>`, filled in when the section or its model_name is left out.
    registry: RegistrySettings = Field(
        default=RegistrySettings(model_name="guardflow"),
        description="default: {model_name: guardflow-<dataset.id>, approval: none}",
    )
    lineage: LineageSettings = LineageSettings()
    pii: PiiSettings = PiiSettings()
    deploy: DeploySettings = DeploySettings()
    compute: ComputeSettings = ComputeSettings()

    @model_validator(mode="before")
    @classmethod
    def _registry_defaults_to_dataset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("dataset"), dict):
            return data
        registry = data.get("registry", {})
        dataset_id = data["dataset"].get("id")
        if isinstance(registry, dict) and "model_name" not in registry and isinstance(dataset_id, str):
            return {**data, "registry": {**registry, "model_name": f"guardflow-{dataset_id}"}}
        return data

    @model_validator(mode="after")
    def _pii_columns_are_not_trained_on(self) -> Settings:
        dataset = self.dataset
        trained = [
            name for name in self.pii.columns if name in dataset.features or name == dataset.label.column
        ]
        if trained:
            raise ValueError(
                f"pii.columns: {trained} are features or the label; a PII column is never trained on"
            )
        if dataset.columns is not None:
            unknown = [name for name in self.pii.columns if name not in dataset.columns]
            if unknown:
                raise ValueError(f"pii.columns names columns that are not among dataset.columns: {unknown}")
        return self


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Make the config's relative file paths absolute, relative to the config file's folder."""
    dataset = raw.get("dataset")
    if isinstance(dataset, dict):
        for split in ("train", "test"):
            entry = dataset.get(split)
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entry["path"] = str((base / entry["path"]).resolve())
    contract = raw.get("contract")
    if isinstance(contract, dict) and isinstance(contract.get("suite"), str):
        contract["suite"] = str((base / contract["suite"]).resolve())
    drift = raw.get("drift")
    if isinstance(drift, dict) and isinstance(drift.get("inbox"), str):
        drift["inbox"] = str((base / drift["inbox"]).resolve())
    return raw


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def load_settings(path: Path | str) -> Settings:
    """Read and validate a YAML config; raise `ConfigError` with one line naming the first problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    raw = _resolve_paths(raw, path.parent.resolve())
    try:
        # JSON mode keeps strict typing (no "3" for 3) while still reading paths from strings.
        return Settings.model_validate_json(json.dumps(raw, default=str))
    except ValidationError as error:
        raise ConfigError(f"config {path}: {_first_error(error)}") from None


def require_reviewed(settings: Settings, path: Path | str) -> None:
    """Refuse to train on a config `guardflow init` drafted and nobody has reviewed (ConfigError, one line)."""
    if not settings.dataset.reviewed:
        raise ConfigError(
            f"config {path} is not reviewed (dataset.reviewed: false): replace its data-derived bounds and "
            "category lists with public ones, then set dataset.reviewed: true"
        )


def settings_hash(settings: Settings) -> str:
    """A stable sha256 of the validated settings, recorded with every model."""
    canonical = json.dumps(settings.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def settings_json_schema() -> str:
    """The JSON schema of the configuration file, for editors and reviewers."""
    return json.dumps(Settings.model_json_schema(), indent=2)


def guardflow_home() -> Path:
    """Where embedded stores live: `$GUARDFLOW_HOME`, default `./.guardflow` (read when called, not on import)."""
    return Path(os.environ.get("GUARDFLOW_HOME", ".guardflow")).resolve()


def cache_folder() -> Path:
    """Where guardflow remembers what is costly to find again and holds nothing about data (DP noise multipliers,
    an empty Prefect database): the XDG cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "guardflow"
