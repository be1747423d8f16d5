//! face-proc (under construction).
