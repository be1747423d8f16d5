//! media-io (under construction).
