//! Folders of PNG files as videos: one frame per file, in file-name order.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use frame::Frame;

use crate::temp::TempOutput;
use crate::{MediaError, Rational, VideoInfo, check_frame_size, has_extension};

#[derive(Debug)]
pub(crate) struct PngSeqReader {
    files: Vec<PathBuf>,
    next: usize,
    info: VideoInfo,
}

fn png_err(path: &Path, e: impl std::fmt::Display) -> MediaError {
    MediaError::Png {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// Decodes any PNG (grey, grey+alpha, RGB, RGBA, palette; 1–16 bits) to RGB8; alpha is dropped.
/// A PNG wider or taller than [`crate::MAX_FRAME_SIDE`] is refused before its pixel buffer is
/// allocated.
pub(crate) fn decode_png(path: &Path, bytes: Option<&[u8]>) -> Result<Frame, MediaError> {
    let reader: Box<dyn ReadSeek> = match bytes {
        Some(b) => Box::new(std::io::Cursor::new(b.to_vec())),
        None => Box::new(BufReader::new(
            File::open(path).map_err(|e| MediaError::io(path, e))?,
        )),
    };
    let mut decoder = png::Decoder::new(reader);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| png_err(path, e))?;
    let (width, height) = reader.info().size();
    check_frame_size(path, width, height)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| png_err(path, "image too large"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| png_err(path, e))?;
    buf.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(png_err(path, "palette was not expanded")),
    };
    let rgb: Vec<u8> = if channels == 3 {
        buf
    } else {
        buf.chunks_exact(channels)
            .flat_map(|px| match channels {
                1 | 2 => [px[0], px[0], px[0]],
                _ => [px[0], px[1], px[2]],
            })
            .collect()
    };
    Frame::new(info.width, info.height, rgb).map_err(|e| png_err(path, e))
}

trait ReadSeek: std::io::BufRead + std::io::Seek {}
impl<T: std::io::BufRead + std::io::Seek> ReadSeek for T {}

impl PngSeqReader {
    pub(crate) fn open(dir: &Path, fps: Rational) -> Result<Self, MediaError> {
        if fps.num == 0 || fps.den == 0 {
            return Err(MediaError::Invalid {
                path: dir.into(),
                reason: format!("frame rate {fps} is not usable"),
            });
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| MediaError::io(dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && has_extension(p, "png"))
            .collect();
        files.sort();
        let Some(first) = files.first() else {
            return Err(MediaError::NoFrames { path: dir.into() });
        };
        let (width, height) = png_size(first)?;
        Ok(Self {
            info: VideoInfo {
                width,
                height,
                fps,
                frame_count: Some(files.len() as u64),
            },
            files,
            next: 0,
        })
    }

    pub(crate) fn info(&self) -> &VideoInfo {
        &self.info
    }

    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, MediaError> {
        let Some(path) = self.files.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let frame = decode_png(path, None)?;
        if frame.width() != self.info.width || frame.height() != self.info.height {
            return Err(MediaError::SizeMismatch {
                path: path.clone(),
                width: self.info.width,
                height: self.info.height,
                actual_width: frame.width(),
                actual_height: frame.height(),
            });
        }
        Ok(Some(frame))
    }
}

fn png_size(path: &Path) -> Result<(u32, u32), MediaError> {
    let file = BufReader::new(File::open(path).map_err(|e| MediaError::io(path, e))?);
    let reader = png::Decoder::new(file)
        .read_info()
        .map_err(|e| png_err(path, e))?;
    let info = reader.info();
    check_frame_size(path, info.width, info.height)?;
    Ok((info.width, info.height))
}

/// Encodes RGB8 as a PNG file.
pub(crate) fn write_png(path: &Path, frame: &Frame) -> Result<(), MediaError> {
    let file = BufWriter::new(File::create(path).map_err(|e| MediaError::io(path, e))?);
    let mut encoder = png::Encoder::new(file, frame.width(), frame.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|e| png_err(path, e))?;
    writer
        .write_image_data(frame.data())
        .map_err(|e| png_err(path, e))?;
    writer.finish().map_err(|e| png_err(path, e))
}

#[derive(Debug)]
pub(crate) struct PngSeqWriter {
    out: TempOutput,
    index: u64,
}

impl PngSeqWriter {
    pub(crate) fn create(dir: &Path) -> Result<Self, MediaError> {
        let out = TempOutput::new(dir)?;
        std::fs::create_dir(out.path()).map_err(|e| MediaError::io(dir, e))?;
        Ok(Self { out, index: 0 })
    }

    pub(crate) fn write_frame(&mut self, frame: &Frame) -> Result<(), MediaError> {
        let path = self.out.path().join(format!("frame_{:06}.png", self.index));
        write_png(&path, frame)?;
        self.index += 1;
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<(), MediaError> {
        self.out.commit()
    }
}
