//! Logging to stderr, filtered by `NEURON_RT_LOG_LEVEL`, and the per-thread last error.
//!
//! Every failing entry point logs one line saying which function failed and why (with
//! the numbers involved), and stores that line as the calling thread's last error, so
//! tests and tools can read it back (`nrt_sim_last_error`, [`crate::SimControl::last_error`]).
//!
//! While capture is on (`nrt_sim_capture_log`, [`crate::SimControl::capture_log`]) the
//! lines go to an in-memory buffer of the last [`CAPTURE_LIMIT`] lines instead of stderr,
//! and `nrt_sim_take_log` ([`crate::SimControl::take_log`]) drains it: tests of failure
//! paths stay quiet and can assert on what was logged.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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

/// The most lines the capture buffer keeps: older ones are dropped first.
pub(crate) const CAPTURE_LIMIT: usize = 4096;

/// Whether log lines go to [`CAPTURED`] instead of stderr: off, except in this crate's
/// own unit tests (whose expected failures would otherwise print past the test
/// harness, which captures only `print!`-style output).
static CAPTURING: AtomicBool = AtomicBool::new(cfg!(test));
/// The lines logged while capturing, oldest first (at most [`CAPTURE_LIMIT`]).
static CAPTURED: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

fn captured() -> std::sync::MutexGuard<'static, VecDeque<String>> {
    // Pushing and popping lines cannot leave the deque inconsistent: a poisoned lock is fine.
    CAPTURED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Turns capturing on (lines go to the buffer) or off (to stderr again; the buffer
/// keeps what it holds until taken). Returns whether it was on.
pub(crate) fn set_capture(on: bool) -> bool {
    CAPTURING.swap(on, Ordering::SeqCst)
}

/// Removes and returns the captured lines that fit in `budget` bytes (each line counted
/// with its newline), oldest first; the first line is always taken (so that a caller
/// with a small buffer still makes progress), possibly longer than `budget`.
pub(crate) fn take_captured(budget: usize) -> Vec<String> {
    let mut lines = captured();
    let mut taken = Vec::new();
    let mut used = 0;
    while let Some(line) = lines.front() {
        if !taken.is_empty() && used + line.len() + 1 > budget {
            break;
        }
        used += line.len() + 1;
        taken.extend(lines.pop_front());
    }
    taken
}

/// Prints `message` from function `func` at `level`, if enabled (into the capture
/// buffer while capturing).
pub(crate) fn log(level: Level, func: &str, message: &str) {
    if enabled(level) {
        let line = format!("nrt-sim: {} {func}: {message}", level.name());
        if CAPTURING.load(Ordering::SeqCst) {
            let mut lines = captured();
            if lines.len() == CAPTURE_LIMIT {
                lines.pop_front();
            }
            lines.push_back(line);
            return;
        }
        // Not eprintln!: it panics when stderr cannot be written (a closed pipe), and
        // logging also runs outside the FFI boundary's catch_unwind.
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Logs an error and remembers it as this thread's last error.
pub(crate) fn error(func: &str, message: &str) {
    failure(Level::Error, func, message);
}

/// Logs a failed call's reason at `level` and remembers it as this thread's last error,
/// whatever the level: the last error always belongs to the thread's last failing call,
/// so a caller reading it after a failure never gets an older call's reason (a routine
/// `NRT_QUEUE_FULL` is logged at DEBUG but still replaces it).
pub(crate) fn failure(level: Level, func: &str, message: &str) {
    log(level, func, message);
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
    fn captured_lines_are_kept_in_order_and_taken_by_budget() {
        // The only unit test that turns capture on; other unit tests only log errors,
        // which may land in the buffer meanwhile: look for this test's own lines.
        let was = set_capture(true);
        for i in 0..3 {
            error("nrt_test_capture", &format!("line {i}"));
        }
        set_capture(was);
        let mut mine = Vec::new();
        loop {
            // A budget of 1 byte still takes one line per call.
            let taken = take_captured(1);
            if taken.is_empty() {
                break;
            }
            assert_eq!(taken.len(), 1);
            mine.extend(taken.into_iter().filter(|l| l.contains("nrt_test_capture")));
        }
        assert_eq!(
            mine,
            [0, 1, 2].map(|i| format!("nrt-sim: ERROR nrt_test_capture: line {i}"))
        );
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
