//! What ends `ethergate client`, and which exit code it maps to.
//!
//! Invariant: a failure is a user error (exit 1) exactly when retrying
//! cannot help without the user changing something — bad options, a
//! refused login, a rejected server certificate (not in `--ca-cert`, or
//! not the one the known-servers file recorded). Network failures never
//! end the client; they are retried with backoff.

use ethergate_proto::ErrorCode;

use crate::tls::TlsSetupError;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad command-line input or an unreadable password file.
    #[error("{0}")]
    Options(String),

    /// The server refused the login with a code retrying cannot change.
    #[error("{}", refusal_text(*code, hub, user))]
    Refused {
        code: ErrorCode,
        hub: String,
        user: String,
    },

    /// `--ca-cert` was given and the server's certificate is not in it.
    #[error(
        "the server's TLS certificate was rejected ({0}): it is not in --ca-cert and not issued by a CA there; check --ca-cert"
    )]
    Certificate(String),

    /// The known-servers file refused the server's certificate (it changed)
    /// or could not be used.
    #[error(transparent)]
    KnownServers(#[from] crate::known_servers::KnownServersError),

    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),

    #[error("creating the VPN interface: {0}")]
    Tap(#[from] ethergate_bridge::TapError),

    #[error("configuring the VPN interface: {0}")]
    Link(#[from] ethergate_bridge::LinkError),

    #[error("cannot start the io_uring runtime: {0}")]
    Runtime(std::io::Error),
}

impl ClientError {
    /// Exit code 1 (the user must change something) rather than 2.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            ClientError::Options(_)
                | ClientError::Refused { .. }
                | ClientError::Certificate(_)
                | ClientError::KnownServers(_)
                | ClientError::TlsSetup(_)
        )
    }
}

/// Server codes that end the client instead of a retry: the real client
/// would keep retrying every 15 s, but a wrong password or hub name does
/// not fix itself, and a service manager restarting us shows the error
/// better than an endless retry log.
pub fn is_fatal_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::AUTHTYPE_NOT_SUPPORTED
            | ErrorCode::HUB_NOT_FOUND
            | ErrorCode::AUTH_FAILED
            | ErrorCode::ACCESS_DENIED
            | ErrorCode::NULL_PASSWORD_LOCAL_ONLY
    )
}

fn refusal_text(code: ErrorCode, hub: &str, user: &str) -> String {
    let what = match code {
        ErrorCode::AUTH_FAILED => {
            format!("wrong password for user {user:?} on hub {hub:?}, or no such user")
        }
        ErrorCode::HUB_NOT_FOUND => format!("the server has no virtual hub {hub:?}"),
        ErrorCode::ACCESS_DENIED => format!("user {user:?} may not connect to hub {hub:?}"),
        ErrorCode::AUTHTYPE_NOT_SUPPORTED => {
            "the server does not accept password authentication for this user".to_owned()
        }
        ErrorCode::NULL_PASSWORD_LOCAL_ONLY => {
            "the server refuses an empty password from a remote client".to_owned()
        }
        _ => "the server refused the login".to_owned(),
    };
    format!("login refused: {what} ({code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_password_is_a_clear_user_error() {
        let e = ClientError::Refused {
            code: ErrorCode::AUTH_FAILED,
            hub: "mikalab".into(),
            user: "tsumura".into(),
        };
        assert!(e.is_user_error());
        let text = e.to_string();
        assert!(text.contains("wrong password"), "{text}");
        assert!(text.contains("ERR_AUTH_FAILED (9)"), "{text}");
        assert!(is_fatal_refusal(ErrorCode::HUB_NOT_FOUND));
        assert!(!is_fatal_refusal(ErrorCode::SESSION_TIMEOUT));
        assert!(!is_fatal_refusal(ErrorCode::TOO_MANY_USER_SESSION));
        assert!(!is_fatal_refusal(ErrorCode::HUB_IS_BUSY));
    }
}
