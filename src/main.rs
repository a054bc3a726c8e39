//! The `gatehouse` binary: parses the command line and maps outcomes to
//! exit statuses (0 success, 1 failure with one `error:` line, 2 bad usage).

fn main() {
    std::process::exit(gatehouse::cli::main());
}
