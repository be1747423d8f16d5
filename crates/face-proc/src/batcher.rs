//! Batches the inferences of several tracking workers into one GPU submission.
//!
//! Tracking is sequential within a run of frames (each frame starts from the previous face),
//! so the stage splits a batch into segments, one worker thread each, and runs them in
//! lockstep: every worker's BlazeFace talks to a [`Proxy`] back-end that sends its
//! preprocessed input here and waits; once every live worker has a request pending, [`serve`]
//! runs them all as one batch on the GPU and hands each its output. Workers keep the plain
//! sequential detection code (search, refinement passes, fallbacks), and the CPU-side work
//! (letterboxing, decoding) runs on the workers in parallel.

use std::sync::mpsc::{Receiver, Sender, channel};

use face_net::blazeface::{GpuBlazeFace, INPUT_LEN, RawOutput};

use crate::FaceError;
use crate::detect::BlazeFaceBackend;

type Reply = Sender<Result<Vec<RawOutput>, String>>;

pub(crate) enum Msg {
    /// A worker joined (a clone of a proxy).
    Join,
    /// One worker's inputs and where to send the outputs.
    Run(Vec<f32>, Reply),
    /// A worker finished (its proxy dropped).
    Done,
}

/// The back-end of one worker: forwards to [`serve`].
pub(crate) struct Proxy {
    tx: Sender<Msg>,
}

impl Proxy {
    /// `workers` proxies and the receiving end for [`serve`].
    pub(crate) fn group(workers: usize) -> (Vec<Proxy>, Receiver<Msg>) {
        let (tx, rx) = channel();
        let proxies = (0..workers).map(|_| Proxy { tx: tx.clone() }).collect();
        (proxies, rx)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The server may already be gone after an error; nothing to tell it then.
        let _ = self.tx.send(Msg::Done);
    }
}

impl BlazeFaceBackend for Proxy {
    fn run(&mut self, inputs: &[f32]) -> Result<Vec<RawOutput>, FaceError> {
        let (tx, rx) = channel();
        self.tx
            .send(Msg::Run(inputs.to_vec(), tx))
            .map_err(|_| FaceError::Gpu("blazeface batch server stopped".into()))?;
        rx.recv()
            .map_err(|_| FaceError::Gpu("blazeface batch server stopped".into()))?
            .map_err(FaceError::Gpu)
    }

    fn boxed_clone(&self) -> Box<dyn BlazeFaceBackend> {
        // Sent before this worker's own `Done`, so the server never sees zero live workers
        // while the clone exists.
        let _ = self.tx.send(Msg::Join);
        Box::new(Proxy {
            tx: self.tx.clone(),
        })
    }
}

/// Runs the requests of `workers` proxies in lockstep batches on `net` until every proxy is
/// dropped. Returns the number of GPU batches run. After a GPU error every pending and later
/// request gets the error.
pub(crate) fn serve(net: &mut GpuBlazeFace, rx: &Receiver<Msg>, workers: usize) -> usize {
    let mut live = workers;
    let mut pending: Vec<(Vec<f32>, Reply)> = Vec::with_capacity(workers);
    let mut failed: Option<String> = None;
    let mut batches = 0;
    while live > 0 {
        let Ok(msg) = rx.recv() else { break };
        match msg {
            Msg::Join => live += 1,
            Msg::Done => live -= 1,
            Msg::Run(input, reply) => pending.push((input, reply)),
        }
        if pending.is_empty() || pending.len() < live {
            continue;
        }
        if let Some(why) = &failed {
            for (_, reply) in pending.drain(..) {
                let _ = reply.send(Err(why.clone()));
            }
            continue;
        }
        let counts: Vec<usize> = pending.iter().map(|(v, _)| v.len() / INPUT_LEN).collect();
        let all: Vec<f32> = pending
            .iter()
            .flat_map(|(v, _)| v.iter().copied())
            .collect();
        batches += 1;
        match net.run_each(&all).map_err(FaceError::from) {
            Ok(outputs) => {
                let mut outputs = outputs.into_iter();
                for ((_, reply), n) in pending.drain(..).zip(counts) {
                    let _ = reply.send(Ok(outputs.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                let why = e.to_string();
                for (_, reply) in pending.drain(..) {
                    let _ = reply.send(Err(why.clone()));
                }
                failed = Some(why);
            }
        }
    }
    batches
}
