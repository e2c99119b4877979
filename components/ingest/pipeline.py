"""The ingest pipeline (Apache Beam): source items → decode → detect+align / crop → resize → PNG → features → dedup
→ split → sharded TFRecords in the example schema (`dcgan.schema`, version 2), plus the ingest report.

    the Source (one element) ─ ListSource ─┬─ batches of items ─ Reshuffle ─ ProcessItems ─┬─ records ─ Place ─┐
      (lists inside a worker: folder walk, │                                                ├─ inputs rows ───┐ │
       object-store match, zip central     │                                                └─ rejects ──────┐│ │
       directory, avatar indexes)          ├─ item count ─ shard counts ─(side input of Place)              ││ │
                                           │                    └─ every (split, shard) key ─ GroupByKey ◄───┼┴─┘
                                           └─ ignored names, count ──────────┐   WriteShards: dedup, sort,  │
                                                                             ▼   write one file ─► report ◄─┘

What is written (`dcgan.schema` has the tables): `Split-train/` and `Split-eval/`, one example per kept face crop:
the PNG, its id, source, sha256, attributes, and its version-2 features (`quality/*` of the crop from
`dcgan.quality`, `source/height|width` of the decoded input, `face/*` of the chosen face in align mode); and
`Split-inputs/data-00000-of-00001.tfrecord.gz`, one row per listed item sorted by id: its `ingest/outcome`
(`accepted` or the reject reason) and what is known of it (source size, face confidence). ProcessItems emits one
inputs row per item it was given; the rows go to the same GroupByKey under one more int key (the inputs split's
only shard). Items rejected as duplicates at write time are `accepted` rows: the duplicate is decided later.

The job graph holds the parsed SOURCE only, never its items: a CelebA zip (200k members) or a bucket of photos is
listed by a worker when the pipeline runs (`sources.iter_listing`), and the Reshuffle spreads the batches of items
over the workers. Batches of `detection_batch` consecutive items are made by the listing DoFn itself, within one
`process` call, rather than by beam.BatchElements (see the Dask notes).

Everything an example's placement depends on is its content: split = hash(seed, sha256 of the PNG) < eval_ratio,
shard = sha256 mod shards; within a shard records are sorted by id. So the same input gives byte-identical shard
files on every runner and worker count, duplicates meet in one shard (the smallest id is kept), and adding images
never moves old ones between splits. The number of shards per split follows from the item count, which the
pipeline counts from the listing (a singleton side input).

Per-image work is done by `dcgan.images`, `dcgan.faces` and `dcgan.avatars` (pure functions, no Beam); this module
only wires them into Beam and writes files. Progress: Beam counters in namespace `ingest` (`items`, `processed`,
`written`, `rejected_<reason>`), a log line per worker every 15 s, and a final summary line
(`IngestReport.summary_line`). The graph avoids what the Dask runner gets wrong (see DaskRunner notes below).

DaskRunner notes (apache-beam 2.74): it merges a ParDo's tagged outputs into one collection, drops elements a DoFn
emits from finish_bundle (so beam.BatchElements loses its last batches: records silently missing), and partitions
GroupByKey by Python's hash(), consistent across workers only while they share PYTHONHASHSEED (Dask's nanny sets
one; workers started without it do not), computes each side input's whole upstream graph separately (the shard
counts' upstream is the listing only), and gives its workers no pipeline options (Beam's S3 filesystem needs them:
`beamio.ensure_options`). Hence: (kind, value) outputs selected by kind, batches made in one `process` call,
integer shard keys, the report in one side input. The runner tests check that Dask writes the same bytes as
DirectRunner.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from components.ingest import beamio
from components.ingest import report as reportlib
from components.ingest import sources as sourcelib
from components.ingest.config import IngestConfig, IngestError
from dcgan import avatars, faces, fileio, quality, schema
from dcgan import images as imlib

log = logging.getLogger(__name__)

METRICS_NAMESPACE = "ingest"
SHARD_PREFIX = "data"
TMP_DIR = ".ingest-tmp"


@dataclass(frozen=True)
class IngestPlan:
    """What the driver decided before the run: the validated config and the parsed (checked, not listed) source."""

    config: IngestConfig
    source: sourcelib.Source


def plan_ingest(config: IngestConfig) -> IngestPlan:
    """Validate the config and check the source (bounded probes, no listing). Raises IngestError."""
    config.validate()
    try:
        source = sourcelib.parse_source(config.source, config.attributes_file)
    except sourcelib.SourceError as e:
        raise IngestError(str(e)) from e
    return IngestPlan(config, source)


def shard_counts(n_items, eval_ratio, records_per_shard):  # untyped: a Beam Map callable
    """split → number of shard files for `n_items` inputs (at least one file per split, even an empty one)."""
    ratios = {"train": 1.0 - eval_ratio, "eval": eval_ratio}
    return {split: max(1, math.ceil(n_items * ratios[split] / records_per_shard)) for split in schema.SPLITS}


# -- placement ------------------------------------------------------------------------------------------------------
def split_of(sha256: str, eval_ratio: float, seed: int) -> str:
    """`eval` for a fraction `eval_ratio` of contents (uniform over the salted hash), else `train`."""
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2.0 ** 64 < eval_ratio else "train"


def shard_of(sha256: str, num_shards: int) -> int:
    return int(sha256[:12], 16) % num_shards


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"Split-{split}/{SHARD_PREFIX}-{shard:05d}-of-{num_shards:05d}{schema.FILE_SUFFIX}"


# -- per element ---------------------------------------------------------------------------------------------------
# DoFns emit (kind, value) pairs that are then selected by kind, rather than tagged outputs: the Dask runner
# merges all tagged outputs of a ParDo into one collection.
RECORD, REJECT, COUNT, PREVIEW, ATTRIBUTE = "record", "reject", "count", "preview", "attribute"
INPUT = "input"
BATCH, LISTED, IGNORED = "batch", "listed", "ignored"


def _only(pair, kind):
    if pair[0] == kind:
        yield pair[1]


class Record(NamedTuple):
    id: str
    png: bytes
    sha256: str
    attributes: dict[str, str]
    features: dict[str, float | int | str]  # the version-2 features by schema key


class InputRow(NamedTuple):
    """One row of the inputs split: what became of one listed item."""

    id: str
    outcome: str  # schema.ACCEPTED or the reject reason
    features: dict[str, float | int | str]  # source/height, source/width, face/confidence where known


def example_features(crop, source_shape: tuple[int, ...], face: faces.Face | None,
                     margin: float) -> dict[str, float | int | str]:
    """The version-2 features of one accepted crop, by schema key: `quality/*` of the crop, the source's size and,
    when the crop was aligned on a face, `face/*`."""
    features: dict[str, float | int | str] = {schema.QUALITY_PREFIX + name: value
                                              for name, value in quality.image_features(crop).items()}
    features.update(source_features(source_shape, face))
    if face is not None:
        features.update({schema.FACE_PREFIX + name: value
                         for name, value in faces.face_features(face, source_shape, margin).items()})
    return features


def source_features(source_shape: tuple[int, ...] | None, face: faces.Face | None) -> dict[str, float | int]:
    """What the inputs split knows of an item: its decoded size and the chosen face's confidence (when known)."""
    out: dict[str, float | int] = {}
    if source_shape is not None:
        out[schema.SOURCE_HEIGHT_KEY], out[schema.SOURCE_WIDTH_KEY] = int(source_shape[0]), int(source_shape[1])
    if face is not None:
        out[schema.FACE_CONFIDENCE_KEY] = float(face.confidence)
    return out


