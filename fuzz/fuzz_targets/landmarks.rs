//! The landmark JSON (`face_proc::LandmarkFile::parse`), faces from an external detector.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = face_proc::LandmarkFile::parse("fuzz.json", text);
    }
});
