//! `neolight`: the command line. `neolight` alone is `neolight run`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use neolight::config::{Cli, Command, LogFormat};
use neolight::mesh;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn report_problems(problems: Vec<String>, command: &str) -> ExitCode {
    eprintln!("error: invalid configuration:");
    for problem in problems {
        eprintln!("  - {problem}");
    }
    eprintln!("See `neolight {command} --help` for every option and its default.");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Run(args)) => args,
        None => cli.run,
        Some(Command::Quote(args)) => {
            let (symbols, providers, log_format) = match args.validate() {
                Ok(valid) => valid,
                Err(problems) => return report_problems(problems, "quote"),
            };
            init_logging(log_format);
            return ExitCode::from(neolight::quote::run(symbols, providers, args.json));
        }
    };
    let config = match args.validate() {
        Ok(config) => config,
        Err(problems) => return report_problems(problems, "run"),
    };
    init_logging(config.log_format);
    ExitCode::from(mesh::run(config))
}
