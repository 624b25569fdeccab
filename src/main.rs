//! The `listenkeyd` binary: everything lives in the library; see its `cli` module.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    listenkeyd::__cli::main()
}
