//! `facesync`: see the library part (`lib.rs`) for the commands; `facesync --help` lists them.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    facesync::main_with_args(std::env::args_os(), &facesync::Defaults::default())
}
