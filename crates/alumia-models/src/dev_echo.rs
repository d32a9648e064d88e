//! The built-in deterministic development model (spec 03 §4).
