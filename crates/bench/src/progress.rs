//! `cargo xtask bench progress`: the cost of a progress update on the compute thread, measured
//! side by side in one run, and the producer's slowdown with a sink that blocks.
//!
//! - `inc_vs_atomic` = ns per `Phase::inc(1)` ÷ ns per `AtomicU64::fetch_add(1, Relaxed)`;
//! - `inc_vs_indicatif` = ns per indicatif `ProgressBar::inc(1)` (hidden target) ÷ ns per `Phase::inc(1)`;
//! - `two_threads_local_vs_shared` = ns per update when two threads advance one phase, each with
//!   `Phase::inc` on the phase's shared counter ÷ each with its own `Phase::local()` counter
//!   (wall time of the two threads ÷ updates in all); indicatif's `inc` on one bar shared by
//!   two threads is printed beside them (`two_threads_indicatif_vs_local`);
//! - `blocked_sink_slowdown` = time of a producer loop (real arithmetic, an `inc` per item, a
//!   face-status event every 10,000 items, about every 25 µs) with a sink that sleeps 1 s per
//!   event ÷ the same loop with no sink. The loop is sized so that it lasts at least 2 s
//!   without a sink (a 50 ms loop cannot tell a 2 % slowdown from noise); the two runs
//!   alternate (no sink, blocked, no sink, blocked, …) and the median of the per-pair ratios
//!   over [`PAIRS`] pairs is printed, with the smallest and largest pair beside it.
//!
//! Each contender runs in rounds that alternate, and the median round counts, so that a noisy
//! neighbour on the machine hits all of them alike.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use face_proc::{FaceAction, FaceStatus};
use progress_core::{Control, Event, Progress};

const ROUNDS: usize = 9;
const INCS: u64 = 20_000_000;
/// Items in the calibration run of the producer loop (scaled up to [`MIN_LOOP`]).
const WORK: u64 = 20_000_000;
/// The shortest producer loop timed for `blocked_sink_slowdown`.
const MIN_LOOP: Duration = Duration::from_secs(2);
/// Alternating (no sink, blocked sink) pairs for `blocked_sink_slowdown`.
const PAIRS: usize = 5;
/// Items per simulated frame: one face-status event each (about 25 µs of work here).
const FRAME: u64 = 10_000;

pub(crate) fn run(_args: &[String]) -> Result<()> {
    let progress = Progress::new();
    let phase = progress.phase("bench", None, "items");
    let atomic = AtomicU64::new(0);
    let bar = indicatif::ProgressBar::hidden();

    let mut ours = Vec::new();
    let mut floor = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..ROUNDS {
        ours.push(ns_per(INCS, || black_box(&phase).inc(1)));
        floor.push(ns_per(INCS, || {
            black_box(&atomic).fetch_add(1, Ordering::Relaxed);
        }));
        theirs.push(ns_per(INCS / 10, || black_box(&bar).inc(1)));
    }
    let (ours, floor, theirs) = (median(ours), median(floor), median(theirs));
    println!("inc: progress-core {ours:.2} ns, atomic {floor:.2} ns, indicatif {theirs:.2} ns");

    let mut shared = Vec::new();
    let mut local = Vec::new();
    let mut theirs2 = Vec::new();
    for _ in 0..ROUNDS {
        shared.push(two_threads(INCS, |n| {
            let phase = &phase;
            move || {
                for _ in 0..n {
                    black_box(phase).inc(1);
                }
            }
        }));
        local.push(two_threads(INCS, |n| {
            let counter = phase.local();
            move || {
                for _ in 0..n {
                    black_box(&counter).inc(1);
                }
            }
        }));
        theirs2.push(two_threads(INCS / 10, |n| {
            let bar = &bar;
            move || {
                for _ in 0..n {
                    black_box(bar).inc(1);
                }
            }
        }));
    }
    let (shared, local, theirs2) = (median(shared), median(local), median(theirs2));
    println!(
        "2 threads on one phase: shared inc {shared:.2} ns, local counters {local:.2} ns, \
         indicatif {theirs2:.2} ns (per update, wall time)"
    );

    // Size the loop so that the run without a sink lasts at least MIN_LOOP.
    let calibration = producer(None, WORK);
    let scale = (MIN_LOOP.as_secs_f64() * 1e3 * 1.1 / calibration)
        .ceil()
        .max(1.0);
    let work = (WORK as f64 * scale) as u64;
    let mut pairs = Vec::new();
    let mut free = Vec::new();
    for _ in 0..PAIRS {
        let a = producer(None, work);
        let b = producer(Some(Duration::from_secs(1)), work);
        free.push(a);
        pairs.push(b / a);
    }
    let (free_ms, slowdown) = (median(free), median(pairs.clone()));
    let (lo, hi) = pairs.iter().fold((f64::INFINITY, 0f64), |(lo, hi), r| {
        (lo.min(*r), hi.max(*r))
    });
    println!(
        "producer loop of {work} items: no sink {free_ms:.0} ms (median); sink blocking 1 s/event \
         slows it {slowdown:.3}x (median of {PAIRS} alternating pairs, range {lo:.3}..{hi:.3})"
    );
    drop(phase);
    progress.shutdown();

    println!(
        "progress-bench: inc_vs_atomic={:.2} inc_vs_indicatif={:.1} \
         two_threads_local_vs_shared={:.1} two_threads_indicatif_vs_local={:.1} \
         blocked_sink_slowdown={:.3}",
        ours / floor,
        theirs / ours,
        shared / local,
        theirs2 / local,
        slowdown
    );
    Ok(())
}

fn ns_per(n: u64, f: impl Fn()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Wall-clock ns per update when two threads each run `make(n / 2)`'s loop at once.
fn two_threads<F: FnOnce() + Send>(n: u64, make: impl Fn(u64) -> F) -> f64 {
    let (a, b) = (make(n / 2), make(n / 2));
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(a);
        s.spawn(b);
    });
    start.elapsed().as_nanos() as f64 / n as f64
}

/// The producer's time in ms for `work` items. The run (and its sink threads) is started
/// before and shut down after the timed part: only the work is timed.
fn producer(sink_delay: Option<Duration>, work: u64) -> f64 {
    let mut builder = Progress::builder();
    if let Some(delay) = sink_delay {
        builder = builder.sink(move |_: &Event| {
            std::thread::sleep(delay);
            Control::Continue
        });
    }
    let progress = builder.start();
    let phase = progress.phase("work", Some(work), "items");
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..work {
        acc = acc
            .wrapping_mul(6364136223846793005)
            .wrapping_add(black_box(i));
        phase.inc(1);
        if i % FRAME == 0 {
            phase.record(&FaceStatus {
                frame: i,
                faces: 1,
                action: FaceAction::Aligned,
                mouth_open: None,
                presence: None,
                reason: None,
            });
        }
    }
    black_box(acc);
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    phase.finish();
    // Do not wait for a sink that sleeps a second per event: cancel its backlog by dropping
    // the run on another thread (Drop joins it there).
    std::thread::spawn(move || drop(progress));
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
