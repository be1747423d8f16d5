//! The WAV path (`media_io::AudioReader` on a `.wav` file, block by block, as the pipeline
//! streams audio into its features).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use media_io::AudioReader;

fuzz_target!(|data: &[u8]| {
    let path = common::scratch().join("in.wav");
    std::fs::write(&path, data).unwrap();
    if let Ok(mut reader) = AudioReader::open(&path) {
        let _ = (reader.channels(), reader.sample_rate());
        let mut buf = vec![0.0f32; 4096];
        // A bounded number of blocks: the input is small, so a reader that keeps returning
        // samples past its data is caught by the assertion.
        for _ in 0..(data.len() + 2) {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => assert!(n <= buf.len()),
            }
        }
        panic!("the reader returned samples beyond the {} input bytes", data.len());
    }
});