_SPLIT_STRIDE = 1_000_000


def shard_key(split: str, shard: int) -> int:
    """The GroupByKey key of one output file. An int on purpose: Dask partitions groups by Python's hash(), which
    for strings depends on each worker's PYTHONHASHSEED; a key split over two partitions would lose records."""
    return schema.ALL_SPLITS.index(split) * _SPLIT_STRIDE + shard


def split_and_shard(key: int) -> tuple[str, int]:
    return schema.ALL_SPLITS[key // _SPLIT_STRIDE], key % _SPLIT_STRIDE


INPUTS_KEY = shard_key(schema.INPUTS_SPLIT, 0)  # the inputs split is one file


def _input_key(row):  # untyped: Beam would turn annotations into coders
    return INPUTS_KEY, row


def _place(record, eval_ratio, seed, shards):  # untyped: Beam would turn annotations into coders
    """Record → (shard key, record)."""
    split = split_of(record.sha256, eval_ratio, seed)
    return shard_key(split, shard_of(record.sha256, shards[split])), record


def _every_shard(shards):
    """One (shard key, number of shards of its split) per output file: every file gets written, even an empty one,
    and WriteShards learns the file's name from it."""
    for split in schema.SPLITS:
        for shard in range(shards[split]):
            yield shard_key(split, shard), shards[split]
    yield INPUTS_KEY, 1


class ListSource(beam.DoFn):
    """The parsed source → its items, listed here, in the worker: (BATCH, [WorkItem, ...]) of `batch_size`
    consecutive items, (IGNORED, name) per file skipped as a non-image, and one (LISTED, number of items)."""

    def __init__(self, batch_size: int, s3_args: Sequence[str] = ()):
        self.batch_size = batch_size
        self.s3_args = list(s3_args)

    def setup(self) -> None:
        beamio.ensure_options(self.s3_args)

    def process(self, source):  # a sources.Source (untyped: Beam reads annotations as type hints)
        batch: list[sourcelib.WorkItem] = []
        n = 0
        for kind, value in sourcelib.iter_listing(source):
            if kind == sourcelib.IGNORED:
                yield IGNORED, value
                continue
            batch.append(value)
            n += 1
            if len(batch) == self.batch_size:
                yield BATCH, batch
                batch = []
        if batch:
            yield BATCH, batch
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "listed").inc(n)
        log.info("ingest: %d items listed in %s", n, source.spec)
        yield LISTED, n


