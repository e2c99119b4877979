"""The project's policy on example schemas (TFDV `tensorflow_metadata` Schema protos), applied to every schema it
writes, inferred or curated, and the schema helpers the validation executors share.

The policy (docs/data.md):
  * environments: `default_environment` TRAINING (the train and eval splits) and INPUTS (the ingest's `inputs`
    split, one small example per listed item); features of only one of them are `not_in_environment` the other;
  * `ingest/outcome` (INPUTS): domain {accepted} with `min_domain_mass` 0.5 — at least half the listed items must
    become examples (a drop whose images mostly have no face fails here);
  * `quality/colour` and `quality/exposure`: the domain of a usable face picture ({colour}, {normal}) with
    `min_domain_mass` 0.9 — a drop of greyscale or dark pictures fails;
  * no domain on the per-item values `id`, `sha256`, `source`, `image` (TFDV infers one for few distinct values);
  * drift (train split vs the last validated drop's) and skew (train vs eval) comparators: Jensen-Shannon
    divergence on the numeric `quality/*`, `face/*` and `source/*` features and the size (`height`, `width`), L∞
    distance on the categorical `quality/*` ones, with the thresholds below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from dcgan.schema import ACCEPTED, INPUTS_SPLIT, OUTCOME_KEY

TRAINING = "TRAINING"
INPUTS = "INPUTS"
MIN_ACCEPTED_MASS = 0.5
WANTED_VALUES = {"quality/colour": ("colour",), "quality/exposure": ("normal",)}
MIN_WANTED_MASS = 0.9
# what policy_problems checks of the domains: feature → (values the domain must hold, its min_domain_mass)
REQUIRED_DOMAINS = {OUTCOME_KEY: ((ACCEPTED,), MIN_ACCEPTED_MASS),
                    **{name: (values, MIN_WANTED_MASS) for name, values in WANTED_VALUES.items()}}
NO_DOMAIN = ("id", "sha256", "source", "image")
DRIFTING_PREFIXES = ("quality/", "face/", "source/")
DRIFTING_NAMES = ("height", "width")  # the examples' size: a drop at another size drifts (JSD 1)
# Thresholds, from TFDV's measurements on clean avatar drops (pipeline/schemas/avatars.pbtxt's header has them all):
# Jensen-Shannon divergence between two clean smoke-size drops (~130 train images) reached 0.069, between two
# quick-size drops (~3,600) 0.016, while greyscale / dark / blurred drops score 1.0 on saturation / brightness /
# sharpness; train vs eval of one smoke drop (32 eval images) reached 0.232 (quick: 0.033). L∞ of the categorical
# quality/* values: ≤ 0.014 between clean drops, ≤ 0.022 train vs eval, 1.0 / 0.96 for greyscale / dark drops.
DRIFT_JSD = 0.2
SKEW_JSD = 0.4
DRIFT_LINF = 0.1
SKEW_LINF = 0.2


def environment_of(split: str) -> str:
    """The schema environment a split is validated in."""
    return INPUTS if split == INPUTS_SPLIT else TRAINING


def feature_names(stats: statistics_pb2.DatasetFeatureStatisticsList) -> set[str]:
    """The (top-level) feature names a statistics list has examples of."""
    names = set()
    for dataset in stats.datasets:
        for f in dataset.features:
            name = f.path.step[0] if f.path.step else f.name
            if _count(f) > 0:
                names.add(name)
    return names


def _count(f: statistics_pb2.FeatureNameStatistics) -> int:
    common = (f.num_stats.common_stats if f.HasField("num_stats") else f.string_stats.common_stats
              if f.HasField("string_stats") else f.bytes_stats.common_stats)
    return int(common.num_non_missing)


def infer_schema(stats_by_split: Mapping[str, statistics_pb2.DatasetFeatureStatisticsList]) -> schema_pb2.Schema:
    """The schema TFDV infers from the training splits (train, then eval: `tfdv.update_schema`), with the features
    only the `inputs` split has inferred from it, and the policy applied. Inferring across environments by hand:
    TFX's SchemaGen updates one schema with every split, which marks the training-only features DEPRECATED once it
    reaches the inputs split."""
    import tensorflow_data_validation as tfdv

    training = [s for s in stats_by_split if environment_of(s) == TRAINING]
    if not training:
        raise ValueError(f"no training split to infer a schema from (splits: {sorted(stats_by_split)})")
    schema = None
    for split in sorted(training, key=lambda s: (s != "train", s)):
        schema = (tfdv.infer_schema(stats_by_split[split]) if schema is None
                  else tfdv.update_schema(schema, stats_by_split[split]))
    training_names = set().union(*(feature_names(stats_by_split[s]) for s in training))
    inputs_names: set[str] = set()
    if INPUTS_SPLIT in stats_by_split:
        inputs_names = feature_names(stats_by_split[INPUTS_SPLIT])
        inputs_schema = tfdv.infer_schema(stats_by_split[INPUTS_SPLIT])
        known = {f.name for f in schema.feature}
        for feature in inputs_schema.feature:
            if feature.name in known:
                continue
            schema.feature.add().CopyFrom(feature)
            for domain in inputs_schema.string_domain:
                if domain.name == feature.domain:
                    schema.string_domain.add().CopyFrom(domain)
    return apply_policy(schema, training_names, inputs_names)


def apply_policy(schema: schema_pb2.Schema, training_features: Iterable[str] | None = None,
                 inputs_features: Iterable[str] | None = None) -> schema_pb2.Schema:
    """A copy of `schema` with the policy of the module docstring. `training_features` / `inputs_features`: the
    features each environment's splits have (None: keep the schema's `not_in_environment` as it is)."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    for env in (TRAINING, INPUTS):
        if env not in out.default_environment:
            out.default_environment.append(env)
    training = set(training_features) if training_features is not None else None
    inputs = set(inputs_features) if inputs_features is not None else None
    for feature in out.feature:
        name = feature.name
        if training is not None and inputs is not None:
            _set_environments(feature, in_training=name in training, in_inputs=name in inputs)
        if name in NO_DOMAIN:
            _clear_domain(out, feature)
        if name == OUTCOME_KEY:
            _set_string_domain(out, feature, (ACCEPTED,), MIN_ACCEPTED_MASS)
        elif name in WANTED_VALUES:
            _set_string_domain(out, feature, WANTED_VALUES[name], MIN_WANTED_MASS)
        if name.startswith(DRIFTING_PREFIXES) or name in DRIFTING_NAMES:
            if feature.type in (schema_pb2.FLOAT, schema_pb2.INT):
                feature.drift_comparator.jensen_shannon_divergence.threshold = DRIFT_JSD
                feature.skew_comparator.jensen_shannon_divergence.threshold = SKEW_JSD
            elif feature.type == schema_pb2.BYTES and name in WANTED_VALUES:
                feature.drift_comparator.infinity_norm.threshold = DRIFT_LINF
                feature.skew_comparator.infinity_norm.threshold = SKEW_LINF
    return out


