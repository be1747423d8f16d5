//! Round trips and bad inputs for every format media-io reads and writes.

use std::path::{Path, PathBuf};

use facesync_media_io as media_io;
use frame::Frame;
use media_io::{
    AudioReader, MAX_FRAME_SIDE, MediaError, Rational, ReaderOptions, VideoInfo, VideoReader,
    VideoWriter, WriterOptions, Y4mChroma, read_audio,
};

/// A smooth colour image (gradients + a slow sine): chroma subsampling barely changes it.
fn smooth(w: u32, h: u32, t: u32) -> Frame {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let fx = x as f32 / w as f32;
            let fy = y as f32 / h as f32;
            let s = ((fx * 3.0 + fy * 2.0 + t as f32 * 0.3).sin() * 0.5 + 0.5) * 200.0;
            data.extend([
                (fx * 230.0) as u8 + 10,
                s as u8 + 20,
                (fy * 220.0) as u8 + 15,
            ]);
        }
    }
    Frame::new(w, h, data).unwrap()
}

fn info(w: u32, h: u32) -> VideoInfo {
    VideoInfo {
        width: w,
        height: h,
        fps: Rational::new(30000, 1001),
        frame_count: None,
    }
}

fn write_video(path: &Path, frames: &[Frame], options: &WriterOptions) -> PathBuf {
    let (w, h) = (frames[0].width(), frames[0].height());
    let mut writer = VideoWriter::create(path, &info(w, h), options).unwrap();
    for f in frames {
        writer.write_frame(f).unwrap();
    }
    writer.finish().unwrap()
}

fn read_all(path: &Path) -> (VideoInfo, Vec<Frame>) {
    let mut reader = VideoReader::open(path, &ReaderOptions::default()).unwrap();
    let info = reader.info().clone();
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame().unwrap() {
        frames.push(f);
    }
    (info, frames)
}

/// (max absolute difference, mean absolute difference) over all channels.
fn diff(a: &Frame, b: &Frame) -> (u8, f64) {
    assert_eq!((a.width(), a.height()), (b.width(), b.height()));
    let mut max = 0;
    let mut sum = 0u64;
    for (x, y) in a.data().iter().zip(b.data()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
    }
    (max, sum as f64 / a.data().len() as f64)
}

/// Writes `frames` as Y4M with `chroma`, reads them back and checks size, rate, count and the
/// pixel error bounds.
fn check_y4m(chroma: Y4mChroma, w: u32, h: u32, max_err: u8, mean_err: f64) {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Frame> = (0..3).map(|t| smooth(w, h, t)).collect();
    let path = write_video(
        &dir.path().join("v.y4m"),
        &frames,
        &WriterOptions {
            y4m_chroma: chroma,
            ..Default::default()
        },
    );
    let (got_info, got) = read_all(&path);
    assert_eq!(got_info.width, w);
    assert_eq!(got_info.height, h);
    assert_eq!(got_info.fps, Rational::new(30000, 1001));
    assert_eq!(got_info.frame_count, Some(3));
    assert_eq!(got.len(), 3);
    for (a, b) in frames.iter().zip(&got) {
        let (max, mean) = diff(a, b);
        assert!(
            max <= max_err,
            "{chroma:?} {w}x{h}: max error {max} > {max_err}"
        );
        assert!(
            mean <= mean_err,
            "{chroma:?} {w}x{h}: mean error {mean} > {mean_err}"
        );
    }
}

#[test]
fn y4m_round_trips() {
    // 4:4:4: only the 8-bit YCbCr quantisation is lost (≤ 2 LSB per channel).
    check_y4m(Y4mChroma::C444, 64, 48, 2, 0.7);
    check_y4m(Y4mChroma::C444, 33, 17, 2, 0.7);
    // 4:2:0 on a smooth image: chroma averaging + bilinear upsampling, ≤ 6 LSB, mean ≤ 1.5;
    // the 33×17 image has steeper gradients (7 LSB per pixel) and odd edges: ≤ 10 LSB.
    check_y4m(Y4mChroma::C420, 64, 48, 6, 1.5);
    check_y4m(Y4mChroma::C420, 33, 17, 10, 1.5);
}

