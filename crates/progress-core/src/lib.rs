//! progress-core (under construction).
