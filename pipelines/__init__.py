"""KFP pipeline definitions; compiled YAML lives beside them and is golden-tested."""