#[test]
fn y4m_reads_limited_range_and_mono_from_other_tools() {
    let dir = tempfile::tempdir().unwrap();
    // Limited range (no XCOLORRANGE tag): Y 16 is black, 235 white, chroma 128 neutral.
    let limited = dir.path().join("limited.y4m");
    let mut bytes = b"YUV4MPEG2 W2 H2 F25:1 C444\nFRAME\n".to_vec();
    bytes.extend([16, 235, 126, 16]); // Y
    bytes.extend([128; 4]); // Cb
    bytes.extend([128; 4]); // Cr
    std::fs::write(&limited, &bytes).unwrap();
    let (_, frames) = read_all(&limited);
    assert_eq!(frames[0].pixel(0, 0), [0, 0, 0]);
    assert_eq!(frames[0].pixel(1, 0), [255, 255, 255]);
    assert_eq!(frames[0].pixel(0, 1), [128, 128, 128]);
    let mono = dir.path().join("mono.y4m");
    std::fs::write(
        &mono,
        b"YUV4MPEG2 W2 H1 F24:1 Cmono XCOLORRANGE=FULL\nFRAME\n\x00\xc8",
    )
    .unwrap();
    let (info, frames) = read_all(&mono);
    assert_eq!(info.fps, Rational::new(24, 1));
    assert_eq!(frames[0].data(), &[0, 0, 0, 200, 200, 200]);
}

#[test]
fn png_folder_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let frames: Vec<Frame> = (0..4).map(|t| smooth(20, 10, t)).collect();
    let path = write_video(
        &dir.path().join("frames"),
        &frames,
        &WriterOptions::default(),
    );
    assert!(path.is_dir());
    let (info, got) = read_all(&path);
    assert_eq!(
        info.fps,
        Rational::new(25, 1),
        "PNG folders default to 25 fps"
    );
    assert_eq!(info.frame_count, Some(4));
    assert_eq!(got, frames);
}

fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: hound::WavSpec, samples: &[S]) {
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    }
}

#[test]
fn wav_reading_every_sample_format() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    write_wav(
        &p("i16.wav"),
        spec(2, 44_100, 16, false),
        &[0i16, 16384, -32768, 32767],
    );
    write_wav(&p("i8.wav"), spec(1, 8_000, 8, false), &[0i8, 64, -128]);
    write_wav(
        &p("i24.wav"),
        spec(1, 48_000, 24, false),
        &[1 << 22, -(1 << 23)],
    );
    write_wav(
        &p("i32.wav"),
        spec(3, 16_000, 32, false),
        &[1 << 30, 0, i32::MIN],
    );
    write_wav(&p("f32.wav"), spec(1, 22_050, 32, true), &[0.25f32, -0.5]);
    let cases: [(&str, u16, u32, &[f32]); 5] = [
        ("i16.wav", 2, 44_100, &[0.0, 0.5, -1.0, 32767.0 / 32768.0]),
        ("i8.wav", 1, 8_000, &[0.0, 0.5, -1.0]),
        ("i24.wav", 1, 48_000, &[0.5, -1.0]),
        ("i32.wav", 3, 16_000, &[0.5, 0.0, -1.0]),
        ("f32.wav", 1, 22_050, &[0.25, -0.5]),
    ];
    for (name, channels, rate, samples) in cases {
        let a = read_audio(&p(name)).unwrap();
        assert_eq!((a.channels, a.sample_rate), (channels, rate), "{name}");
        assert_eq!(a.samples, samples, "{name}");
    }
    let stereo = read_audio(&p("i16.wav")).unwrap();
    assert_eq!(stereo.to_mono(), vec![0.25, -0.5 + 0.5 * 32767.0 / 32768.0]);
}

/// Each bad input gives its own error, naming the file.
fn check_error(path: &Path, open: impl FnOnce(&Path) -> Result<(), MediaError>, expected: &str) {
    let err = open(path).expect_err("bad input must fail");
    let text = err.to_string();
    assert!(
        text.contains(expected),
        "`{text}` should contain `{expected}`"
    );
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(text.contains(&*name), "`{text}` should name `{name}`");
}

fn open_and_read(path: &Path) -> Result<(), MediaError> {
    let mut r = VideoReader::open(path, &ReaderOptions::default())?;
    while r.next_frame()?.is_some() {}
    Ok(())
}

