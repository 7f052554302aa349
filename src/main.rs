//! The `upshift` binary: parse, run, print the error chain, exit with a documented code.

fn main() -> std::process::ExitCode {
    upshift::cli::main()
}
