//! The PNG-sequence reader (`media_io::VideoReader` on a folder): the input is split at the
//! first `|PNGSEP|` into two frame files, so that size changes between frames are reached too.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use media_io::{ReaderOptions, VideoReader};

const SEP: &[u8] = b"|PNGSEP|";

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch().join("frames");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let at = data.windows(SEP.len()).position(|w| w == SEP);
    let (first, second) = match at {
        Some(i) => (&data[..i], Some(&data[i + SEP.len()..])),
        None => (data, None),
    };
    std::fs::write(dir.join("0001.png"), first).unwrap();
    if let Some(second) = second {
        std::fs::write(dir.join("0002.png"), second).unwrap();
    }
    if let Ok(mut reader) = VideoReader::open(&dir, &ReaderOptions::default()) {
        for _ in 0..4 {
            match reader.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
});
