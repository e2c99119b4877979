"""Anomalies in words: one line per anomaly (split, feature, TFDV's short and long description), for anomalies.txt,
the Trainer's gate (`DataValidationError`) and the run summary. Light: no TFX or TFDV import."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOCS = "docs/data.md"
ANOMALIES_FILE = "anomalies.txt"
HTML_FILE = "statistics.html"
PICTURE_FILE = "statistics.png"


class DataValidationError(Exception):
    """The data drop did not pass validation: the message names each anomaly and where to allow it. Raised by the
    Trainer before any training (components.validation.trainer); `dcgan pipeline run` prints it and exits 4."""

    exit_code = 4

    def __init__(self, lines: list[str], schema_path: str, files: str = ""):
        self.lines = list(lines)
        self.schema_path = schema_path
        super().__init__(gate_message(self.lines, schema_path, files))


def anomaly_lines(anomalies_by_split: Mapping[str, Any]) -> list[str]:
    """`{split: tensorflow_metadata Anomalies}` → one line per anomaly: `split: feature: short — long`, in split
    then feature order; dataset-level anomalies (e.g. too few examples) name `(dataset)`."""
    lines = []
    for split, anomalies in anomalies_by_split.items():
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"{split}: {feature}: {_describe(info)}")
        if anomalies.HasField("dataset_anomaly_info"):
            lines.append(f"{split}: (dataset): {_describe(anomalies.dataset_anomaly_info)}")
    return lines


def _describe(info: Any) -> str:
    short = info.short_description or "anomaly"
    long = " ".join((info.description or "").split())
    return f"{short} — {long}" if long and long != short else short


def gate_message(lines: list[str], schema_path: str, files: str = "") -> str:
    """The block `dcgan pipeline run` prints when the Trainer refuses a drop; `files`: the folder of the
    ExampleAnomalies artifact, whose pictures it names."""
    head = (f"DATA VALIDATION FAILED: {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} in this data drop; "
            "the Trainer did not start (no training time spent).")
    where = (f"If a change is expected, allow it in {schema_path or 'the schema'} (see {DOCS}), or turn the check off "
             "with --set validation.enabled=false.")
    look = ([f"Look at this drop against the last validated one: {files.rstrip('/')}/{PICTURE_FILE} (histograms), "
             f"{files.rstrip('/')}/{HTML_FILE} (TFDV's view)"] if files else [])
    return "\n".join([head, *(f"  {line}" for line in lines), *look, where])
