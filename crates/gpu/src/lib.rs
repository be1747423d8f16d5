//! gpu (under construction).
