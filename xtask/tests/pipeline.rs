//! `cargo xtask pipeline` is `facesync run` (the same code); the queue commands left xtask.

use std::process::Command;

fn xtask(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pipeline_is_facesync_run() {
    let (code, stdout, _) = xtask(&["pipeline", "--help"]);
    assert_eq!(code, Some(0));
    for text in ["facesync run", "--video", "--sample-dir", "Examples:"] {
        assert!(stdout.contains(text), "`{text}` not in:\n{stdout}");
    }
    let (code, _, stderr) = xtask(&["pipeline", "--frobnicate"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("unexpected argument '--frobnicate'"),
        "{stderr}"
    );
}

#[test]
fn the_queue_commands_are_facesync_commands_now() {
    for command in ["worker", "submit", "watch", "cancel"] {
        let (code, _, stderr) = xtask(&[command]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("unknown command `{command}`")),
            "{stderr}"
        );
    }
}
