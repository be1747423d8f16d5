//! Creating and dropping dispatchers leaves no thread behind.
//!
//! Alone in its own test binary (so in its own process), because it counts the process's threads.

use std::time::{Duration, Instant};

use facesync_progress_core as progress_core;
use progress_core::{Control, Event, Progress};

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}

#[test]
fn a_thousand_dispatchers_leave_no_thread_behind() {
    let before = threads();
    for i in 0..1000 {
        let progress = Progress::builder()
            .sink(|_: &Event| Control::Continue)
            .sink(|_: &Event| Control::Continue)
            .start();
        let phase = progress.phase("work", Some(10), "items");
        phase.inc(10);
        if i % 2 == 0 {
            phase.finish();
            drop(progress); // Drop joins
        } else {
            progress.shutdown();
            drop(phase); // a handle outliving its run
        }
    }
    // Joined threads may take a moment to vanish from /proc.
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads(), before);
}
