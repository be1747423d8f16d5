//! A scratch folder per fuzzing process for the readers that take paths (on /dev/shm when
//! there is one: no disk writes per input).

use std::path::PathBuf;
use std::sync::OnceLock;

pub fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("facesync-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot create the scratch folder");
        dir
    })
}
