//! Running one command to completion, with its output kept for assertions
//! and error messages.

use std::process::Command;

use crate::NetnsError;

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct CommandOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn describe(argv: &[&str]) -> String {
    argv.join(" ")
}

/// Runs `argv`, returning its output whatever the exit status.
pub(crate) fn run(argv: &[&str]) -> Result<CommandOutput, NetnsError> {
    let (program, args) = argv.split_first().ok_or_else(|| NetnsError::Spawn {
        command: String::new(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"),
    })?;
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: describe(argv),
            source,
        })?;
    Ok(CommandOutput {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `argv` and fails unless it exits 0.
pub(crate) fn run_checked(argv: &[&str]) -> Result<CommandOutput, NetnsError> {
    let output = run(argv)?;
    if output.success {
        Ok(output)
    } else {
        Err(NetnsError::CommandFailed {
            command: describe(argv),
            status: output
                .code
                .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
            stderr: output.stderr.trim().to_owned(),
        })
    }
}
