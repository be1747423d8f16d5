//! YUV4MPEG2 (Y4M) reading and writing, with BT.601 YCbCr ↔ RGB conversion.
//!
//! The reader refuses a header whose `W` or `H` exceeds [`crate::MAX_FRAME_SIDE`] (16384, which covers
//! 8K video) before allocating its frame buffer (found by `fuzz/run y4m`: a huge `H` aborted
//! the process on allocation).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use frame::Frame;

use crate::temp::TempOutput;
use crate::{MediaError, Rational, VideoInfo, Y4mChroma, check_frame_size};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chroma {
    Mono,
    C420,
    C444,
}

impl Chroma {
    fn frame_bytes(self, w: usize, h: usize) -> usize {
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match self {
            Chroma::Mono => w * h,
            Chroma::C420 => w * h + 2 * cw * ch,
            Chroma::C444 => 3 * w * h,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Y4mReader {
    path: PathBuf,
    file: BufReader<File>,
    info: VideoInfo,
    chroma: Chroma,
    full_range: bool,
    index: u64,
    buf: Vec<u8>,
}

fn corrupt(path: &Path, reason: impl Into<String>) -> MediaError {
    MediaError::CorruptY4m {
        path: path.into(),
        reason: reason.into(),
    }
}

/// Reads up to and including `\n`, at most `limit` bytes. `Ok(None)` at a clean end of file.
fn read_line(r: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    r.by_ref().take(limit as u64).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    Ok(Some(line))
}

impl Y4mReader {
    pub(crate) fn open(path: &Path) -> Result<Self, MediaError> {
        let f = File::open(path).map_err(|e| MediaError::io(path, e))?;
        let file_len = f.metadata().map_err(|e| MediaError::io(path, e))?.len();
        let mut file = BufReader::with_capacity(1 << 20, f);
        let line = read_line(&mut file, 4096)
            .map_err(|e| MediaError::io(path, e))?
            .ok_or_else(|| corrupt(path, "the file is empty"))?;
        if line.last() != Some(&b'\n') {
            return Err(corrupt(
                path,
                "the stream header is not terminated by a newline",
            ));
        }
        let header_len = line.len() as u64;
        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
        let mut tokens = text.split(' ').filter(|t| !t.is_empty());
        if tokens.next() != Some("YUV4MPEG2") {
            return Err(corrupt(path, "missing the YUV4MPEG2 signature"));
        }
        let (mut width, mut height, mut fps) = (None, None, None);
        let mut chroma = Chroma::C420;
        let mut full_range = false;
        for token in tokens {
            // The tag is the first character, which need not be ASCII (found by fuzzing:
            // `split_at(1)` panicked inside a multi-byte one).
            let first = token.chars().next().map_or(0, char::len_utf8);
            let (tag, value) = token.split_at(first);
            match tag {
                "W" => width = value.parse::<u32>().ok().filter(|&w| w > 0),
                "H" => height = value.parse::<u32>().ok().filter(|&h| h > 0),
                "F" => {
                    fps = value.split_once(':').and_then(|(n, d)| {
                        let (n, d) = (n.parse::<u32>().ok()?, d.parse::<u32>().ok()?);
                        (n > 0 && d > 0).then_some(Rational::new(n, d))
                    });
                    if fps.is_none() {
                        return Err(corrupt(path, format!("bad frame rate `{token}`")));
                    }
                }
                "C" => {
                    chroma = match value {
                        "420jpeg" | "420" | "420mpeg2" | "420paldv" => Chroma::C420,
                        "444" => Chroma::C444,
                        "mono" => Chroma::Mono,
                        other => {
                            return Err(corrupt(
                                path,
                                format!(
                                    "unsupported colour space C{other} (supported: 420jpeg, 420, 420mpeg2, 420paldv, 444, mono)"
                                ),
                            ));
                        }
                    }
                }
                "X" if value.eq_ignore_ascii_case("COLORRANGE=FULL") => full_range = true,
                _ => {} // I (interlacing), A (aspect), unknown tags: ignored
            }
        }
        let (Some(width), Some(height)) = (width, height) else {
            return Err(corrupt(
                path,
                "the header lacks a valid width (W) or height (H)",
            ));
        };
        // Before sizing anything from the header: `W`/`H` are untrusted (up to u32::MAX each).
        check_frame_size(path, width, height)?;
        let fps = fps.unwrap_or(Rational::new(25, 1));
        let frame_bytes = chroma.frame_bytes(width as usize, height as usize);
        let body = file_len.saturating_sub(header_len);
        if body == 0 {
            return Err(MediaError::NoFrames { path: path.into() });
        }
        // Exact when every frame header is a bare `FRAME\n` (what nearly every tool writes).
        let per_frame = 6 + frame_bytes as u64;
        let frame_count = (body % per_frame == 0).then_some(body / per_frame);
        Ok(Self {
            path: path.into(),
            file,
            info: VideoInfo {
                width,
                height,
                fps,
                frame_count,
            },
            chroma,
            full_range,
            index: 0,
            buf: vec![0; frame_bytes],
        })
    }

    pub(crate) fn info(&self) -> &VideoInfo {
        &self.info
    }

    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, MediaError> {
        let path = &self.path;
        let index = self.index;
        let Some(line) = read_line(&mut self.file, 1024).map_err(|e| MediaError::io(path, e))?
        else {
            return Ok(None);
        };
        if !line.starts_with(b"FRAME") || line.last() != Some(&b'\n') {
            return Err(corrupt(
                path,
                format!("frame {index}: expected a FRAME marker"),
            ));
        }
        if let Err(e) = self.file.read_exact(&mut self.buf) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Err(corrupt(path, format!("frame {index} is truncated")));
            }
            return Err(MediaError::io(path, e));
        }
        self.index += 1;
        let (w, h) = (self.info.width as usize, self.info.height as usize);
        let rgb = yuv_to_rgb(&self.buf, w, h, self.chroma, self.full_range);
        Ok(Some(
            Frame::new(self.info.width, self.info.height, rgb).expect("size checked"),
        ))
    }
}

/// BT.601 YCbCr (full or limited range) to RGB8.
fn yuv_to_rgb(buf: &[u8], w: usize, h: usize, chroma: Chroma, full: bool) -> Vec<u8> {
    let (ys, ymul, cmul) = if full {
        (0.0f32, 1.0f32, 1.0f32)
    } else {
        (16.0, 255.0 / 219.0, 255.0 / 224.0)
    };
    let luma = &buf[..w * h];
    let mut out = vec![0u8; w * h * 3];
    let (cb, cr) = match chroma {
        Chroma::Mono => (None, None),
        Chroma::C444 => (
            Some(buf[w * h..2 * w * h].to_vec()),
            Some(buf[2 * w * h..].to_vec()),
        ),
        Chroma::C420 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let plane = cw * ch;
            let u = &buf[w * h..w * h + plane];
            let v = &buf[w * h + plane..w * h + 2 * plane];
            (
                Some(upsample(u, cw, ch, w, h)),
                Some(upsample(v, cw, ch, w, h)),
            )
        }
    };
    for i in 0..w * h {
        let y = (f32::from(luma[i]) - ys) * ymul;
        let (u, v) = match (&cb, &cr) {
            (Some(cb), Some(cr)) => (
                (f32::from(cb[i]) - 128.0) * cmul,
                (f32::from(cr[i]) - 128.0) * cmul,
            ),
            _ => (0.0, 0.0),
        };
        let px = &mut out[i * 3..i * 3 + 3];
        px[0] = to_u8(y + 1.402 * v);
        px[1] = to_u8(y - 0.344_136 * u - 0.714_136 * v);
        px[2] = to_u8(y + 1.772 * u);
    }
    out
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Bilinear 2× upsampling with centred chroma siting (chroma sample `i` sits at luma `2i + 0.5`).
fn upsample(plane: &[u8], cw: usize, ch: usize, w: usize, h: usize) -> Vec<u8> {
    let taps = |n: usize, limit: usize| -> Vec<(usize, usize, f32)> {
        (0..n)
            .map(|x| {
                let c = (x as f32 - 0.5) / 2.0;
                let f = c.floor();
                let t = c - f;
                let i0 = (f.max(0.0) as usize).min(limit - 1);
                let i1 = ((f + 1.0).max(0.0) as usize).min(limit - 1);
                (i0, i1, t)
            })
            .collect()
    };
    let xt = taps(w, cw);
    let yt = taps(h, ch);
    let mut out = vec![0u8; w * h];
    for (y, &(y0, y1, ty)) in yt.iter().enumerate() {
        let r0 = &plane[y0 * cw..(y0 + 1) * cw];
        let r1 = &plane[y1 * cw..(y1 + 1) * cw];
        for (x, &(x0, x1, tx)) in xt.iter().enumerate() {
            let top = f32::from(r0[x0]) * (1.0 - tx) + f32::from(r0[x1]) * tx;
            let bot = f32::from(r1[x0]) * (1.0 - tx) + f32::from(r1[x1]) * tx;
            out[y * w + x] = to_u8(top * (1.0 - ty) + bot * ty);
        }
    }
    out
}

/// RGB8 to full-range BT.601 planes (Y, Cb, Cr at full resolution).
fn rgb_to_yuv444(rgb: &[u8]) -> (Vec<u8>, Vec<f32>, Vec<f32>) {
    let n = rgb.len() / 3;
    let mut y = Vec::with_capacity(n);
    let mut cb = Vec::with_capacity(n);
    let mut cr = Vec::with_capacity(n);
    for px in rgb.chunks_exact(3) {
        let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
        y.push(to_u8(0.299 * r + 0.587 * g + 0.114 * b));
        cb.push(128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b);
        cr.push(128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b);
    }
    (y, cb, cr)
}

#[derive(Debug)]
pub(crate) struct Y4mWriter {
    out: TempOutput,
    file: BufWriter<File>,
    chroma: Y4mChroma,
    width: usize,
    height: usize,
}

impl Y4mWriter {
    pub(crate) fn create(
        path: &Path,
        info: &VideoInfo,
        chroma: Y4mChroma,
    ) -> Result<Self, MediaError> {
        let out = TempOutput::new(path)?;
        let f = File::create(out.path()).map_err(|e| MediaError::io(path, e))?;
        let mut file = BufWriter::with_capacity(1 << 20, f);
        let c = match chroma {
            Y4mChroma::C420 => "420jpeg",
            Y4mChroma::C444 => "444",
        };
        writeln!(
            file,
            "YUV4MPEG2 W{} H{} F{}:{} Ip A1:1 C{c} XCOLORRANGE=FULL",
            info.width, info.height, info.fps.num, info.fps.den
        )
        .map_err(|e| MediaError::io(path, e))?;
        Ok(Self {
            out,
            file,
            chroma,
            width: info.width as usize,
            height: info.height as usize,
        })
    }

