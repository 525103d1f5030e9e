//! Errors with the context a user needs to act on them.

use std::path::PathBuf;

use crate::model::Pid;

/// Everything that can go wrong in the library; `main` maps these to exit
/// codes and prints the hint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no process with pid {0}")]
    NoSuchPid(Pid),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {what}: {message}")]
    Proc { what: String, message: String },
    #[error("{0}")]
    Usage(String),
    /// tracefs missing, not permitted, or refusing a setting.
    #[error("tracefs: {what}: {message}")]
    Tracefs {
        what: String,
        message: String,
        hint: Option<&'static str>,
    },
    /// ptrace refused to attach to a process, or failed on it.
    #[error("ptrace {pid}: {message}")]
    Ptrace {
        pid: Pid,
        message: String,
        hint: Option<&'static str>,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A sentence telling the user what to try, when there is one.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::NoSuchPid(_) => Some("list processes with `ptree` or `ptree PATTERN`"),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some("run as root or with the capability the operation names")
            }
            Error::Tracefs { hint, .. } => *hint,
            Error::Ptrace { hint, .. } => *hint,
            _ => None,
        }
    }
}
