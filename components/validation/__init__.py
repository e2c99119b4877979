"""Data validation the TFX way: the project's schema policy, the SchemaGen and ExampleValidator executors, the
report of anomalies and the Trainer that refuses a drop that did not pass (docs/data.md)."""
