"""The ingest report: what went in, what came out, and every rejected input with its reason.

Three files in the report directory (the CLI's OUT folder, or the TFX `IngestReport` artifact):

  ingest_report.json  — machine-readable, format `dcgan-ingest-report/1` (see `IngestReport.to_dict`)
  ingest_report.txt   — the same for people: counts, then each reason with the file names
  preview.png         — a grid of the first written images (by id), as the trainer will see them

Invariant: counts.input == counts.written + counts.rejected (duplicates are rejects with reason `duplicate`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FORMAT = "dcgan-ingest-report/1"
REPORT_JSON = "ingest_report.json"
REPORT_TEXT = "ingest_report.txt"
PREVIEW_PNG = "preview.png"

DUPLICATE = "duplicate"  # same output image as another input (kept once: the smallest id)
PROCESSING_ERROR = "processing_error"  # an unexpected error on one input (a bug; the run goes on)


@dataclass(frozen=True)
class Reject:
    id: str
    reason: str
    detail: str = ""


@dataclass
class IngestReport:
    source: str
    examples: str  # the Examples directory written (Split-train/, Split-eval/, Split-inputs/)
    config: dict[str, Any]
    input_count: int
    written: dict[str, int]  # split name → examples written
    rejects: list[Reject] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files skipped because they are not images by name
    attribute_names: list[str] = field(default_factory=list)
    preview_ids: list[str] = field(default_factory=list)
    runner: str = ""
    elapsed_seconds: float | None = None  # the driver's wall time for the whole run
    processing_seconds: float | None = None  # first item started → last item done, on any worker (no start-up)

    @property
    def written_total(self) -> int:
        return sum(self.written.values())

    @property
    def reject_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.rejects).items()))

    def rejected_ids(self, reason: str | None = None) -> list[str]:
        return [r.id for r in self.rejects if reason is None or r.reason == reason]

    def reason_of(self, item_id: str) -> str | None:
        for r in self.rejects:
            if r.id == item_id:
                return r.reason
        return None

    # -- JSON --------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        by_reason: dict[str, list[dict[str, str]]] = {}
        for r in sorted(self.rejects, key=lambda r: (r.reason, r.id)):
            by_reason.setdefault(r.reason, []).append({"id": r.id, "detail": r.detail})
        return {
            "format": FORMAT,
            "source": self.source,
            "examples": self.examples,
            "config": self.config,
            "counts": {"input": self.input_count, "written": self.written_total, **self.written,
                       "rejected": len(self.rejects), "ignored": len(self.ignored)},
            "rejected_by_reason": self.reject_counts,
            "rejects": by_reason,
            "ignored_files": self.ignored,
            "attributes": self.attribute_names,
            "preview": {"file": PREVIEW_PNG, "ids": self.preview_ids},
            "runner": self.runner,
            "elapsed_seconds": self.elapsed_seconds,
            "processing_seconds": self.processing_seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestReport:
        if d.get("format") != FORMAT:
            raise ValueError(f"not an ingest report (format {d.get('format')!r}, expected {FORMAT!r})")
        counts = d["counts"]
        splits = {k: v for k, v in counts.items() if k not in ("input", "written", "rejected", "ignored")}
        rejects = [Reject(e["id"], reason, e.get("detail", "")) for reason, entries in d["rejects"].items()
                   for e in entries]
        return cls(source=d["source"], examples=d["examples"], config=d["config"], input_count=counts["input"],
                   written=splits, rejects=rejects, ignored=list(d.get("ignored_files", [])),
                   attribute_names=list(d.get("attributes", [])), preview_ids=list(d["preview"]["ids"]),
                   runner=d.get("runner", ""), elapsed_seconds=d.get("elapsed_seconds"),
                   processing_seconds=d.get("processing_seconds"))

    # -- for people --------------------------------------------------------------------------------------------------
    def summary_line(self) -> str:
        splits = ", ".join(f"{k} {v}" for k, v in self.written.items())
        reasons = ", ".join(f"{k} {v}" for k, v in self.reject_counts.items())
        took = f" in {self.elapsed_seconds:.1f} s" if self.elapsed_seconds is not None else ""
        rate = f" ({self.input_count / self.elapsed_seconds:.1f} images/s" if self.elapsed_seconds else ""
        if rate and self.processing_seconds:
            rate += f", {self.input_count / self.processing_seconds:.1f} once running"
        rate += ")" if rate else ""
        return (f"ingest: {self.input_count} in -> {self.written_total} written ({splits}), "
                f"{len(self.rejects)} rejected" + (f" ({reasons})" if reasons else "") + f"{took}{rate}"
                f" -> {self.examples}")

    def text(self, max_per_reason: int = 200) -> str:
        c = self.config
        lines = [f"Ingest report — {self.source}",
                 f"  output      {self.examples}",
                 f"  settings    mode {c.get('mode')}, size {c.get('size')}, eval ratio {c.get('eval_ratio')}, "
                 f"seed {c.get('seed')}" + (f", runner {self.runner}" if self.runner else ""),
                 "",
                 f"  input       {self.input_count:>8}",
                 f"  written     {self.written_total:>8}   " + "  ".join(f"{k} {v}" for k, v in self.written.items()),
                 f"  rejected    {len(self.rejects):>8}"]
        for reason, count in self.reject_counts.items():
            lines.append(f"    {reason:<24}{count:>6}")
        if self.ignored:
            lines.append(f"  ignored     {len(self.ignored):>8}   (not image files by name)")
        if self.elapsed_seconds is not None:
            lines.append(f"  time        {self.elapsed_seconds:>8.1f} s" + (
                f"   (processing {self.processing_seconds:.1f} s, without worker start-up)"
                if self.processing_seconds is not None else ""))
        if self.attribute_names:
            lines.append(f"  attributes  {', '.join(self.attribute_names)}")
        by_reason: dict[str, list[Reject]] = {}
        for r in sorted(self.rejects, key=lambda r: (r.reason, r.id)):
            by_reason.setdefault(r.reason, []).append(r)
        for reason, entries in by_reason.items():
            lines += ["", f"{reason} ({len(entries)}):"]
            for r in entries[:max_per_reason]:
                lines.append(f"  {r.id}" + (f"  — {r.detail}" if r.detail else ""))
            if len(entries) > max_per_reason:
                lines.append(f"  ... and {len(entries) - max_per_reason} more (all in {REPORT_JSON})")
        if self.ignored:
            lines += ["", f"ignored ({len(self.ignored)}):"] + [f"  {n}" for n in self.ignored[:max_per_reason]]
        return "\n".join(lines) + "\n"


def write_report(report: IngestReport, report_dir: str, preview_png: bytes | None = None) -> None:
    """Write the JSON, the text summary and (when given) the preview grid into `report_dir` (any tf.io.gfile path)."""
    import tensorflow as tf

    tf.io.gfile.makedirs(report_dir)
    with tf.io.gfile.GFile(_join(report_dir, REPORT_JSON), "w") as f:
        f.write(json.dumps(report.to_dict(), indent=1) + "\n")
    with tf.io.gfile.GFile(_join(report_dir, REPORT_TEXT), "w") as f:
        f.write(report.text())
    if preview_png is not None:
        with tf.io.gfile.GFile(_join(report_dir, PREVIEW_PNG), "wb") as f:
            f.write(preview_png)


def load_report(report_dir: str) -> IngestReport:
    import tensorflow as tf

    with tf.io.gfile.GFile(_join(report_dir, REPORT_JSON)) as f:
        return IngestReport.from_dict(json.load(f))


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name
