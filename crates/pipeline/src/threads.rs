//! The stage threads' plumbing: the loop each middle stage runs, the encoder's loop, and how
//! their endings combine into the run's one error.

use std::sync::mpsc::{Receiver, SyncSender};

use frame::Frame;
use media_io::MediaError;
use progress_core::Phase;

use crate::{Chunk, ENCODING, FrameSink, PipelineError};

/// How a stage thread ended, other than normally.
#[derive(Debug)]
pub(crate) enum Exit {
    /// The neighbouring stage went away (it failed or was cancelled): not a cause in itself.
    Disconnected,
    Error(PipelineError),
}

impl From<PipelineError> for Exit {
    fn from(e: PipelineError) -> Self {
        Exit::Error(e)
    }
}

impl From<MediaError> for Exit {
    fn from(e: MediaError) -> Self {
        Exit::Error(e.into())
    }
}

pub(crate) fn panicked() -> Exit {
    Exit::Error(PipelineError::Stage {
        stage: "pipeline".into(),
        message: "a stage thread panicked".into(),
    })
}

pub(crate) fn cancelled(phase: &Phase, name: &str) -> Result<(), Exit> {
    phase.check().map_err(|_| {
        Exit::Error(PipelineError::Cancelled {
            phase: name.to_string(),
        })
    })
}

/// The root cause among the stages' results: cancellation first, then the earliest stage's
/// error. Marks failed phases.
pub(crate) fn pick_error(
    results: Vec<Result<u64, Exit>>,
    phases: &[Phase],
    parent: &Phase,
) -> Result<Vec<u64>, PipelineError> {
    let mut cancelled_in = None;
    for (result, phase) in results.iter().zip(phases) {
        if let Err(Exit::Error(e)) = result {
            phase.fail(e);
            if let (PipelineError::Cancelled { phase }, None) = (e, &cancelled_in) {
                cancelled_in = Some(phase.clone());
            }
        }
    }
    if parent.cancel_token().is_cancelled() {
        return Err(PipelineError::Cancelled {
            phase: cancelled_in.unwrap_or_else(|| "the run".into()),
        });
    }
    let mut counts = Vec::with_capacity(results.len());
    let mut disconnected = false;
    for result in results {
        match result {
            Ok(n) => counts.push(n),
            Err(Exit::Error(e)) => return Err(e),
            Err(Exit::Disconnected) => disconnected = true,
        }
    }
    if disconnected {
        return Err(PipelineError::Stage {
            stage: "pipeline".into(),
            message: "a stage stopped without an error".into(),
        });
    }
    Ok(counts)
}

/// Receives chunks, runs `work` on each, passes them on; cancel check between chunks.
pub(crate) fn stage_loop(
    name: &str,
    phase: &Phase,
    rx: Receiver<Chunk>,
    tx: SyncSender<Chunk>,
    mut work: impl FnMut(&mut Chunk, &Phase) -> Result<(), PipelineError>,
) -> Result<u64, Exit> {
    let mut n = 0;
    for mut chunk in rx {
        cancelled(phase, name)?;
        work(&mut chunk, phase)?;
        n += chunk.frames.len() as u64;
        tx.send(chunk).map_err(|_| Exit::Disconnected)?;
    }
    if n < phase.total().unwrap_or(0) && phase.cancel_token().is_cancelled() {
        return Err(Exit::Error(PipelineError::Cancelled { phase: name.into() }));
    }
    phase.set_total(Some(n));
    phase.finish();
    Ok(n)
}

/// Writes every chunk; returns the frame count and the sink, not yet finished (see
/// `run_with`). Written frames go back to the decoder through `spare` when it has room.
pub(crate) fn encode<'a>(
    phase: &Phase,
    rx: Receiver<Chunk>,
    mut sink: Box<dyn FrameSink + 'a>,
    spare: SyncSender<Vec<Frame>>,
) -> Result<(u64, Box<dyn FrameSink + 'a>), Exit> {
    let mut n = 0;
    for chunk in rx {
        for frame in &chunk.frames {
            // Before each frame: a sink may wait for its encoder (a pipe to ffmpeg that is
            // full), and a chunk's frames are written one by one.
            cancelled(phase, ENCODING)?;
            sink.write_frame(frame)?;
        }
        n += chunk.frames.len() as u64;
        phase.inc(chunk.frames.len() as u64);
        let _ = spare.try_send(chunk.frames);
    }
    let expected = phase.total().unwrap_or(0);
    if n == 0 || (n < expected && phase.cancel_token().is_cancelled()) {
        // Upstream stopped early; the sink is dropped unfinished (a file's temporary output
        // is removed).
        return Err(Exit::Disconnected);
    }
    cancelled(phase, ENCODING)?;
    Ok((n, sink))
}
