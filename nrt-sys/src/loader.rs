//! Run-time loading of libnrt: from a file (trusted, like any C library an FFI crate
//! binds), or from in-process functions (`unsafe`, with a contract). See [`Library`] for
//! the trust model and for how ELF symbol versions pin the async API to `NRT_3.0.0`.

use crate::NrtFns;
use crate::dl::Handle;
use std::ffi::{CStr, c_void};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The places [`Library::open_default`] tries after `LIBNRT_PATH`, in order.
pub const DEFAULT_PLACES: [&str; 3] = [
    "libnrt.so.1",
    "/opt/aws/neuron/lib/libnrt.so.1",
    "/opt/aws/neuron/lib/libnrt.so",
];

/// Environment variable naming the libnrt file to load; checked before [`DEFAULT_PLACES`].
pub const LIBNRT_PATH_VAR: &str = "LIBNRT_PATH";

/// Where a [`Library`]'s functions come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A shared library opened at run time, by the name or path it was opened with.
    Path(PathBuf),
    /// Functions that live in this process (e.g. a simulator linked as a Rust crate).
    InProcess(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Path(p) => write!(f, "{}", p.display()),
            Origin::InProcess(name) => write!(f, "{name} (in process)"),
        }
    }
}

/// One place the loader tried, and why it did not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The path or library name passed to the dynamic loader.
    pub place: String,
    /// How the place was chosen: "explicit path", "LIBNRT_PATH" or "default search".
    pub source: &'static str,
    /// The dynamic loader's own message.
    pub error: String,
}

/// No libnrt could be opened. Lists every place tried with the loader's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// Every place tried, in order.
    pub attempts: Vec<Attempt>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not load libnrt; tried:")?;
        for a in &self.attempts {
            write!(f, "\n  {} ({}): {}", a.place, a.source, a.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// A loaded libnrt: its function table, where it came from, and the open handle.
///
/// Libraries stay loaded for the life of the process (the functions of a library must
/// not disappear while any handle could call them), so every constructor returns
/// `&'static Library`.
///
/// # Trust
///
/// Code that holds a `&'static Library` calls the functions of its table, and trusts
/// what they return, as the libnrt functions of those names (`nrt-abi.md`). A library
/// is therefore only made by:
///
/// * [`Library::open`] / [`Library::open_default`]: loading a shared library trusts it,
///   as every FFI crate trusts the C library it binds (its initialisers run at once);
/// * [`Library::in_process`], an `unsafe fn` whose caller vouches for every function the
///   table holds and every address its lookup returns.
///
/// # Symbol versions
///
/// When a library opened from a path defines ELF symbol versions (its dynamic section has
/// a `DT_VERDEF` entry, as the shipped libnrt does), every `nrta_*` entry of the table is
/// taken only from version node [`ASYNC_V3_VERSION`](crate::ASYNC_V3_VERSION) (`NRT_3.0.0`, through `dlvsym`): an
/// `nrta_*` function that the library exports only under another node (another
/// generation of the async API) is `None`, never bound to the v3 prototypes of the table.
/// The `nrt_*` entries take the default version (`dlsym`). A library without version
/// definitions (the simulator's cdylib, a stand-in built without a version script) is
/// looked up with `dlsym` for every name. Versions are read on glibc Linux only.
pub struct Library {
    fns: NrtFns,
    origin: Origin,
    source: Source,
}

/// What answers [`Library::symbol`] for names outside the table.
enum Source {
    Loaded(Handle),
    InProcess(Option<SymbolLookup>),
}

/// Finds an in-process symbol by name; null when absent.
pub type SymbolLookup = fn(&CStr) -> *mut c_void;

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = self.fns.presence().iter().filter(|(_, p)| *p).count();
        f.debug_struct("Library")
            .field("origin", &self.origin)
            .field("functions", &format_args!("{present} of {}", NrtFns::LEN))
            .field("defines_symbol_versions", &self.defines_symbol_versions())
            .finish()
    }
}

/// Every library opened from a path so far. Held while opening, so that opening is
/// thread-safe and happens once per path. In-process tables are not in it: they are
/// never found by name (see [`Library::in_process`]).
static OPENED: Mutex<Vec<&'static Library>> = Mutex::new(Vec::new());

fn opened() -> std::sync::MutexGuard<'static, Vec<&'static Library>> {
    // A panic while the lock was held cannot leave the Vec inconsistent (push is the
    // only mutation), so a poisoned lock is still usable.
    OPENED.lock().unwrap_or_else(|e| e.into_inner())
}