class _Progress:
    """Logs what one worker has done every `every` seconds."""

    def __init__(self, every: float = 15.0):
        self.every = every
        self.start = self.last = time.monotonic()
        self.done = self.rejected = 0

    def tick(self, done: int, rejected: int) -> None:
        self.done += done
        self.rejected += rejected
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.info("ingest worker %d: %d items processed (%d rejected), %.1f items/s", os.getpid(), self.done,
                     self.rejected, self.done / max(now - self.start, 1e-9))


class ProcessItems(beam.DoFn):
    """A batch of work items → (RECORD, Record) and (REJECT, Reject) pairs, and one (INPUT, InputRow) per item.
    Never raises on bad input."""

    def __init__(self, config: IngestConfig, source: sourcelib.Source, threads: int = 0,
                 s3_args: Sequence[str] = ()):
        self.config = config
        self.source = source
        self.threads = threads
        self.s3_args = list(s3_args)

    def setup(self) -> None:
        beamio.ensure_options(self.s3_args)
        if self.threads:
            faces.configure_threads(self.threads)
        self.crop = self.config.crop_config()
        self.detector = None
        self.progress = _Progress()
        self.items = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "items")
        self.written = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "processed")
        # Wall-clock bounds of the work (ms since the epoch): min start and max end over all workers give the
        # processing window, i.e. the run time without worker start-up.
        self.batch_start = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "batch_start_ms")
        self.batch_end = beam.metrics.Metrics.distribution(METRICS_NAMESPACE, "batch_end_ms")
        if self.crop.mode == faces.ALIGN and not self.source.is_avatars:
            self.detector = faces.get_detector(self.crop.detect_size)

    def teardown(self) -> None:
        p = getattr(self, "progress", None)
        if p is not None and p.done:
            elapsed = time.monotonic() - p.start
            log.info("ingest worker %d: finished, %d items processed (%d rejected) in %.1f s", os.getpid(), p.done,
                     p.rejected, elapsed)

    def _reject(self, item_id: str, reason: str, detail: str, source_shape: tuple[int, ...] | None = None,
                face: faces.Face | None = None):
        """The (REJECT, Reject) and (INPUT, InputRow) pairs of a rejected item."""
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{reason}").inc()
        return ((REJECT, reportlib.Reject(item_id, reason, detail)),
                (INPUT, InputRow(item_id, reason, source_features(source_shape, face))))

    def _record(self, item_id: str, image, attributes: dict[str, str], source_shape: tuple[int, ...],
                face: faces.Face | None = None):
        """The (RECORD, Record) and (INPUT, InputRow) pairs of an accepted crop."""
        png = imlib.encode_png(image)
        features = example_features(image, source_shape, face, self.crop.margin)
        return ((RECORD, Record(item_id, png, hashlib.sha256(png).hexdigest(), dict(attributes), features)),
                (INPUT, InputRow(item_id, schema.ACCEPTED, source_features(source_shape, face))))

    def process(self, batch):  # a list of WorkItems (untyped: Beam reads annotations as type hints)
        self.batch_start.update(int(time.time() * 1000))
        self.items.inc(len(batch))
        decoded: list[tuple[sourcelib.WorkItem, Any, dict[str, str]]] = []
        rejected = 0
        for item in batch:
            try:
                if item.kind == "avatar":
                    image, attributes = avatars.generate_avatar(self.source.avatar_seed, item.index,
                                                                self.config.size)
                    yield from self._record(item.id, image, attributes, image.shape)
                    continue
                image = imlib.decode_image(sourcelib.read_item(item), max_pixels=self.config.max_pixels)
                decoded.append((item, image, sourcelib.attributes_for(self.source, item)))
            except imlib.ImageRejected as e:
                rejected += 1
                yield from self._reject(item.id, e.reason, e.detail)
            except Exception as e:  # noqa: BLE001 - one bad input must never stop the run
                rejected += 1
                log.warning("ingest: unexpected error on %s:\n%s", item.id, traceback.format_exc())
                yield from self._reject(item.id, reportlib.PROCESSING_ERROR, f"{type(e).__name__}: {e}")
        cropped = self._crop_all([d[1] for d in decoded])
        for (item, image, attributes), (crop, face) in zip(decoded, cropped, strict=True):
            if isinstance(crop, imlib.ImageRejected):
                rejected += 1
                yield from self._reject(item.id, crop.reason, crop.detail, image.shape, face)
                continue
            try:
                pairs = self._record(item.id, crop, attributes, image.shape, face)
            except Exception as e:  # noqa: BLE001
                rejected += 1
                pairs = self._reject(item.id, reportlib.PROCESSING_ERROR, f"{type(e).__name__}: {e}", image.shape)
            yield from pairs
        self.written.inc(len(batch) - rejected)
        self.progress.tick(len(batch), rejected)
        self.batch_end.update(int(time.time() * 1000))

    def _crop_all(self, images: list) -> list:
        """Decoded images → (crop or ImageRejected, chosen face or None) each (`faces.crop_images_with_faces`)."""
        if not images:
            return []
        try:
            return faces.crop_images_with_faces(images, self.crop, self.detector)
        except Exception:  # noqa: BLE001 - find the one image that breaks the batch, keep the others
            log.warning("ingest: batch crop failed, retrying image by image:\n%s", traceback.format_exc())
        out: list = []
        for image in images:
            try:
                out.append(faces.crop_images_with_faces([image], self.crop, self.detector)[0])
            except Exception as e:  # noqa: BLE001
                out.append((imlib.ImageRejected(reportlib.PROCESSING_ERROR, f"{type(e).__name__}: {e}"), None))
        return out