fn open_audio(path: &Path) -> Result<(), MediaError> {
    read_audio(path).map(|_| ())
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    check_error(&p("missing.y4m"), open_and_read, "file not found");
    check_error(&p("missing.wav"), open_audio, "file not found");

    std::fs::write(p("garbage.y4m"), b"this is not a video\n").unwrap();
    check_error(
        &p("garbage.y4m"),
        open_and_read,
        "missing the YUV4MPEG2 signature",
    );
    // Found by `fuzz/run y4m`: a header token starting with a multi-byte character (here
    // invalid UTF-8, read as U+FFFD) made the reader panic.
    std::fs::write(p("fuzz-tag.y4m"), b"YUV4MPEG2 \xf44 H4 F25:1\nFRAME\n").unwrap();
    check_error(&p("fuzz-tag.y4m"), open_and_read, "lacks a valid width");
    std::fs::write(p("nosize.y4m"), b"YUV4MPEG2 F25:1\nFRAME\n").unwrap();
    check_error(&p("nosize.y4m"), open_and_read, "lacks a valid width");
    std::fs::write(p("c422.y4m"), b"YUV4MPEG2 W2 H2 C422\n").unwrap();
    check_error(
        &p("c422.y4m"),
        open_and_read,
        "unsupported colour space C422",
    );
    std::fs::write(p("empty.y4m"), b"YUV4MPEG2 W2 H2 F25:1 C444\n").unwrap();
    check_error(&p("empty.y4m"), open_and_read, "the video has no frames");
    let mut truncated = b"YUV4MPEG2 W2 H2 F25:1 C444\nFRAME\n".to_vec();
    truncated.extend([0; 12]);
    truncated.extend(b"FRAME\n\x01\x02");
    std::fs::write(p("truncated.y4m"), &truncated).unwrap();
    check_error(&p("truncated.y4m"), open_and_read, "frame 1 is truncated");
    std::fs::write(
        p("nomarker.y4m"),
        b"YUV4MPEG2 W1 H1 F25:1 C444\nFRAMX\n\x00\x00\x00",
    )
    .unwrap();
    check_error(
        &p("nomarker.y4m"),
        open_and_read,
        "frame 0: expected a FRAME marker",
    );

    std::fs::create_dir(p("nopngs")).unwrap();
    check_error(&p("nopngs"), open_and_read, "the video has no frames");
    std::fs::create_dir(p("mixed")).unwrap();
    write_video(&p("mixed/a"), &[smooth(8, 8, 0)], &WriterOptions::default());
    std::fs::rename(p("mixed/a/frame_000000.png"), p("mixed/000.png")).unwrap();
    write_video(&p("mixed/b"), &[smooth(9, 8, 0)], &WriterOptions::default());
    std::fs::rename(p("mixed/b/frame_000000.png"), p("mixed/001.png")).unwrap();
    let err = open_and_read(&p("mixed")).unwrap_err().to_string();
    assert!(
        err.contains("001.png") && err.contains("9x8") && err.contains("expected 8x8"),
        "{err}"
    );

    write_wav(&p("full.wav"), spec(1, 16_000, 16, false), &[0i16; 1000]);
    let bytes = std::fs::read(p("full.wav")).unwrap();
    std::fs::write(p("cut.wav"), &bytes[..bytes.len() - 999]).unwrap();
    check_error(&p("cut.wav"), open_audio, "truncated");
    std::fs::write(p("noise.wav"), b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    check_error(&p("noise.wav"), open_audio, "bad WAV");
    write_wav::<i16>(&p("silent.wav"), spec(1, 16_000, 16, false), &[]);
    check_error(&p("silent.wav"), open_audio, "the audio has no samples");
}

// A finding of `fuzz/run` (the input that crashed a target), kept by test-kit.
use test_kit::fuzz_finding as finding;

/// A PNG file whose `IHDR` declares `w`×`h` RGB8, with an `IDAT` but no pixels in it.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    // The start of a zlib stream: the decoder reads the header up to the first IDAT.
    writer.write_chunk(png::chunk::IDAT, &[0x78, 0x9c]).unwrap();
    drop(writer);
    bytes
}