def _set_environments(feature: schema_pb2.Feature, *, in_training: bool, in_inputs: bool) -> None:
    del feature.not_in_environment[:]
    if in_training and not in_inputs:
        feature.not_in_environment.append(INPUTS)
    elif in_inputs and not in_training:
        feature.not_in_environment.append(TRAINING)
    elif in_training and in_inputs and feature.name != "id":
        # In both: the inputs split has it only where an item could be decoded (or a face was found), so it may be
        # missing there; an item that could not be used is `ingest/outcome`'s business, not a presence anomaly.
        feature.ClearField("shape")
        feature.value_count.min = 1
        feature.value_count.max = 1
        feature.presence.min_fraction = 0.0
    if feature.lifecycle_stage == schema_pb2.DEPRECATED:
        feature.lifecycle_stage = schema_pb2.UNKNOWN_STAGE


def _clear_domain(schema: schema_pb2.Schema, feature: schema_pb2.Feature) -> None:
    if feature.HasField("domain"):
        name = feature.domain
        feature.ClearField("domain")
        if not any(f.domain == name for f in schema.feature):
            kept = [d for d in schema.string_domain if d.name != name]
            del schema.string_domain[:]
            schema.string_domain.extend(kept)
    feature.ClearField("string_domain")


def _set_string_domain(schema: schema_pb2.Schema, feature: schema_pb2.Feature, values: Iterable[str],
                       min_mass: float) -> None:
    _clear_domain(schema, feature)
    feature.string_domain.value.extend(values)
    feature.distribution_constraints.min_domain_mass = min_mass


def policy_problems(schema: schema_pb2.Schema) -> list[str]:
    """What in `schema` breaks the policy (empty: none): the check curated schemas are held to."""
    problems = []
    for env in (TRAINING, INPUTS):
        if env not in schema.default_environment:
            problems.append(f"default_environment {env} is missing")
    domains = {d.name: d for d in schema.string_domain}
    for feature in schema.feature:
        name = feature.name
        domain = (list(feature.string_domain.value) if feature.HasField("string_domain")
                  else list(domains[feature.domain].value) if feature.HasField("domain") and feature.domain in domains
                  else None)
        if name in NO_DOMAIN and (feature.HasField("domain") or feature.HasField("string_domain")):
            problems.append(f"{name} must have no domain")
        if name in REQUIRED_DOMAINS:
            values, mass = REQUIRED_DOMAINS[name]
            if domain is None or not set(values) <= set(domain):
                problems.append(f"{name} must have a domain with {list(values)}")
            if feature.distribution_constraints.min_domain_mass < mass:
                problems.append(f"{name} needs distribution_constraints.min_domain_mass >= {mass}")
        drifting = name.startswith(DRIFTING_PREFIXES) or name in DRIFTING_NAMES
        if drifting and (feature.type in (schema_pb2.FLOAT, schema_pb2.INT) or name in WANTED_VALUES):
            for kind in ("drift_comparator", "skew_comparator"):
                if not feature.HasField(kind):
                    problems.append(f"{name} has no {kind}")
    return problems


def read_schema_text(path: str) -> schema_pb2.Schema:
    """A schema.pbtxt (text proto), from any filesystem TensorFlow reads."""
    from google.protobuf import text_format

    from dcgan import fileio

    return text_format.Parse(fileio.read_bytes(path).decode(), schema_pb2.Schema())


def schema_text(schema: schema_pb2.Schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)
