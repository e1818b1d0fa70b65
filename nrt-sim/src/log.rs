//! Logging to stderr, filtered by `NEURON_RT_LOG_LEVEL`, and the per-thread last error.
//!
//! Every failing entry point logs one line saying which function failed and why (with
//! the numbers involved), and stores that line as the calling thread's last error, so
//! tests and tools can read it back (`nrt_sim_last_error`, [`crate::SimControl::last_error`]).

use std::cell::RefCell;
use std::ffi::CString;
use std::sync::atomic::{AtomicU8, Ordering};

/// Log levels of `NEURON_RT_LOG_LEVEL`, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Level {
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Off => "OFF",
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// Parses a level name, case-insensitively.
    pub(crate) fn parse(text: &str) -> Option<Level> {
        let text = text.trim();
        [
            Level::Off,
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ]
        .into_iter()
        .find(|l| l.name().eq_ignore_ascii_case(text))
        .or_else(|| text.eq_ignore_ascii_case("warning").then_some(Level::Warn))
        // QUIET is the runtime's documented way to turn console logging off.
        .or_else(|| text.eq_ignore_ascii_case("quiet").then_some(Level::Off))
    }
}

/// Sentinel: the level has not been read from the environment yet.
const UNSET: u8 = u8::MAX;
static LEVEL: AtomicU8 = AtomicU8::new(UNSET);

/// The default when `NEURON_RT_LOG_LEVEL` is unset, as in the real runtime.
const DEFAULT_LEVEL: Level = Level::Error;

/// Re-reads `NEURON_RT_LOG_LEVEL` (done at every `nrt_init`).
pub(crate) fn reload_level() {
    let level = match std::env::var("NEURON_RT_LOG_LEVEL") {
        Ok(text) if !text.trim().is_empty() => match Level::parse(&text) {
            Some(level) => level,
            None => {
                LEVEL.store(DEFAULT_LEVEL as u8, Ordering::Relaxed);
                log(
                    Level::Warn,
                    "nrt_init",
                    &format!(
                        "NEURON_RT_LOG_LEVEL={text:?} is not one of ERROR, WARN(ING), INFO, DEBUG, TRACE, QUIET, OFF; using ERROR"
                    ),
                );
                DEFAULT_LEVEL
            }
        },
        _ => DEFAULT_LEVEL,
    };
    LEVEL.store(level as u8, Ordering::Relaxed);
}

fn current_level() -> u8 {
    let level = LEVEL.load(Ordering::Relaxed);
    if level == UNSET {
        reload_level();
        LEVEL.load(Ordering::Relaxed)
    } else {
        level
    }
}

/// Whether a message at `level` would be printed.
pub(crate) fn enabled(level: Level) -> bool {
    level != Level::Off && (level as u8) <= current_level()
}

/// Prints `message` from function `func` at `level`, if enabled.
pub(crate) fn log(level: Level, func: &str, message: &str) {
    if enabled(level) {
        // Not eprintln!: it panics when stderr cannot be written (a closed pipe), and
        // logging also runs outside the FFI boundary's catch_unwind.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr().lock(),
            "nrt-sim: {} {func}: {message}",
            level.name()
        );
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Logs an error and remembers it as this thread's last error.
pub(crate) fn error(func: &str, message: &str) {
    log(Level::Error, func, message);
    let line = format!("{func}: {message}");
    let line = CString::new(line.replace('\0', "\\0")).unwrap_or_default();
    // try_with: a call from a thread-exit destructor (after this thread's locals are
    // gone) must not panic, since this runs outside the FFI boundary's catch_unwind.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = Some(line));
}

/// Runs `f` with this thread's last error (if any; none once the thread's locals are
/// being destroyed).
pub(crate) fn with_last_error<R>(f: impl FnOnce(Option<&CString>) -> R) -> R {
    let mut f = Some(f);
    LAST_ERROR
        .try_with(|slot| (f.take().expect("called once"))(slot.borrow().as_ref()))
        .unwrap_or_else(|_| (f.take().expect("not called yet"))(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_parse_case_insensitively() {
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse(" TRACE "), Some(Level::Trace));
        assert_eq!(Level::parse("Warning"), Some(Level::Warn));
        assert_eq!(Level::parse("quiet"), Some(Level::Off));
        assert_eq!(Level::parse("loud"), None);
    }

    #[test]
    fn errors_from_a_thread_exit_destructor_do_not_panic() {
        // C code may call libnrt from a thread-exit destructor, after this thread's Rust
        // locals are gone. A panic there would abort the process.
        struct CallsAtExit;
        impl Drop for CallsAtExit {
            fn drop(&mut self) {
                error("nrt_test_fn", "from a destructor");
                assert!(with_last_error(|e| e.is_none()), "the slot is already gone");
            }
        }
        thread_local! {
            static AT_EXIT: CallsAtExit = const { CallsAtExit };
        }
        std::thread::spawn(|| {
            // Registered first, destroyed after LAST_ERROR (destructors run in reverse).
            AT_EXIT.with(|_| ());
            error("nrt_test_fn", "while alive");
            assert!(with_last_error(|e| e.is_some()));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn error_is_remembered_per_thread() {
        error("nrt_test_fn", "offset 10 past size 4");
        let text = with_last_error(|e| e.map(|c| c.to_string_lossy().into_owned()));
        assert_eq!(text.as_deref(), Some("nrt_test_fn: offset 10 past size 4"));
        let other = std::thread::spawn(|| with_last_error(|e| e.is_some()))
            .join()
            .unwrap();
        assert!(!other);
    }
}
