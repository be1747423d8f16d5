//! The Y4M reader (`media_io::VideoReader` on a `.y4m` file): header, frame headers, planes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use media_io::{ReaderOptions, VideoReader};

fuzz_target!(|data: &[u8]| {
    let path = common::scratch().join("in.y4m");
    std::fs::write(&path, data).unwrap();
    if let Ok(mut reader) = VideoReader::open(&path, &ReaderOptions::default()) {
        // Every frame, or the first error: a reader must end either way.
        for _ in 0..64 {
            match reader.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
});
