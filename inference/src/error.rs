//! The crate's one error type. Every variant that concerns a file names it.

use std::path::PathBuf;

/// What went wrong, and with which file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model needs is absent.
    #[error("{}: file not found", path.display())]
    Missing { path: PathBuf },

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file does not start with the GGUF magic.
    #[error("{}: not a GGUF file (first bytes {found:02x?}, expected \"GGUF\")", path.display())]
    BadMagic { path: PathBuf, found: Vec<u8> },

    /// The GGUF header, metadata or tensor table is cut short or malformed.
    #[error("{}: malformed GGUF: {reason}", path.display())]
    Gguf { path: PathBuf, reason: String },

    /// The GGUF file ends before the data of a tensor it declares.
    #[error("{}: truncated GGUF: tensor {tensor} needs bytes up to {needed}, file has {len}", path.display())]
    Truncated {
        path: PathBuf,
        tensor: String,
        needed: u64,
        len: u64,
    },

    /// A metadata key the architecture requires is absent.
    #[error("{}: missing metadata key {key}", path.display())]
    MissingKey { path: PathBuf, key: String },

    /// A metadata key is present but has the wrong type or an unusable value.
    #[error("{}: metadata key {key}: {reason}", path.display())]
    BadKey {
        path: PathBuf,
        key: String,
        reason: String,
    },

    /// A weight tensor the architecture requires is absent.
    #[error("{}: missing tensor {tensor}", path.display())]
    MissingTensor { path: PathBuf, tensor: String },

    /// A weight tensor has the wrong shape for the configuration.
    #[error("{}: tensor {tensor} has shape {found:?}, expected {expected:?}", path.display())]
    TensorShape {
        path: PathBuf,
        tensor: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },

    /// A safetensors index names a shard that is not in the directory.
    #[error("{}: missing shard {shard} (named by {index})", dir.display())]
    MissingShard {
        dir: PathBuf,
        shard: String,
        index: String,
    },

    /// config.json (or a safetensors header, or an index) is not what it should be.
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },

    /// The architecture is not (yet) supported.
    #[error("{}: unsupported architecture {arch:?}", path.display())]
    UnsupportedArch { path: PathBuf, arch: String },

    /// tokenizer.json cannot be loaded.
    #[error("{}: tokenizer: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },

    /// The tokenizer has token ids the model cannot embed (`tokenizer` is
    /// its highest id + 1).
    #[error("{}: tokenizer has token ids up to {} but the model's vocabulary is {model}", path.display(), tokenizer - 1)]
    VocabMismatch {
        path: PathBuf,
        tokenizer: usize,
        model: usize,
    },

    /// A chat template cannot be compiled or rendered (`path`: the file it
    /// came from; none for the built-in fallback).
    #[error("{}chat template: {reason}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Template {
        path: Option<PathBuf>,
        reason: String,
    },

    /// A request cannot be served (empty prompt, prompt longer than the context, …).
    #[error("request: {0}")]
    Request(String),

    /// candle failed while loading or running the model.
    #[error("{context}: {message}")]
    Candle {
        context: String,
        /// candle's message without the backtrace it captures under
        /// `RUST_BACKTRACE`.
        message: String,
        #[source]
        source: Box<candle_core::Error>,
    },

    /// candle panicked; the panic was caught and turned into this error.
    #[error("{context}: internal error in candle: {message}")]
    Panic { context: String, message: String },
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::Missing { path }
        } else {
            Error::Io { path, source }
        }
    }

    pub(crate) fn candle(context: impl Into<String>, source: candle_core::Error) -> Self {
        Error::Candle {
            context: context.into(),
            message: candle_message(&source),
            source: Box::new(source),
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// candle's error text without a captured backtrace.
pub(crate) fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        other => other.to_string(),
    }
}

/// Runs `f`, turning a panic inside candle into [`Error::Panic`]. The
/// loaders validate their input first so that this is a last resort.
pub(crate) fn no_panic<T>(context: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string());
            Err(Error::Panic {
                context: context.to_string(),
                message,
            })
        }
    }
}