#[test]
fn frame_sizes_over_the_limit_are_refused_before_allocating() {
    assert_eq!(MAX_FRAME_SIDE, 16_384);
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    // Found by `fuzz/run y4m` (test-kit's findings/y4m-huge-frame): a header declaring a
    // 233332x1101457 frame aborted the process allocating its frame buffer.
    std::fs::write(p("huge-frame.y4m"), finding("y4m-huge-frame")).unwrap();
    check_error(
        &p("huge-frame.y4m"),
        open_and_read,
        "frame 233332x1101457 is larger than the 16384x16384 limit",
    );
    let err = VideoReader::open(&p("huge-frame.y4m"), &ReaderOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::FrameTooLarge {
                width: 233_332,
                height: 1_101_457,
                limit: 16_384,
                ..
            }
        ),
        "{err:?}"
    );
    // The largest u32 sizes (their product overflowed the frame-size arithmetic).
    std::fs::write(
        p("max.y4m"),
        b"YUV4MPEG2 W4294967295 H4294967295 F25:1 C444\nFRAME\n",
    )
    .unwrap();
    check_error(
        &p("max.y4m"),
        open_and_read,
        "frame 4294967295x4294967295 is larger than the 16384x16384 limit",
    );
    // One pixel over on one side is refused; 8K (8192x4320) is read (here: to its truncation).
    std::fs::write(p("wide.y4m"), b"YUV4MPEG2 W16385 H2 F25:1\nFRAME\n").unwrap();
    check_error(
        &p("wide.y4m"),
        open_and_read,
        "frame 16385x2 is larger than the 16384x16384 limit",
    );
    std::fs::write(p("8k.y4m"), b"YUV4MPEG2 W8192 H4320 F25:1\nFRAME\n\x10").unwrap();
    check_error(&p("8k.y4m"), open_and_read, "frame 0 is truncated");

    // A PNG folder whose first file declares 100000x100000 (30 GB of RGB): refused when the
    // folder is opened, and a later frame that declares it is refused before decoding.
    std::fs::create_dir(p("huge-png")).unwrap();
    std::fs::write(p("huge-png/0001.png"), png_header_only(100_000, 100_000)).unwrap();
    let err = open_and_read(&p("huge-png")).unwrap_err().to_string();
    assert!(
        err.contains("0001.png")
            && err.contains("frame 100000x100000 is larger than the 16384x16384 limit"),
        "{err}"
    );
    std::fs::create_dir(p("huge-second")).unwrap();
    write_video(
        &p("huge-second/a"),
        &[smooth(8, 8, 0)],
        &WriterOptions::default(),
    );
    std::fs::rename(
        p("huge-second/a/frame_000000.png"),
        p("huge-second/0001.png"),
    )
    .unwrap();
    std::fs::write(p("huge-second/0002.png"), png_header_only(8, 100_000)).unwrap();
    let err = open_and_read(&p("huge-second")).unwrap_err().to_string();
    assert!(
        err.contains("0002.png")
            && err.contains("frame 8x100000 is larger than the 16384x16384 limit"),
        "{err}"
    );
}

#[test]
fn wav_with_many_channels_reads_in_bounded_blocks() {
    // `read_audio` once sized its block as 16384 frames × the header's channel count (up to
    // 65535: 4 GiB of f32). Blocks are now about 64 Ki samples, and many channels still read.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.wav");
    let channels = 1000u16;
    let samples: Vec<i16> = (0..3 * i32::from(channels))
        .map(|i| (i * 7) as i16)
        .collect();
    write_wav(&path, spec(channels, 8_000, 16, false), &samples);
    let audio = read_audio(&path).unwrap();
    assert_eq!(audio.channels, channels);
    assert_eq!(audio.samples.len(), samples.len());
    assert_eq!(audio.samples[1], 7.0 / 32768.0);
}

#[test]
fn unfinished_writers_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.y4m", "frames", "c.mp4"] {
        if name.ends_with("mp4") {
            require_ffmpeg();
        }
        let mut w = VideoWriter::create(
            &dir.path().join(name),
            &info(16, 16),
            &WriterOptions::default(),
        )
        .unwrap();
        w.write_frame(&smooth(16, 16, 0)).unwrap();
        drop(w);
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // A frame of the wrong size is refused.
    let mut w = VideoWriter::create(
        &dir.path().join("d.y4m"),
        &info(16, 16),
        &WriterOptions::default(),
    )
    .unwrap();
    let err = w.write_frame(&smooth(8, 8, 0)).unwrap_err().to_string();
    assert!(
        err.contains("cannot write a 8x8 frame into a 16x16 video"),
        "{err}"
    );
}

