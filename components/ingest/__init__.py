"""Face ingest: a source of images → Apache Beam → TFRecords in the project's example schema + an ingest report.

Modules: `config` (IngestConfig), `sources` (what SOURCE strings mean, reading one item), `pipeline` (the Beam
graph, `run_ingest`), `report` (the ingest report format), `component` (the TFX component `FaceExampleGen`) and
`cli` (`dcgan ingest`). Importing this package is cheap; Beam and TFX are imported by the modules that need them.
"""
