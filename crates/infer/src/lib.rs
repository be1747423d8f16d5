//! infer (under construction).
