//! The hot path side by side: `Phase::inc`, the raw atomic floor, and indicatif's `inc`
//! (hidden draw target), on one thread and on two threads sharing one phase (there also
//! `Phase::local` counters, one per thread).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use progress_core::Progress;

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("inc/1-thread");
    let progress = Progress::new();
    let phase = progress.phase("bench", None, "items");
    group.bench_function("progress-core", |b| b.iter(|| black_box(&phase).inc(1)));
    let atomic = AtomicU64::new(0);
    group.bench_function("atomic", |b| {
        b.iter(|| black_box(&atomic).fetch_add(1, Ordering::Relaxed))
    });
    let bar = indicatif::ProgressBar::hidden();
    group.bench_function("indicatif", |b| b.iter(|| black_box(&bar).inc(1)));
    group.finish();
}

/// Total time for `iters` increments split over two threads on one counter.
fn on_two_threads(iters: u64, inc: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters / 2 {
                    inc();
                }
            });
        }
    });
    start.elapsed()
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("inc/2-threads");
    let progress = Progress::new();
    let phase = progress.phase("bench", None, "items");
    group.bench_function("progress-core", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || black_box(&phase).inc(1)))
    });
    group.bench_function("progress-core-local", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    // One `LocalCounter` per thread, moved in (it is `Send`, not `Sync`).
                    let counter = phase.local();
                    s.spawn(move || {
                        for _ in 0..iters / 2 {
                            black_box(&counter).inc(1);
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    let atomic = AtomicU64::new(0);
    group.bench_function("atomic", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, || {
                black_box(&atomic).fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    let bar = indicatif::ProgressBar::hidden();
    group.bench_function("indicatif", |b| {
        b.iter_custom(|iters| on_two_threads(iters, || black_box(&bar).inc(1)))
    });
    group.finish();
}

criterion_group!(benches, one_thread, two_threads);
criterion_main!(benches);
