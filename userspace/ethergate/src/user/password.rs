//! Where a new password comes from: a file, a prompt on the terminal with
//! echo off (asked twice), or one line of standard input (scripts, pipes).
//! It never comes from the command line, where `ps` and shell history
//! would show it.

use std::{
    io::{BufRead, IsTerminal, Write},
    os::fd::AsFd,
    path::Path,
};

use anyhow::anyhow;
use nix::sys::termios::{self, LocalFlags, SetArg};

use crate::Failure;

/// The new password for `user`, from `file` when given, else from the
/// terminal or standard input.
pub fn new_password(file: Option<&Path>, user: &str) -> Result<String, Failure> {
    let password = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::User(anyhow!(
                    "cannot read the password file {}: {e}",
                    path.display()
                ))
            })?;
            strip_line_end(&text).to_owned()
        }
        None if std::io::stdin().is_terminal() => {
            let first = prompt(&format!("New password for {user}: "))?;
            let again = prompt("Repeat it: ")?;
            if first != again {
                return Err(Failure::User(anyhow!(
                    "the two passwords differ; nothing changed"
                )));
            }
            first
        }
        None => stdin_line()?,
    };
    if password.is_empty() {
        return Err(Failure::User(anyhow!(
            "the password is empty; nothing changed"
        )));
    }
    Ok(password)
}

/// One line of standard input without its line end.
pub fn stdin_line() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Runtime(anyhow!("cannot read the password from stdin: {e}")))?;
    Ok(strip_line_end(&line).to_owned())
}

/// Removes one trailing `\n` or `\r\n` (what editors and `echo` add); any
/// other character, spaces included, belongs to the password.
fn strip_line_end(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

/// Asks on stderr and reads a line from the terminal with echo off; echo
/// comes back even when reading fails.
fn prompt(question: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let fail = |e: &dyn std::fmt::Display| Failure::Runtime(anyhow!("terminal: {e}"));
    let saved = termios::tcgetattr(stdin.as_fd()).map_err(|e| fail(&e))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &quiet).map_err(|e| fail(&e))?;
    let line = stdin_line();
    let restored = termios::tcsetattr(stdin.as_fd(), SetArg::TCSAFLUSH, &saved);
    let line = line?;
    restored.map_err(|e| fail(&e))?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_line_end_is_removed() {
        assert_eq!(strip_line_end("pw\n"), "pw");
        assert_eq!(strip_line_end("pw\r\n"), "pw");
        assert_eq!(strip_line_end(" pw \n\n"), " pw \n");
        assert_eq!(strip_line_end("pw"), "pw");
    }
}
