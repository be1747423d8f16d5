//! The job decoder a worker runs on every message of `facesync.jobs` (`queue::Job::decode`):
//! an accepted job has valid options (`RunOptions::validate`) and survives re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(job) = queue::Job::decode(data) {
        assert!(
            job.options.validate().is_ok(),
            "an accepted job has valid options"
        );
        let again = serde_json::to_vec(&job).expect("an accepted job serialises");
        let decoded = queue::Job::decode(&again).expect("a re-encoded job decodes");
        assert_eq!(decoded, job);
    }
});