class WriteShards(beam.DoFn):
    """(shard key, records) → one TFRecord file, records deduplicated by sha256 and sorted by id; the inputs split's
    key: (INPUTS_KEY, inputs rows) → its one file, rows sorted by id.

    Outputs (kind, value) pairs: (COUNT, (split, n)), (REJECT, duplicate), (PREVIEW, (id, png)), (ATTRIBUTE, name);
    nothing for the inputs split."""

    def __init__(self, examples_dir: str, source_spec: str, size: int, preview_count: int):
        self.examples_dir = examples_dir.rstrip("/")
        self.source_spec = source_spec
        self.size = size
        self.preview_count = preview_count

    def process(self, element):  # (shard key, iterable of Records or InputRows and the split's number of shards)
        key, values = element
        split, shard = split_and_shard(key)
        values = list(values)
        num_shards = max(v for v in values if isinstance(v, int))
        if split == schema.INPUTS_SPLIT:
            rows = sorted((r for r in values if isinstance(r, InputRow)), key=lambda r: r.id)
            self._write(split, shard, num_shards, (schema.make_inputs_example(r.id, r.outcome, r.features)
                                                   for r in rows))
            return
        records = sorted((r for r in values if isinstance(r, Record)), key=lambda r: r.id)
        kept: list[Record] = []
        first_with: dict[str, str] = {}
        for r in records:
            if r.sha256 in first_with:
                beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"rejected_{reportlib.DUPLICATE}").inc()
                yield REJECT, reportlib.Reject(r.id, reportlib.DUPLICATE, f"same image as {first_with[r.sha256]}")
            else:
                first_with[r.sha256] = r.id
                kept.append(r)
        self._write(split, shard, num_shards, (schema.make_example(r.png, self.size, self.size, r.id,
                                                                   self.source_spec, r.attributes, r.sha256,
                                                                   features=r.features) for r in kept))
        beam.metrics.Metrics.counter(METRICS_NAMESPACE, "written").inc(len(kept))
        yield COUNT, (split, len(kept))
        for r in kept[:self.preview_count]:
            yield PREVIEW, (r.id, r.png)
        for name in sorted({k for r in kept for k in r.attributes}):
            yield ATTRIBUTE, name

    def _write(self, split: str, shard: int, num_shards: int, examples) -> None:
        """Write `examples` (tf.train.Examples, in order) as one shard file: a temporary file renamed when done."""
        import tensorflow as tf

        final = f"{self.examples_dir}/{shard_name(split, shard, num_shards)}"
        tmp = f"{self.examples_dir}/{TMP_DIR}/{split}-{shard:05d}-{uuid.uuid4().hex}{schema.FILE_SUFFIX}"
        fileio.ensure_filesystem(final)  # s3:// in this worker process too (multi-process/Dask workers)
        tf.io.gfile.makedirs(os.path.dirname(tmp))
        tf.io.gfile.makedirs(os.path.dirname(final))
        with tf.io.TFRecordWriter(tmp, options=tf.io.TFRecordOptions(compression_type=schema.COMPRESSION)) as w:
            for example in examples:
                w.write(example.SerializeToString(deterministic=True))
        tf.io.gfile.rename(tmp, final, overwrite=True)