fn require_ffmpeg() {
    let ok = |p: &str| {
        std::process::Command::new(p)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        ok("ffmpeg") && ok("ffprobe"),
        "these tests need ffmpeg and ffprobe on PATH: run `cargo xtask test` (installs them as root \
         on Debian/Ubuntu) or `sudo apt-get install ffmpeg`"
    );
}

#[test]
fn ffmpeg_mp4_with_audio_round_trip() {
    require_ffmpeg();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    let tone: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
        .collect();
    write_wav(&wav, spec(1, 16_000, 16, false), &tone);
    let frames: Vec<Frame> = (0..10).map(|t| smooth(64, 48, t)).collect();
    let mut writer = VideoWriter::create(
        &dir.path().join("out.mp4"),
        &VideoInfo {
            fps: Rational::new(25, 1),
            ..info(64, 48)
        },
        &WriterOptions {
            audio: Some(wav.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    for f in &frames {
        writer.write_frame(f).unwrap();
    }
    let out = writer.finish().unwrap();
    let (got_info, got) = read_all(&out);
    assert_eq!((got_info.width, got_info.height), (64, 48));
    assert_eq!(got_info.fps, Rational::new(25, 1));
    assert_eq!(got.len(), 10);
    for (a, b) in frames.iter().zip(&got) {
        let (_, mean) = diff(a, b);
        assert!(mean < 4.0, "H.264 (crf 18) mean error {mean} ≥ 4");
    }
    // The audio track is there and reads back through ffmpeg (AAC, cut to the video's 0.4 s).
    let audio = read_audio(&out).unwrap();
    assert_eq!((audio.channels, audio.sample_rate), (1, 16_000));
    assert!(
        (audio.duration_secs() - 0.4).abs() < 0.1,
        "{}",
        audio.duration_secs()
    );
    // And a non-WAV audio input goes through ffmpeg too.
    let err = read_audio(&dir.path().join("none.mp3"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("none.mp3: file not found"), "{err}");
    // Streamed in blocks of 7 frames, the ffmpeg audio is the same as read whole.
    assert_eq!(read_in_blocks(&out, 7), audio.samples);
}

/// All samples of `path` through an [`AudioReader`] reading `frames` frames at a time.
fn read_in_blocks(path: &Path, frames: usize) -> Vec<f32> {
    let mut reader = AudioReader::open(path).unwrap();
    let mut block = vec![0.0; frames * usize::from(reader.channels())];
    let mut all = Vec::new();
    loop {
        let n = reader.read(&mut block).unwrap();
        assert_eq!(n % usize::from(reader.channels()), 0, "whole frames only");
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&block[..n]);
    }
}

#[test]
fn audio_streams_in_blocks_like_a_whole_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    let samples: Vec<i16> = (0..2 * 1000)
        .map(|i| (i * 37 % 65_536 - 32_768) as i16)
        .collect();
    write_wav(&path, spec(2, 48_000, 16, false), &samples);
    let whole = read_audio(&path).unwrap().samples;
    assert_eq!(whole.len(), 2000);
    for frames in [1, 7, 1000, 4096] {
        assert_eq!(read_in_blocks(&path, frames), whole, "blocks of {frames}");
    }
    // A block smaller than one frame reads nothing, and is not mistaken for the end.
    let mut reader = AudioReader::open(&path).unwrap();
    assert_eq!(reader.read(&mut [0.0; 1]).unwrap(), 0);
    // Truncated: the error comes with the read that reaches the cut.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(dir.path().join("cut.wav"), &bytes[..bytes.len() - 400]).unwrap();
    let mut reader = AudioReader::open(&dir.path().join("cut.wav")).unwrap();
    let mut block = vec![0.0; 2 * 256];
    let mut read = 0;
    let err = loop {
        match reader.read(&mut block) {
            Ok(0) => panic!("a truncated file must not end cleanly"),
            Ok(n) => read += n,
            Err(e) => break e.to_string(),
        }
    };
    assert!(err.contains("cut.wav: bad WAV: truncated"), "{err}");
    assert_eq!(
        read,
        2 * 256 * 3,
        "the whole blocks before the cut were returned"
    );
}
