//! The errors that end a command, and the exit codes they map to (documented in README.md).

use crate::s3::S3Error;

pub mod exit {
    /// Everything was done (or, for `verify`, everything matches).
    pub const SUCCESS: i32 = 0;
    /// The run finished, but some entries failed (listed in the report), or `verify` found differences,
    /// or the run stopped on an error after it had started writing.
    pub const FAILURES: i32 = 1;
    /// A usage or configuration error detected before any write.
    pub const USAGE: i32 = 2;
    /// The run stopped on an error of its own after it started (its checkpoint could not be written);
    /// a rerun of the same command resumes it.
    pub const STOPPED: i32 = 3;
    /// Interrupted by SIGINT or SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}

/// `text` with its control characters escaped (`\r`, `\n`, `\u{1b}`), for printing keys: a key may hold
/// any character, and a raw carriage return or escape sequence would rewrite the terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `arg` in single quotes for a POSIX shell, for the commands a message tells the user to run.
pub fn shell_quoted(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or configuration, found before anything was written.
    #[error("{0}")]
    Usage(String),
    #[error("failed to list s3://{bucket}/{prefix}: {source}")]
    Listing {
        bucket: String,
        prefix: String,
        source: S3Error,
    },
    #[error("failed to write {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    /// The command ran but its result is a failure (differences found, a demo step failed).
    #[error("{0}")]
    Failed(String),
    #[error("interrupted")]
    Interrupted,
    /// The run stopped on an error of its own after it started; a rerun resumes.
    #[error("{0}")]
    Stopped(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Stopped(_) => exit::STOPPED,
            Error::Listing { .. } | Error::File { .. } | Error::Failed(_) => exit::FAILURES,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_in_keys_are_escaped_for_printing() {
        assert_eq!(super::printable("plain/key é"), "plain/key é");
        assert_eq!(super::printable("a\rb\nc\u{1b}[2J"), "a\\rb\\nc\\u{1b}[2J");
    }
}