def _write_report(_, *, base: dict[str, Any], report_dir: str, items: list) -> None:
    """Gather the (kind, value) pairs of the run into the report files."""
    written = {split: 0 for split in schema.SPLITS}
    rejects, preview, attribute_names, ignored, input_count = [], [], set(), [], 0
    for kind, value in items:
        if kind == LISTED:
            input_count += value
        elif kind == IGNORED:
            ignored.append(value)
        elif kind == COUNT:
            written[value[0]] += value[1]
        elif kind == REJECT:
            rejects.append(value)
        elif kind == PREVIEW:
            preview.append(value)
        elif kind == ATTRIBUTE:
            attribute_names.add(value)
    preview = sorted(preview)[:base["config"]["preview_count"]]
    png = imlib.encode_png(imlib.make_grid([imlib.decode_png(p) for _, p in preview])) if preview else None
    report = reportlib.IngestReport(written=written, rejects=sorted(rejects, key=lambda r: (r.reason, r.id)),
                                    attribute_names=sorted(attribute_names), preview_ids=[i for i, _ in preview],
                                    input_count=input_count, ignored=sorted(ignored), **base)
    reportlib.write_report(report, report_dir, png)


def build_ingest_pipeline(pipeline: beam.Pipeline, plan: IngestPlan, examples_dir: str, report_dir: str,
                          worker_threads: int = 0, s3_args: Sequence[str] = ()) -> None:
    """Add the ingest transforms to `pipeline` (it writes when the pipeline runs). The graph holds the parsed
    source, not its items: its size does not depend on how many files the source has."""
    config, source = plan.config, plan.source
    # One element: the source. Even the avatar set is listed by ListSource (its indexes), like any other source.
    listing = (pipeline
               | "Source" >> beam.Create([source], reshuffle=False)
               | "List" >> beam.ParDo(ListSource(config.detection_batch, s3_args)))
    processed = (
        listing
        | "Batches" >> beam.FlatMap(_only, BATCH)
        | "Spread" >> beam.Reshuffle()
        | "Process" >> beam.ParDo(ProcessItems(config, source, worker_threads, s3_args)))
    shards = (listing
              | "ItemCount" >> beam.FlatMap(_only, LISTED)
              | "Total" >> beam.CombineGlobally(sum)
              | "ShardCounts" >> beam.Map(shard_counts, config.eval_ratio, config.records_per_shard))
    keyed = (processed
             | "Records" >> beam.FlatMap(_only, RECORD)
             | "Place" >> beam.Map(_place, config.eval_ratio, config.seed, beam.pvalue.AsSingleton(shards)))
    inputs = (processed
              | "InputRows" >> beam.FlatMap(_only, INPUT)
              | "InputsKey" >> beam.Map(_input_key))
    every_shard = shards | "EveryShard" >> beam.FlatMap(_every_shard)
    written = (
        (keyed, inputs, every_shard)
        | "Merge" >> beam.Flatten()
        | "GroupShards" >> beam.GroupByKey()
        | "Write" >> beam.ParDo(WriteShards(examples_dir, source.spec, config.size, config.preview_count)))
    # Everything the report needs, as (kind, value) pairs in ONE side input: the Dask runner computes each side
    # input's whole upstream graph on its own, so four side inputs would run the per-image work four times.
    report_items = ((processed | "ItemRejects" >> beam.Filter(lambda pair: pair[0] == REJECT),
                     listing | "Listed" >> beam.Filter(lambda pair: pair[0] in (LISTED, IGNORED)),
                     written)
                    | "ReportItems" >> beam.Flatten())
    base = {"source": source.spec, "examples": examples_dir, "config": config.to_dict()}
    _ = (pipeline
         | "ReportTrigger" >> beam.Create([None], reshuffle=False)
         | "WriteReport" >> beam.Map(_write_report, base=base, report_dir=report_dir,
                                     items=beam.pvalue.AsList(report_items)))


