//! `nitrate`: parse the command line, run, print the error chain, exit with a meaningful code:
//! 0 success, 1 failure, 2 usage error, 130 interrupted by Ctrl-C.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    nitrate::memory::keep_freed_memory();
    let cli = nitrate::cli::Cli::parse();
    match nitrate::app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if err
                .downcast_ref::<nitrate::pipeline::cancel::Interrupted>()
                .is_some()
            {
                eprintln!("nitrate: {err}");
                return ExitCode::from(130);
            }
            eprintln!("nitrate: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}
