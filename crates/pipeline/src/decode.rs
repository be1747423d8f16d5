//! The decoding stage: frames from the source into chunks, with the length policy (the
//! ping-pong loop spooled to an anonymous temporary file, not kept in memory).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender};

use frame::Frame;
use media_io::{MediaError, VideoInfo};
use progress_core::Phase;

use crate::threads::{Exit, cancelled};
use crate::{Chunk, DECODING, FrameSource, LengthPolicy, PipelineError, frames};

/// The decoding stage: reads frames, applies the length policy, sends chunks.
pub(crate) struct Decoder<'a> {
    pub(crate) source: &'a mut dyn FrameSource,
    pub(crate) name: String,
    pub(crate) info: VideoInfo,
    /// Frames the encoder is done with, to be filled again.
    pub(crate) spare: Receiver<Vec<Frame>>,
    pub(crate) planned: u64,
    pub(crate) policy: LengthPolicy,
    pub(crate) chunk: usize,
}

impl Decoder<'_> {
    /// A frame buffer of the video's size: a written one when the encoder sent some back.
    fn buffer(&self, spares: &mut Vec<Frame>) -> Frame {
        if spares.is_empty()
            && let Ok(more) = self.spare.try_recv()
        {
            *spares = more;
        }
        spares.pop().unwrap_or_else(|| {
            let len = self.info.width as usize * self.info.height as usize * 3;
            Frame::new(self.info.width, self.info.height, vec![0; len]).expect("non-empty size")
        })
    }

    /// Returns the number of frames decoded from the input.
    pub(crate) fn run(self, phase: &Phase, tx: SyncSender<Chunk>) -> Result<u64, Exit> {
        let info = self.info.clone();
        // Looping needs the frames again, backwards: keep them on disk, not in memory.
        let needs_spool =
            self.policy == LengthPolicy::Loop && info.frame_count.is_none_or(|n| n < self.planned);
        let spool_error = |e| Exit::Error(PipelineError::io(&std::env::temp_dir(), e));
        let mut spool = needs_spool
            .then(|| Spool::new(&info))
            .transpose()
            .map_err(spool_error)?;
        let no_frames = || {
            Exit::from(MediaError::NoFrames {
                path: PathBuf::from(&self.name),
            })
        };
        let mut spares = Vec::new();
        let mut decoded: u64 = 0;
        let mut source_done = false;
        let mut out_index: u64 = 0;
        let mut chunk = Vec::with_capacity(self.chunk);
        let mut chunk_start = 0;
        while out_index < self.planned {
            let mut frame = self.buffer(&mut spares);
            if !source_done && self.source.read_frame(&mut frame)? {
                if frame.width() != info.width || frame.height() != info.height {
                    return Err(frames::size_mismatch(self.name.clone(), &info, &frame).into());
                }
                decoded += 1;
                if let Some(s) = spool.as_mut() {
                    s.push(&frame).map_err(spool_error)?;
                }
            } else {
                if !source_done && decoded == 0 {
                    return Err(no_frames());
                }
                source_done = true;
                match spool.as_mut() {
                    Some(s) if self.policy == LengthPolicy::Loop => {
                        // Ping-pong: 0 1 … L-1 L-1 … 0 0 1 …
                        let l = decoded;
                        let k = out_index % (2 * l);
                        let src = if k < l { k } else { 2 * l - 1 - k };
                        s.get(src, &mut frame).map_err(spool_error)?;
                    }
                    _ => break, // trim: the video ended first
                }
            }
            chunk.push(frame);
            out_index += 1;
            phase.inc(1);
            if chunk.len() == self.chunk {
                cancelled(phase, DECODING)?;
                let frames = std::mem::replace(&mut chunk, Vec::with_capacity(self.chunk));
                tx.send(Chunk {
                    start: chunk_start,
                    frames,
                    faces: Vec::new(),
                })
                .map_err(|_| Exit::Disconnected)?;
                chunk_start = out_index;
            }
        }
        if !chunk.is_empty() {
            cancelled(phase, DECODING)?;
            tx.send(Chunk {
                start: chunk_start,
                frames: chunk,
                faces: Vec::new(),
            })
            .map_err(|_| Exit::Disconnected)?;
        }
        if out_index == 0 {
            return Err(no_frames());
        }
        phase.set_total(Some(out_index));
        phase.finish();
        Ok(decoded)
    }
}

/// Decoded frames kept in an anonymous temporary file for ping-pong looping.
pub(crate) struct Spool {
    file: File,
    width: u32,
    height: u32,
    count: u64,
}

impl Spool {
    fn new(info: &VideoInfo) -> std::io::Result<Self> {
        Ok(Self {
            file: tempfile_in_temp_dir()?,
            width: info.width,
            height: info.height,
            count: 0,
        })
    }

    fn frame_len(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * 3
    }

    fn push(&mut self, frame: &Frame) -> std::io::Result<()> {
        self.file
            .seek(SeekFrom::Start(self.count * self.frame_len()))?;
        self.file.write_all(frame.data())?;
        self.count += 1;
        Ok(())
    }

    /// Reads frame `index` into `frame` (the video's size).
    fn get(&mut self, index: u64, frame: &mut Frame) -> std::io::Result<()> {
        debug_assert_eq!((frame.width(), frame.height()), (self.width, self.height));
        self.file.seek(SeekFrom::Start(index * self.frame_len()))?;
        self.file.read_exact(frame.data_mut())
    }
}

/// A temporary file that is removed as soon as it is created (it lives while open).
fn tempfile_in_temp_dir() -> std::io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "facesync-spool-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}