# -- running it ------------------------------------------------------------------------------------------------------
def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_runner(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    name = name.rsplit(".", 1)[-1]
    if name in ("DirectRunner", "BundleBasedDirectRunner", "FnApiRunner"):
        direct = options.view_as(DirectOptions)
        workers = direct.direct_num_workers or 1
        if direct.direct_running_mode != "in_memory" or workers != 1:
            name += f" ({direct.direct_running_mode}, {workers} workers)"
    return name


def auto_worker_threads(options: PipelineOptions) -> int:
    """Threads per worker process when a DirectRunner's worker processes share this machine: cores / workers;
    0 = leave TensorFlow's default (one process, or a runner whose workers live elsewhere)."""
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = runner if isinstance(runner, str) else type(runner).__name__
    if "Direct" not in name and "FnApi" not in name:
        return 0
    direct = options.view_as(DirectOptions)
    if direct.direct_running_mode != "multi_processing":  # one process: its threads share TF's pools anyway
        return 0
    workers = direct.direct_num_workers or local_cores()
    return max(1, local_cores() // max(1, workers))


def prepare_output(examples_dir: str, report_dir: str, overwrite: bool) -> None:
    """Make sure no earlier ingest's files survive in the output (stale shards would be read as data)."""
    import tensorflow as tf

    ours = [f"{examples_dir}/Split-{s}" for s in schema.ALL_SPLITS] + [f"{examples_dir}/{TMP_DIR}"] + \
        [f"{report_dir}/{name}" for name in (reportlib.REPORT_JSON, reportlib.REPORT_TEXT, reportlib.PREVIEW_PNG)]
    present = [p for p in ours if tf.io.gfile.exists(p)]
    if present and not overwrite:
        raise IngestError(f"{examples_dir} already holds an ingest output ({os.path.basename(present[0])}, ...); "
                          f"use another folder or overwrite it (--force)")
    for path in present:
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)
    tf.io.gfile.makedirs(examples_dir)
    tf.io.gfile.makedirs(report_dir)


def finish_report(report_dir: str, runner: str, elapsed: float,
                  processing: float | None = None) -> reportlib.IngestReport:
    """Add what only the driver knows (runner, wall time, processing window) to the report the pipeline wrote."""
    import tensorflow as tf

    report = reportlib.load_report(report_dir)
    report.runner = runner
    report.elapsed_seconds = round(elapsed, 3)
    report.processing_seconds = None if processing is None else round(processing, 3)
    reportlib.write_report(report, report_dir)
    tmp = f"{report.examples.rstrip('/')}/{TMP_DIR}"
    if tf.io.gfile.exists(tmp):
        tf.io.gfile.rmtree(tmp)
    return report


def execute(pipeline: beam.Pipeline, plan: IngestPlan, examples_dir: str, report_dir: str,
            options: PipelineOptions) -> reportlib.IngestReport:
    """Build the ingest into `pipeline` (made with `options`), run it to the end and return the final report."""
    threads = plan.config.worker_threads or auto_worker_threads(options)
    runner = describe_runner(options)
    log.info("ingest: %s with %s", plan.source.spec, runner)
    start = time.monotonic()
    build_ingest_pipeline(pipeline, plan, examples_dir, report_dir, threads, beamio.worker_args(options))
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # the Dask runner opens a distributed.Client and never closes it
        if client is not None:
            client.close()
    elapsed = time.monotonic() - start
    counters, processing = _metrics(result)
    if counters:
        log.info("ingest counters: %s", ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    report = finish_report(report_dir, runner, elapsed, processing)
    log.info("%s", report.summary_line())
    if report.input_count == 0:
        raise IngestError(f"no image files ({', '.join(imlib.IMAGE_EXTENSIONS)}) found in {plan.source.spec!r} "
                          f"(the report in {report_dir} lists what was skipped)")
    return report


def run_ingest(config: IngestConfig, examples_dir: str, report_dir: str | None = None,
               beam_pipeline_args: Sequence[str] | None = None, overwrite: bool = False) -> reportlib.IngestReport:
    """Run the ingest pipeline with `beam_pipeline_args` (DirectRunner by default) and return its report.

    Writes `examples_dir/Split-{train,eval,inputs}/data-SSSSS-of-NNNNN.tfrecord.gz` and the report files into
    `report_dir` (default: `examples_dir`). Raises IngestError before running when the input cannot be used, and
    after the run when the source held no image at all.
    """
    report_dir = report_dir or examples_dir
    plan = plan_ingest(config)
    prepare_output(examples_dir, report_dir, overwrite)
    options = PipelineOptions(beamio.pipeline_args(beam_pipeline_args))
    return execute(beam.Pipeline(options=options), plan, examples_dir, report_dir, options)


def _metrics(result) -> tuple[dict[str, int], float | None]:
    """Counter totals of namespace `ingest`, and the processing window: from the first batch started to the last
    batch finished on any worker (None when the runner reports no metrics)."""
    try:
        from apache_beam.metrics.metric import MetricsFilter

        found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    except Exception:  # noqa: BLE001 - not every runner reports metrics
        return {}, None
    counters: dict[str, int] = {}
    for c in found.get("counters", []):
        counters[c.key.metric.name] = counters.get(c.key.metric.name, 0) + int(c.committed or c.attempted or 0)
    starts, ends = [], []
    for d in found.get("distributions", []):
        value = d.committed or d.attempted
        if value is None or not value.count:
            continue
        if d.key.metric.name == "batch_start_ms":
            starts.append(value.min)
        elif d.key.metric.name == "batch_end_ms":
            ends.append(value.max)
    processing = (max(ends) - min(starts)) / 1000.0 if starts and ends else None
    return counters, processing
