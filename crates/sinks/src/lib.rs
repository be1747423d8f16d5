//! sinks (under construction).
