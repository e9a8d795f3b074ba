//! YAML to the workflow IR.
