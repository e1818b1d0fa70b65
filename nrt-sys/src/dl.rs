//! The dynamic loader under [`crate::Library`]: opening a file, plain lookups, and lookups
//! pinned to an ELF symbol version when the file defines versions.
//!
//! Symbol versions are read on glibc Linux only, the platform libnrt ships for (`dlvsym`
//! and `dlinfo` are glibc extensions). Elsewhere every library counts as unversioned.

use std::ffi::{CStr, c_void};
use std::path::Path;

/// The version node under which libnrt exports the async API v3 (`nrta_*`).
pub const ASYNC_V3_VERSION: &CStr = c"NRT_3.0.0";

/// An open shared library; never closed (its [`crate::Library`] is leaked).
pub(crate) struct Handle {
    lib: libloading::Library,
    /// `Some` when the file defines ELF symbol versions (a `DT_VERDEF` entry).
    versions: Option<imp::Versions>,
}

impl Handle {
    /// `dlopen`s `path`, running the library's initialisers.
    pub(crate) fn open(path: &Path) -> Result<Handle, libloading::Error> {
        // SAFETY: opening runs the library's initialisers. The caller chose this file by
        // path or environment: loading it trusts it (see the crate docs), and libnrt's
        // (and the simulator's) initialisers may run on any thread.
        let lib = unsafe { libloading::Library::new(path.as_os_str()) }?;
        let (lib, versions) = imp::Versions::of(lib);
        Ok(Handle { lib, versions })
    }

    /// Whether the file defines ELF symbol versions.
    pub(crate) fn defines_versions(&self) -> bool {
        self.versions.is_some()
    }

    /// The default-version definition of `name` (what `dlsym` finds), or null.
    pub(crate) fn plain(&self, name: &CStr) -> *mut c_void {
        // SAFETY: the symbol is only read as an address, never called here; whoever calls
        // through it relies on the contract of the library that exports it.
        match unsafe { self.lib.get::<*mut c_void>(name.to_bytes_with_nul()) } {
            Ok(sym) => *sym,
            Err(_) => std::ptr::null_mut(),
        }
    }

    /// The address the function table takes for `name`: in a library that defines symbol
    /// versions, an `nrta_*` name only as defined under [`ASYNC_V3_VERSION`]; every other
    /// name (and every name of an unversioned library) as [`Handle::plain`] finds it.
    pub(crate) fn table_entry(&self, name: &CStr) -> *mut c_void {
        match &self.versions {
            Some(v) if name.to_bytes().starts_with(b"nrta_") => v.lookup(name, ASYNC_V3_VERSION),
            _ => self.plain(name),
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::ffi::{CStr, c_char, c_void};

    /// The raw `dlopen` handle of a library that defines symbol versions.
    pub(crate) struct Versions(*mut c_void);

    // SAFETY: a dlopen handle is a process-wide token, not tied to the thread that opened
    // it; glibc's dlvsym is thread-safe; the library stays open for the life of the
    // process (the Handle holding it is never dropped while the handle is used).
    unsafe impl Send for Versions {}
    // SAFETY: as for Send: lookups through a shared handle are thread-safe.
    unsafe impl Sync for Versions {}

    impl Versions {
        /// `lib` back, with its raw handle when the file defines symbol versions.
        pub(crate) fn of(lib: libloading::Library) -> (libloading::Library, Option<Versions>) {
            let raw = libloading::os::unix::Library::from(lib).into_raw();
            // SAFETY: `raw` was returned by dlopen (through libloading) a moment ago and
            // has not been closed; from_raw takes the ownership that into_raw gave up.
            let lib = unsafe { libloading::os::unix::Library::from_raw(raw) }.into();
            let versions = defines_versions(raw).then_some(Versions(raw));
            (lib, versions)
        }

        /// `name` as defined under `version`, or null.
        pub(crate) fn lookup(&self, name: &CStr, version: &CStr) -> *mut c_void {
            // SAFETY: the handle is open (see Send); both arguments are C strings that
            // outlive the call. The result is only an address, not called here.
            unsafe { libc::dlvsym(self.0, name.as_ptr(), version.as_ptr()) }
        }
    }

    /// The public head of glibc's `struct link_map` (`<link.h>`); only `l_ld` is read,
    /// the others are here for the layout.
    #[allow(dead_code)]
    #[repr(C)]
    struct LinkMap {
        l_addr: usize,
        l_name: *const c_char,
        l_ld: *const Dyn,
        l_next: *const LinkMap,
        l_prev: *const LinkMap,
    }

    /// One entry of an ELF dynamic section (`ElfW(Dyn)`): a signed tag and a word (only
    /// the tag is read).
    #[allow(dead_code)]
    #[repr(C)]
    struct Dyn {
        d_tag: isize,
        d_un: usize,
    }

    const DT_NULL: isize = 0;
    const DT_VERDEF: isize = 0x6fff_fffc;

    /// Whether the object behind `raw` defines symbol versions: its dynamic section has a
    /// `DT_VERDEF` entry (what a linker version script produces). `DT_VERSYM` alone is not
    /// enough: any library that merely *uses* versioned glibc symbols has one (a Rust
    /// cdylib such as the simulator does), without defining any version of its own.
    fn defines_versions(raw: *mut c_void) -> bool {
        let mut map: *const LinkMap = std::ptr::null();
        // SAFETY: `raw` is an open dlopen handle; RTLD_DI_LINKMAP writes one
        // `struct link_map *` to the address given, which is `map`.
        let rc = unsafe { libc::dlinfo(raw, libc::RTLD_DI_LINKMAP, (&raw mut map).cast()) };
        if rc != 0 || map.is_null() {
            return false;
        }
        // SAFETY: glibc's link_map of a loaded object starts with the public fields of
        // LinkMap; the object stays loaded, and so does its link_map.
        let mut entry = unsafe { (*map).l_ld };
        if entry.is_null() {
            return false;
        }
        loop {
            // SAFETY: `l_ld` points to the object's dynamic section, which is mapped while
            // the object is loaded and ends with a DT_NULL entry; the loop stops there, so
            // every entry read is inside the section.
            match unsafe { (*entry).d_tag } {
                DT_NULL => return false,
                DT_VERDEF => return true,
                // SAFETY: not DT_NULL yet, so the next entry is still in the section.
                _ => entry = unsafe { entry.add(1) },
            }
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    use std::ffi::{CStr, c_void};

    /// Symbol versions are not read on this platform: no library has them.
    pub(crate) enum Versions {}

    impl Versions {
        pub(crate) fn of(lib: libloading::Library) -> (libloading::Library, Option<Versions>) {
            (lib, None)
        }

        pub(crate) fn lookup(&self, _name: &CStr, _version: &CStr) -> *mut c_void {
            match *self {}
        }
    }
}
