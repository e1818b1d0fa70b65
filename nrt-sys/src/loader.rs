//! Run-time loading of libnrt.

use crate::NrtFns;
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
/// Libraries are opened once per path and stay loaded for the life of the process
/// (the functions of a library must not disappear while any handle could call them),
/// so every constructor returns `&'static Library`.
pub struct Library {
    fns: NrtFns,
    origin: Origin,
    handle: Option<libloading::Library>,
    extra_lookup: Option<SymbolLookup>,
}

/// Finds an in-process symbol by name; null when absent.
pub type SymbolLookup = fn(&CStr) -> *mut c_void;

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present = self.fns.presence().iter().filter(|(_, p)| *p).count();
        f.debug_struct("Library")
            .field("origin", &self.origin)
            .field("functions", &format_args!("{present} of {}", NrtFns::LEN))
            .finish()
    }
}

/// Every library handed out so far. Held while opening, so that opening is
/// thread-safe and happens once per path.
static REGISTRY: Mutex<Vec<&'static Library>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<&'static Library>> {
    // A panic while the lock was held cannot leave the Vec inconsistent (push is the
    // only mutation), so a poisoned lock is still usable.
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

impl Library {
    /// Opens the library at `path` (a file path, or a bare name for the dynamic
    /// linker's search path). Opening the same path again returns the same library.
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
        let mut reg = registry();
        let origin = Origin::Path(path.to_path_buf());
        if let Some(lib) = reg.iter().find(|l| l.origin == origin) {
            return Ok(lib);
        }
        // Loading a library runs its initialisers; the user chose this library by path
        // or environment, and libnrt's (and the simulator's) may run in any thread.
        // SAFETY: as above: nothing but the library's own initialisers runs here.
        let handle =
            unsafe { libloading::Library::new(path.as_os_str()) }.map_err(|e| Attempt {
                place: path.display().to_string(),
                source,
                error: error_chain(&e),
            })?;
        // SAFETY: libnrt exports each name in the table as the function its headers
        // declare; the handle is kept in the leaked Library, so the addresses stay valid
        // for the life of the process.
        let fns = unsafe { NrtFns::from_lookup(|name| symbol_address(&handle, name)) };
        let lib: &'static Library = Box::leak(Box::new(Library {
            fns,
            origin,
            handle: Some(handle),
            extra_lookup: None,
        }));
        reg.push(lib);
        Ok(lib)
    }

    /// Wraps a table of in-process functions (for example the simulator's), under a
    /// `name` that [`Library::origin`] reports. The first table registered under a name
    /// is kept: a later call with the same name returns it.
    ///
    /// `extra_lookup` answers [`Library::symbol`] for names outside the table (e.g. a
    /// simulator's control functions, or symbols of an older API that the table cannot
    /// hold); without it only the table's names are known.
    pub fn in_process(
        name: &'static str,
        fns: NrtFns,
        extra_lookup: Option<SymbolLookup>,
    ) -> &'static Library {
        let mut reg = registry();
        let origin = Origin::InProcess(name);
        if let Some(lib) = reg.iter().find(|l| l.origin == origin) {
            return lib;
        }
        let lib: &'static Library = Box::leak(Box::new(Library {
            fns,
            origin,
            handle: None,
            extra_lookup,
        }));
        reg.push(lib);
        lib
    }

    /// The function table.
    pub fn fns(&self) -> &NrtFns {
        &self.fns
    }

    /// Where the functions come from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether the library exports `name`, including symbols that are not in the table
    /// (e.g. `nrta_error_tracker_create`, which marks an async-v2 library).
    pub fn has_symbol(&self, name: &CStr) -> bool {
        if let Some((_, present)) = self.fns.presence().iter().find(|(n, _)| *n == name) {
            return *present;
        }
        self.symbol(name).is_some()
    }

    /// The address of any exported symbol, in or outside the table; `None` when absent.
    ///
    /// Calling through the address needs its real C type: that is the caller's
    /// responsibility (the address itself is harmless).
    pub fn symbol(&self, name: &CStr) -> Option<*mut c_void> {
        let ptr = match (&self.handle, self.extra_lookup) {
            (Some(handle), _) => symbol_address(handle, name),
            (None, Some(lookup)) => lookup(name),
            (None, None) => std::ptr::null_mut(),
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

/// The address of `name` in `handle`, or null when it is not exported.
fn symbol_address(handle: &libloading::Library, name: &CStr) -> *mut c_void {
    // SAFETY: the symbol is only read as an address, never called here; whoever
    // calls through it relies on the libnrt headers for its type.
    match unsafe { handle.get::<*mut c_void>(name.to_bytes_with_nul()) } {
        Ok(sym) => *sym,
        Err(_) => std::ptr::null_mut(),
    }
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
    fn in_process_tables_are_registered_once_per_name() {
        fn lookup(name: &CStr) -> *mut c_void {
            if name == c"extra_sym" {
                lookup as *mut c_void
            } else {
                std::ptr::null_mut()
            }
        }
        let a = Library::in_process("unit-test-empty", NrtFns::default(), Some(lookup));
        let b = Library::in_process("unit-test-empty", NrtFns::default(), None);
        assert!(std::ptr::eq(a, b));
        assert!(a.has_symbol(c"extra_sym"));
        assert!(!a.has_symbol(c"nrt_init"));
        assert_eq!(a.origin(), &Origin::InProcess("unit-test-empty"));
    }
}