impl Library {
    /// Opens the library at `path` (a file path, or a bare name for the dynamic
    /// linker's search path). Opening the same path again returns the same library.
    ///
    /// Loading a library trusts it: its initialisers run, and its exported functions are
    /// taken to be the libnrt functions of their names. When the file defines symbol
    /// versions, `nrta_*` functions are taken only from version `NRT_3.0.0` (see
    /// [Symbol versions](Library#symbol-versions)).
    ///
    /// # Errors
    ///
    /// [`LoadError`] with the dynamic loader's message when the file cannot be opened.
    /// Missing functions are not an error: their table entries are `None`.
    pub fn open(path: impl AsRef<Path>) -> Result<&'static Library, LoadError> {
        Self::open_from(path.as_ref(), "explicit path").map_err(|a| LoadError { attempts: vec![a] })
    }

    /// Finds libnrt the default way: the file named by `LIBNRT_PATH` if that variable is
    /// set (and only that file: a configured path that fails to load is an error, not a
    /// reason to pick some other libnrt), otherwise each of [`DEFAULT_PLACES`] in order.
    /// The library found is opened as by [`Library::open`].
    ///
    /// # Errors
    ///
    /// [`LoadError`] listing every place tried with the loader's message for each.
    pub fn open_default() -> Result<&'static Library, LoadError> {
        if let Some(path) = std::env::var_os(LIBNRT_PATH_VAR).filter(|p| !p.is_empty()) {
            return Self::open_from(Path::new(&path), "LIBNRT_PATH")
                .map_err(|a| LoadError { attempts: vec![a] });
        }
        let mut attempts = Vec::new();
        for place in DEFAULT_PLACES {
            match Self::open_from(Path::new(place), "default search") {
                Ok(lib) => return Ok(lib),
                Err(a) => attempts.push(a),
            }
        }
        Err(LoadError { attempts })
    }

    fn open_from(path: &Path, source: &'static str) -> Result<&'static Library, Attempt> {
        let mut opened = opened();
        let origin = Origin::Path(path.to_path_buf());
        if let Some(lib) = opened.iter().find(|l| l.origin == origin) {
            return Ok(lib);
        }
        let handle = Handle::open(path).map_err(|e| Attempt {
            place: path.display().to_string(),
            source,
            error: error_chain(&e),
        })?;
        // Why the lookup below is sound: loading the library trusts it (see `Library`):
        // each name of the table that it exports (for `nrta_*` in a versioned library:
        // under NRT_3.0.0) is the libnrt function of that name, with the C signature of
        // the headers. The handle is kept in the leaked Library, so the addresses stay
        // valid for the process.
        // SAFETY: the conditions just above hold for every entry.
        let fns = unsafe { NrtFns::from_lookup(|name| handle.table_entry(name)) };
        let lib: &'static Library = Box::leak(Box::new(Library {
            fns,
            origin,
            source: Source::Loaded(handle),
        }));
        opened.push(lib);
        Ok(lib)
    }

    /// Wraps a table of in-process functions (for example the simulator's), under a
    /// `name` that [`Library::origin`] reports.
    ///
    /// `extra_lookup` answers [`Library::symbol`] for names outside the table (e.g. a
    /// simulator's control functions, or symbols of an older API that the table cannot
    /// hold); without it only the table's names are known.
    ///
    /// Every call makes a new library (one small allocation that lives for the rest of
    /// the process): keep the reference rather than calling again. Names are labels,
    /// never keys: a table registered under a name cannot stand in for another library
    /// of that name (`nrt_sim::library()` keeps its own).
    ///
    /// Building a library by hand is `unsafe`: safe code using it (the `neuron-rt` crate)
    /// calls whatever the table holds and trusts what it returns.
    ///
    /// ```compile_fail,E0133
    /// // A forged table cannot be wrapped without `unsafe`.
    /// let lib = nrt_sys::Library::in_process("forged", nrt_sys::NrtFns::default(), None);
    /// ```
    ///
    /// # Safety
    ///
    /// * Every `Some` entry of `fns` is a function that behaves as the libnrt function of
    ///   that name (its C signature in the headers, its contract in `nrt-abi.md`: what it
    ///   writes through the pointers it is given, and that what it returns, such as the
    ///   string of `nrt_get_status_as_str` or the handles it creates, is valid as libnrt's
    ///   is). It must stay callable for the rest of the process, from any thread.
    /// * `extra_lookup`, for any name, returns null or the address of a function that
    ///   behaves as the function of that name in the library the table stands for:
    ///   libnrt's for libnrt names (including ones of older APIs, such as
    ///   `nrta_error_tracker_create`), nrt-sim's for its `nrt_sim_*` control functions.
    ///   Those addresses also stay valid for the rest of the process, on any thread.
    pub unsafe fn in_process(
        name: &'static str,
        fns: NrtFns,
        extra_lookup: Option<SymbolLookup>,
    ) -> &'static Library {
        Box::leak(Box::new(Library {
            fns,
            origin: Origin::InProcess(name),
            source: Source::InProcess(extra_lookup),
        }))
    }

    /// The function table.
    pub fn fns(&self) -> &NrtFns {
        &self.fns
    }

    /// Where the functions come from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether the library was opened from a file that defines ELF symbol versions, so
    /// that its `nrta_*` entries were taken from version `NRT_3.0.0` only. Always false
    /// for in-process tables, and on platforms other than glibc Linux.
    pub fn defines_symbol_versions(&self) -> bool {
        match &self.source {
            Source::Loaded(handle) => handle.defines_versions(),
            Source::InProcess(_) => false,
        }
    }

    /// Whether [`Library::symbol`] finds `name`.
    pub fn has_symbol(&self, name: &CStr) -> bool {
        self.symbol(name).is_some()
    }

    /// The address of an exported symbol, in or outside the table; `None` when absent.
    ///
    /// * A name of the table ([`NrtFns::NAMES`]) gives exactly the table's entry: for
    ///   `nrta_*` names in a library that defines symbol versions, the `NRT_3.0.0`
    ///   definition or `None`; for an in-process table, its entry even when the extra
    ///   lookup knows the name.
    /// * Any other name gives the default-version definition (`dlsym`), or the extra
    ///   lookup's answer for an in-process table. That includes `nrta_*` names outside the
    ///   table, such as `nrta_error_tracker_create`, the marker of the async v2 API: it
    ///   is found whatever version node it is exported under.
    ///
    /// Calling through the address needs its real C type: that is the caller's
    /// responsibility (the address itself is harmless).
    pub fn symbol(&self, name: &CStr) -> Option<*mut c_void> {
        let in_table = self.fns.addresses().into_iter().find(|(n, _)| *n == name);
        let ptr = match (in_table, &self.source) {
            (Some((_, entry)), _) => entry,
            (None, Source::Loaded(handle)) => handle.plain(name),
            (None, Source::InProcess(Some(lookup))) => lookup(name),
            (None, Source::InProcess(None)) => std::ptr::null_mut(),
        };
        (!ptr.is_null()).then_some(ptr)
    }
}

