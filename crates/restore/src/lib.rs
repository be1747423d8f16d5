//! restore (under construction).
