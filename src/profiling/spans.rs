//! `tracing` spans of the crate (feature `tracing`), and what the code uses when the
//! feature is off: a zero-sized [`Span`] whose methods do nothing, and span macros that
//! expand to it without evaluating their fields. The library never installs a
//! subscriber; without one, a span costs one relaxed load of `tracing`'s global level
//! filter.
//!
//! Every span gets two fields besides its own: `status` (`Success`, the libnrt status
//! of a failure, or the [`ErrorKind`](crate::ErrorKind) of one without a status) and
//! `error` (the error's text), recorded with [`record_result`] / [`record_error`].
//! Fields are evaluated only when a subscriber wants the span.

use crate::error::Error;

#[cfg(feature = "tracing")]
pub(crate) use tracing::Span;

/// A span, when the feature is off: nothing (see the module docs).
#[cfg(not(feature = "tracing"))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Span;

/// What [`Span::enter`] returns when the feature is off.
#[cfg(not(feature = "tracing"))]
pub(crate) struct Entered;

// Empty `Drop`s, so that code ending a span or its entry with `drop` reads (and lints)
// the same with the feature on and off.
#[cfg(not(feature = "tracing"))]
impl Drop for Span {
    #[inline(always)]
    fn drop(&mut self) {}
}

#[cfg(not(feature = "tracing"))]
impl Drop for Entered {
    #[inline(always)]
    fn drop(&mut self) {}
}

#[cfg(not(feature = "tracing"))]
impl Span {
    /// The span that records nothing.
    #[inline(always)]
    pub(crate) fn none() -> Span {
        Span
    }

    /// Always `true` (`tracing::Span::is_disabled`).
    #[inline(always)]
    pub(crate) fn is_disabled(&self) -> bool {
        true
    }

    /// Does nothing (`tracing::Span::enter`).
    #[inline(always)]
    pub(crate) fn enter(&self) -> Entered {
        Entered
    }

    /// Does nothing (`tracing::Span::record`).
    #[inline(always)]
    pub(crate) fn record<V>(&self, _field: &str, _value: V) -> &Span {
        self
    }
}

/// An INFO span named `$name` with the given `tracing` fields (plus `status` and
/// `error`, empty until recorded); nothing without the feature.
#[cfg(feature = "tracing")]
macro_rules! info_span {
    ($name:literal, $($fields:tt)*) => {
        ::tracing::info_span!(
            $name,
            status = ::tracing::field::Empty,
            error = ::tracing::field::Empty,
            $($fields)*
        )
    };
}

/// As with the feature: the fields are not evaluated.
#[cfg(not(feature = "tracing"))]
macro_rules! info_span {
    ($name:literal, $($fields:tt)*) => {
        $crate::profiling::spans::Span::none()
    };
}

/// A DEBUG span named `$name`, as [`info_span`].
#[cfg(feature = "tracing")]
macro_rules! debug_span {
    (parent: $parent:expr, $name:literal, $($fields:tt)*) => {
        ::tracing::debug_span!(
            parent: $parent,
            $name,
            status = ::tracing::field::Empty,
            error = ::tracing::field::Empty,
            $($fields)*
        )
    };
    ($name:literal, $($fields:tt)*) => {
        ::tracing::debug_span!(
            $name,
            status = ::tracing::field::Empty,
            error = ::tracing::field::Empty,
            $($fields)*
        )
    };
}

/// As with the feature: the fields are not evaluated.
#[cfg(not(feature = "tracing"))]
macro_rules! debug_span {
    (parent: $parent:expr, $name:literal, $($fields:tt)*) => {
        $crate::profiling::spans::Span::none()
    };
    ($name:literal, $($fields:tt)*) => {
        $crate::profiling::spans::Span::none()
    };
}

pub(crate) use {debug_span, info_span};

/// Records how `result` ended on `span`: `status = Success`, or the error.
#[inline]
pub(crate) fn record_result<T>(span: &Span, result: &Result<T, Error>) {
    match result {
        Ok(_) => record_success(span),
        Err(error) => record_error(span, error),
    }
}

/// Records `status = Success` on `span`.
#[inline]
pub(crate) fn record_success(span: &Span) {
    span.record("status", "Success");
}

/// Records a failure on `span`: `status` (libnrt's status, or the error's kind) and
/// `error` (its text).
#[cfg(feature = "tracing")]
pub(crate) fn record_error(span: &Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    match error.status() {
        Some(status) => span.record("status", tracing::field::debug(status)),
        None => span.record("status", tracing::field::debug(error.kind())),
    };
    span.record("error", tracing::field::display(error));
}

/// Records a failure on `span` (nothing without the feature).
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn record_error(_span: &Span, _error: &Error) {}

/// Records a libnrt status on `span` (`status`, and `error` for a failure's text).
#[cfg(feature = "tracing")]
pub(crate) fn record_status(span: &Span, status: crate::error::NrtStatus) {
    span.record("status", tracing::field::debug(status));
}

/// Records a libnrt status (nothing without the feature).
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn record_status(_span: &Span, _status: crate::error::NrtStatus) {}

/// The time now, when `span` records (for a duration field); `None` without the
/// feature or when no subscriber wants the span (no clock read).
#[inline]
pub(crate) fn start(span: &Span) -> Option<std::time::Instant> {
    #[cfg(feature = "tracing")]
    if !span.is_disabled() {
        return Some(std::time::Instant::now());
    }
    let _ = span;
    None
}

/// Records the time since `started` (from [`start`]) as `field`, in seconds.
#[inline]
pub(crate) fn record_since(span: &Span, field: &'static str, started: Option<std::time::Instant>) {
    if let Some(started) = started {
        record_duration(span, field, started.elapsed());
    }
}

/// Records `duration` (seconds, as a float) on `span`.
#[inline]
pub(crate) fn record_duration(span: &Span, field: &'static str, duration: std::time::Duration) {
    span.record(field, duration.as_secs_f64());
}

/// `future`, run inside `span` at every poll (`tracing::Instrument`); the future itself
/// without the feature.
#[cfg(feature = "tracing")]
pub(crate) fn instrument<F: std::future::Future>(
    span: Span,
    future: F,
) -> tracing::instrument::Instrumented<F> {
    tracing::Instrument::instrument(future, span)
}

/// The future itself (the feature is off).
#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn instrument<F: std::future::Future>(_span: Span, future: F) -> F {
    future
}
