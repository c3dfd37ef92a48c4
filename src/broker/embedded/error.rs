//! Errors of the embedded log, mapped to [`BrokerError`] at the component edge.

use std::path::PathBuf;

use crate::broker::BrokerError;

/// What can go wrong in the embedded log.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Another process (or another open in this one) owns the data folder.
    #[error("data folder {dir} is locked by another sidebus process ({holder})")]
    Locked {
        /// The data folder.
        dir: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation, as a short phrase.
        what: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record is larger than the configured limit.
    #[error("record of {size} bytes exceeds maxMessageBytes {limit}")]
    TooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A stored file does not hold what it should.
    #[error("corrupt {path}: {reason}")]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A partition stopped accepting appends after a failed write it could
    /// not undo; reopening the log repairs it.
    #[error("partition {path} failed earlier and refuses appends until reopened")]
    Failed {
        /// The partition folder.
        path: PathBuf,
    },
    /// The log has been closed.
    #[error("embedded log is closed")]
    Closed,
}

impl EmbeddedError {
    /// Wraps an I/O error with what was being done and where.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

impl From<EmbeddedError> for BrokerError {
    fn from(err: EmbeddedError) -> Self {
        match err {
            EmbeddedError::Closed => BrokerError::Closed,
            EmbeddedError::TooLarge { .. } => BrokerError::Rejected(err.to_string()),
            // Disk full, a failed partition, a lock held elsewhere: an
            // operator can fix these without changing the request.
            other => BrokerError::Unavailable(other.to_string()),
        }
    }
}
