//! [`Failed`]: a request or job that failed, with its payload when it still exists (what
//! [`Pipeline`](super::Pipeline) items and [`Completion`](super::Completion) resolve to on
//! failure).

use std::fmt;

use super::payload::Payload;
use super::request::{Rejected, Request};
use crate::error::Error;

/// A job of a [`Pipeline`](super::Pipeline) that failed, or a request awaited with
/// [`Request::completion`] that did: why, and its payload when it still exists.
///
/// The payload is there when the request completed with an error status (libnrt may
/// even have written outputs, as for
/// [`ExecCompletedWithErr`](crate::NrtStatus::ExecCompletedWithErr)), when the unit
/// refused the submit ([`Rejected`]), and when `submit` handed it back with
/// [`Failed::new`]. It is `None` when the error came before any payload existed, or when
/// completion could not be observed (the request then leaks its payload, see
/// [`Request`]).
///
/// ```
/// # use neuron_rt::{Error, Failed};
/// let error = Error::InvalidArgument { argument: "job", reason: "no input".into() };
/// let failed: Failed<Vec<u8>> = Failed::new(error, Some(vec![0; 4]));
/// let (error, payload) = failed.into_parts();
/// assert!(error.to_string().contains("no input"));
/// assert_eq!(payload.map(|p| p.len()), Some(4));
/// ```
pub struct Failed<T> {
    error: Error,
    payload: Option<T>,
}

impl<T> Failed<T> {
    /// A failure with `error`, handing `payload` back to whoever reads the results.
    pub fn new(error: Error, payload: Option<T>) -> Failed<T> {
        Failed { error, payload }
    }

    /// Why the job failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The payload, if it still exists.
    pub fn payload(&self) -> Option<&T> {
        self.payload.as_ref()
    }

    /// Whether submitting the same payload again later may succeed (a full queue).
    pub fn is_retryable(&self) -> bool {
        self.error.is_retryable()
    }

    /// The error and the payload.
    pub fn into_parts(self) -> (Error, Option<T>) {
        (self.error, self.payload)
    }

    /// The payload, dropping the error.
    pub fn into_payload(self) -> Option<T> {
        self.payload
    }

    /// The error, dropping the payload.
    pub fn into_error(self) -> Error {
        self.error
    }
}

/// A failure before the job had a payload (e.g. allocating its sets failed).
impl<T> From<Error> for Failed<T> {
    fn from(error: Error) -> Failed<T> {
        Failed::new(error, None)
    }
}

/// A refused submit, with the payload the unit handed back.
impl<T> From<Rejected<T>> for Failed<T> {
    fn from(rejected: Rejected<T>) -> Failed<T> {
        let (error, payload) = rejected.into_parts();
        Failed::new(error, Some(payload))
    }
}

/// The error, dropping the payload (what `?` on a pipeline item does).
impl<T> From<Failed<T>> for Error {
    fn from(failed: Failed<T>) -> Error {
        failed.error
    }
}

impl<T> fmt::Debug for Failed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failed")
            .field("error", &self.error)
            .field("payload", &self.payload.as_ref().map(|_| ".."))
            .finish()
    }
}

impl<T> fmt::Display for Failed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = if self.payload.is_some() {
            "payload returned"
        } else {
            "no payload"
        };
        write!(f, "job failed ({kept}): {}", self.error)
    }
}

impl<T> std::error::Error for Failed<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Waits for `request` (at once if it completed) and turns it into a pipeline item (or a
/// [`Completion`](super::Completion)'s result).
pub(crate) fn finish<T: Payload>(request: Request<T>) -> std::result::Result<T, Failed<T>> {
    match request.wait_with_payload() {
        (Some(payload), Ok(())) => Ok(payload),
        (payload, Err(error)) => Err(Failed::new(error, payload)),
        // `wait_with_payload` returns the payload whenever the status is Ok.
        (None, Ok(())) => Err(Failed::new(
            Error::UnexpectedResult {
                function: "nrta_is_completed",
                reason: "completion observed but payload missing".into(),
            },
            None,
        )),
    }
}