/// `e` and all its sources, joined: libloading keeps dlerror's text in the source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_reports_the_path_and_loader_message() {
        let err = Library::open("/nonexistent/dir/libnrt.so.1").unwrap_err();
        assert_eq!(err.attempts.len(), 1);
        assert_eq!(err.attempts[0].place, "/nonexistent/dir/libnrt.so.1");
        assert_eq!(err.attempts[0].source, "explicit path");
        assert!(err.attempts[0].error.contains("No such file"), "{err}");
        assert!(err.to_string().contains("/nonexistent/dir/libnrt.so.1"));
    }

    #[test]
    fn in_process_tables_are_never_shared_by_name() {
        fn lookup(name: &CStr) -> *mut c_void {
            if name == c"extra_sym" {
                lookup as *mut c_void
            } else {
                std::ptr::null_mut()
            }
        }
        // SAFETY: the table is empty, and the lookup answers one name that no code calls.
        let a = unsafe { Library::in_process("unit-test-empty", NrtFns::default(), Some(lookup)) };
        // SAFETY: an empty table and no lookup: nothing can be called.
        let b = unsafe { Library::in_process("unit-test-empty", NrtFns::default(), None) };
        assert!(
            !std::ptr::eq(a, b),
            "a second table with the same name is a new library"
        );
        assert!(a.has_symbol(c"extra_sym"));
        assert!(!b.has_symbol(c"extra_sym"));
        assert!(!a.has_symbol(c"nrt_init"));
        assert!(!a.defines_symbol_versions());
        assert_eq!(a.origin(), &Origin::InProcess("unit-test-empty"));
    }

    #[test]
    fn table_names_answer_with_the_table_entry_not_the_extra_lookup() {
        unsafe extern "C" fn close() {}
        fn lookup(name: &CStr) -> *mut c_void {
            // Knows nrt_init, which the table below lacks.
            if name == c"nrt_init" {
                lookup as *mut c_void
            } else {
                std::ptr::null_mut()
            }
        }
        let fns = NrtFns {
            nrt_close: Some(close),
            ..NrtFns::default()
        };
        // SAFETY: `close` does what nrt_close may do (nothing, for a runtime never
        // opened); the lookup's one answer is never called (has_symbol only).
        let lib = unsafe { Library::in_process("unit-test-close", fns, Some(lookup)) };
        assert_eq!(lib.symbol(c"nrt_close"), Some(close as *mut c_void));
        assert!(!lib.has_symbol(c"nrt_init"), "the table has no nrt_init");
    }
}