    pub(crate) fn write_frame(&mut self, frame: &Frame) -> Result<(), MediaError> {
        let (y, cb, cr) = rgb_to_yuv444(frame.data());
        let mut bytes = Vec::with_capacity(6 + 3 * y.len());
        bytes.extend_from_slice(b"FRAME\n");
        bytes.extend_from_slice(&y);
        match self.chroma {
            Y4mChroma::C444 => {
                bytes.extend(cb.iter().map(|&v| to_u8(v)));
                bytes.extend(cr.iter().map(|&v| to_u8(v)));
            }
            Y4mChroma::C420 => {
                bytes.extend(downsample(&cb, self.width, self.height));
                bytes.extend(downsample(&cr, self.width, self.height));
            }
        }
        let dest = self.out.dest();
        self.file
            .write_all(&bytes)
            .map_err(|e| MediaError::io(dest, e))
    }

    pub(crate) fn finish(mut self) -> Result<(), MediaError> {
        let dest = self.out.dest().to_path_buf();
        self.file.flush().map_err(|e| MediaError::io(&dest, e))?;
        drop(self.file);
        self.out.commit()
    }
}

/// 2×2 box average (edge blocks average what exists).
fn downsample(plane: &[f32], w: usize, h: usize) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Vec::with_capacity(cw * ch);
    for cy in 0..ch {
        for cx in 0..cw {
            let (mut sum, mut n) = (0.0f32, 0.0f32);
            for y in 2 * cy..(2 * cy + 2).min(h) {
                for x in 2 * cx..(2 * cx + 2).min(w) {
                    sum += plane[y * w + x];
                    n += 1.0;
                }
            }
            out.push(to_u8(sum / n));
        }
    }
    out
}
