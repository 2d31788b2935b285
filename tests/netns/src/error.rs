//! Errors of the namespace harness: each says which command failed and what
//! it printed, so a broken test explains itself.

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no namespace named {0:?} in this topology")]
    UnknownNamespace(String),
    #[error("cannot enter namespace {namespace:?}: {reason}")]
    Enter { namespace: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
