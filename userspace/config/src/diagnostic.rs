//! Problems found in a config file, each pinned to `file:line`.
//!
//! Validation never stops at the first problem: every check pushes into a
//! [`Report`], and the caller gets the whole list ([`ConfigErrors`]) or a
//! [`Config`](crate::Config) with its warnings. A diagnostic's line is the
//! line of the key (or table header) the user has to edit.

use std::fmt;
use std::path::PathBuf;

/// One problem (or warning) in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given to the parser, used only in messages.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// One sentence naming what is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.origin, self.line, self.message)
    }
}

/// Every error found in one config file, in line order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<Diagnostic>);

impl ConfigErrors {
    /// The errors, sorted by line.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false; present because clippy expects it beside `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One diagnostic per line, ready for stderr.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl IntoIterator for ConfigErrors {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read; it has the listed problems.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// Byte offsets → (line, column), computed once per file.
struct LineIndex {
    /// Byte offset of the start of each line.
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        (line, column)
    }
}

/// Collects errors and warnings while one file is validated.
pub(crate) struct Report<'t> {
    origin: String,
    text: &'t str,
    lines: LineIndex,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'t> Report<'t> {
    pub(crate) fn new(text: &'t str, origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            text,
            lines: LineIndex::new(text),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn diagnostic(&self, pos: usize, message: String) -> Diagnostic {
        let (line, column) = self.lines.locate(self.text, pos);
        Diagnostic {
            origin: self.origin.clone(),
            line,
            column,
            message,
        }
    }

    pub(crate) fn error(&mut self, pos: usize, message: impl Into<String>) {
        let d = self.diagnostic(pos, message.into());
        self.errors.push(d);
    }

    /// True the first time a position on a given line is offered; `seen`
    /// holds the lines offered so far.
    pub(crate) fn report_once_per_line(&self, pos: usize, seen: &mut Vec<usize>) -> bool {
        let (line, _) = self.lines.locate(self.text, pos);
        if seen.contains(&line) {
            false
        } else {
            seen.push(line);
            true
        }
    }

    pub(crate) fn warn(&mut self, pos: usize, message: impl Into<String>) {
        let d = self.diagnostic(pos, message.into());
        self.warnings.push(d);
    }

    /// Errors if there were any, else the warnings; both sorted by line.
    pub(crate) fn finish(self) -> Result<Vec<Diagnostic>, ConfigErrors> {
        fn sorted(mut v: Vec<Diagnostic>) -> Vec<Diagnostic> {
            // Stable: problems on one line keep the order they were found in.
            v.sort_by_key(|d| (d.line, d.column));
            v
        }
        if self.errors.is_empty() {
            Ok(sorted(self.warnings))
        } else {
            Err(ConfigErrors(sorted(self.errors)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_columns() {
        let text = "a = 1\nbé = 2\n\nc = 3";
        let idx = LineIndex::new(text);
        assert_eq!(idx.locate(text, 0), (1, 1));
        assert_eq!(idx.locate(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(idx.locate(text, 10), (2, 4));
        assert_eq!(idx.locate(text, 14), (3, 1));
        assert_eq!(idx.locate(text, 15), (4, 1));
        assert_eq!(idx.locate(text, 999), (4, 6));
    }

    #[test]
    fn displays_file_line_reason() {
        let mut report = Report::new("x = 1\ny = 2\n", "ethergate.toml");
        report.error(6, "y is wrong");
        report.error(0, "x is wrong");
        let errors = report.finish().expect_err("two errors were reported");
        assert_eq!(
            errors.to_string(),
            "ethergate.toml:1: x is wrong\nethergate.toml:2: y is wrong"
        );
        assert_eq!(errors.diagnostics()[1].column, 1);
    }
}
