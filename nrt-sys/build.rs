//! Build script of nrt-sys.
//!
//! * Feature `bindgen`: regenerate the bindings from C headers (ours in `include/`, or the
//!   folder named by `LIBNRT_INCLUDE_DIR`) into `OUT_DIR`, and compile those instead of the
//!   committed copies in `src/bindings/`. With `NRT_SYS_BLESS=1` the fresh files are also
//!   written over the committed ones (that is how the committed copies are made).
//! * Feature `link`: link libnrt at build time (feature `linked` only declares the functions).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nrt_sys_generated)");
    println!("cargo::rustc-check-cfg=cfg(nrt_sys_foreign_headers)");

    #[cfg(feature = "bindgen")]
    generate::run();

    if env::var_os("CARGO_FEATURE_LINK").is_some() {
        println!("cargo::rerun-if-env-changed=LIBNRT_LIB_DIR");
        let dir = env::var_os("LIBNRT_LIB_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/aws/neuron/lib"));
        println!("cargo::rustc-link-search=native={}", dir.display());
        println!("cargo::rustc-link-lib=dylib=nrt");
        println!("cargo::rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }
}

#[cfg(feature = "bindgen")]
mod generate {
    use proc_macro2::TokenStream;
    use quote::quote;
    use std::env;
    use std::fs;
    use std::path::{Path, PathBuf};

    /// Every public header, in the order a C user would include them.
    const HEADERS: &[&str] = &[
        "nrt/nrt_status.h",
        "nrt/nrt.h",
        "nrt/nrt_version.h",
        "nrt/nrt_experimental.h",
        "nrt/nrt_async.h",
        "nrt/nrt_profile.h",
        "nrt/nrt_sys_trace.h",
        "nrt/ndebug_stream.h",
        "nrt/nrt_async_sendrecv.h",
    ];

    pub fn run() {
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
        println!("cargo::rerun-if-env-changed=LIBNRT_INCLUDE_DIR");
        println!("cargo::rerun-if-env-changed=NRT_SYS_BLESS");
        let foreign = env::var_os("LIBNRT_INCLUDE_DIR").map(PathBuf::from);
        let include = foreign.clone().unwrap_or_else(|| manifest.join("include"));
        println!("cargo::rerun-if-changed={}", include.display());
        for h in HEADERS {
            println!("cargo::rerun-if-changed={}", include.join(h).display());
        }
        println!(
            "cargo::rerun-if-changed={}",
            include
                .join("ndl/neuron_driver_shared_tensor_batch_op.h")
                .display()
        );

        check_layout(&include, foreign.is_some());
        let files = generate(&include);
        let out = PathBuf::from(env::var("OUT_DIR").unwrap());
        for (name, text) in &files {
            fs::write(out.join(name), text).unwrap();
        }
        println!("cargo::rustc-cfg=nrt_sys_generated");
        if foreign.is_some() {
            println!("cargo::rustc-cfg=nrt_sys_foreign_headers");
        } else if env::var_os("NRT_SYS_BLESS").is_some_and(|v| v == "1") {
            for (name, text) in &files {
                fs::write(manifest.join("src/bindings").join(name), text).unwrap();
            }
        }
    }

    /// Stops the build with a plain message (no panic, no backtrace) when a header is
    /// missing from `include`.
    fn check_layout(include: &Path, foreign: bool) {
        const NDL: &str = "ndl/neuron_driver_shared_tensor_batch_op.h";
        let missing: Vec<&str> = HEADERS
            .iter()
            .copied()
            .chain([NDL])
            .filter(|h| !include.join(h).is_file())
            .collect();
        if missing.is_empty() {
            return;
        }
        let origin = if foreign {
            "LIBNRT_INCLUDE_DIR"
        } else {
            "nrt-sys/include (LIBNRT_INCLUDE_DIR is not set)"
        };
        eprintln!(
            "error: feature `bindgen` needs the libnrt C headers, and {} ({origin}) lacks: {}\n\
             Set LIBNRT_INCLUDE_DIR to the folder that holds nrt/nrt.h, nrt/nrt_status.h, \
             nrt/nrt_version.h, nrt/nrt_experimental.h, nrt/nrt_async.h, nrt/nrt_profile.h, \
             nrt/nrt_sys_trace.h, nrt/ndebug_stream.h, nrt/nrt_async_sendrecv.h and {NDL} \
             (on a Neuron instance: LIBNRT_INCLUDE_DIR=/opt/aws/neuron/include), or build \
             without feature `bindgen` to use the committed bindings.",
            include.display(),
            missing.join(", ")
        );
        std::process::exit(1);
    }

    /// Runs bindgen once over all headers and splits the result into
    /// `types.rs` (types and constants), `functions.rs` (the `extern "C"` block, used
    /// with the `link` feature) and `table.rs` (the loader's function table). The table
    /// is derived from bindgen's own declarations, so each C signature is written once.
    fn generate(include: &Path) -> Vec<(&'static str, String)> {
        let wrapper: String = HEADERS
            .iter()
            .map(|h| format!("#include \"{h}\"\n"))
            .collect();
        let bindings = bindgen::Builder::default()
            .header_contents("nrt_sys_all.h", &wrapper)
            .clang_arg(format!("-I{}", include.display()))
            .allowlist_file(r".*[/\\](nrt|ndl)[/\\][^/\\]*\.h")
            .default_enum_style(bindgen::EnumVariation::Consts)
            .prepend_enum_name(false)
            .derive_default(true)
            .derive_debug(true)
            .layout_tests(true)
            .rust_edition(bindgen::RustEdition::Edition2024)
            .generate()
            .expect("bindgen failed on the libnrt headers");
        let file: syn::File =
            syn::parse_str(&bindings.to_string()).expect("bindgen output does not parse");

        let mut types = Vec::new();
        let mut functions = Vec::new();
        for item in file.items {
            match item {
                syn::Item::ForeignMod(m) => {
                    for fi in m.items {
                        match fi {
                            syn::ForeignItem::Fn(f) => functions.push(f),
                            other => panic!("unexpected foreign item: {}", quote!(#other)),
                        }
                    }
                }
                other => types.push(other),
            }
        }
        functions.sort_by_key(|f| f.sig.ident.to_string());

        let header = "// Generated by nrt-sys/build.rs from the C headers with bindgen. Do not edit:\n\
                      // change the headers and run `NRT_SYS_BLESS=1 cargo build -p nrt-sys --features bindgen`.\n\n";
        let types_file = syn::File {
            shebang: None,
            attrs: vec![],
            items: types,
        };
        let extern_block = quote! {
            unsafe extern "C" { #(#functions)* }
        };
        vec![
            (
                "types.rs",
                format!("{header}{}", prettyplease::unparse(&types_file)),
            ),
            ("functions.rs", format!("{header}{}", pretty(extern_block))),
            ("table.rs", format!("{header}{}", pretty(table(&functions)))),
        ]
    }

    fn pretty(tokens: TokenStream) -> String {
        prettyplease::unparse(&syn::parse2(tokens).expect("generated code does not parse"))
    }

    /// The function table: one optional pointer per function, a type alias per
    /// signature, the list of symbol names and a constructor from a symbol lookup.
    fn table(functions: &[syn::ForeignItemFn]) -> TokenStream {
        let names: Vec<_> = functions.iter().map(|f| f.sig.ident.clone()).collect();
        let name_strs: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cstrs: Vec<_> = name_strs
            .iter()
            .map(|n| {
                syn::LitCStr::new(
                    &std::ffi::CString::new(n.as_str()).unwrap(),
                    proc_macro2::Span::call_site(),
                )
            })
            .collect();
        let aliases: Vec<_> = functions
            .iter()
            .map(|f| {
                let name = &f.sig.ident;
                let inputs = &f.sig.inputs;
                let output = &f.sig.output;
                let doc = format!("Signature of `{name}`.");
                quote! {
                    #[doc = #doc]
                    pub type #name = unsafe extern "C" fn(#inputs) #output;
                }
            })
            .collect();
        let fields: Vec<_> = names
            .iter()
            .zip(&name_strs)
            .map(|(n, s)| {
                let doc = format!("`{s}`, or `None` when the library does not export it.");
                quote! { #[doc = #doc] pub #n: Option<fn_types::#n> }
            })
            .collect();
        let lookups: Vec<_> = names
            .iter()
            .zip(&cstrs)
            .map(|(n, c)| {
                quote! {
                    #n: {
                        let ptr = lookup(#c);
                        if ptr.is_null() {
                            None
                        } else {
                            // SAFETY: the caller promises that a non-null address returned for
                            // this name is a function with exactly this C signature.
                            Some(unsafe { ::core::mem::transmute::<*mut ::core::ffi::c_void, fn_types::#n>(ptr) })
                        }
                    }
                }
            })
            .collect();
        let presence: Vec<_> = names
            .iter()
            .zip(&cstrs)
            .map(|(n, c)| quote! { (#c, self.#n.is_some()) })
            .collect();
        let addresses: Vec<_> = names
            .iter()
            .zip(&cstrs)
            .map(|(n, c)| {
                quote! { (#c, self.#n.map_or(::core::ptr::null_mut(), |f| f as *mut ::core::ffi::c_void)) }
            })
            .collect();
        let count = names.len();
        let linked_fields: Vec<_> = names
            .iter()
            .map(|n| quote! { #n: Some(super::linked::#n) })
            .collect();
        quote! {
            /// The type of each libnrt function, named after the function.
            pub mod fn_types {
                use super::*;
                #(#aliases)*
            }

            /// One entry per libnrt function. A function the library does not export is
            /// `None`, so a table can describe an older or partial library without failing.
            #[derive(Clone, Copy, Debug, Default)]
            pub struct NrtFns {
                #(#fields,)*
            }

            impl NrtFns {
                /// Number of functions in the table.
                pub const LEN: usize = #count;

                /// Every symbol name in the table, sorted.
                pub const NAMES: [&'static ::core::ffi::CStr; #count] = [#(#cstrs),*];

                /// Fills the table by asking `lookup` for each symbol in [`NrtFns::NAMES`];
                /// a null answer leaves the entry `None`.
                ///
                /// # Safety
                ///
                /// Every non-null address `lookup` returns must be a function with the C
                /// signature that the headers declare for that name, and it must stay valid
                /// for as long as the table (or a copy of it) is used.
                pub unsafe fn from_lookup<F>(mut lookup: F) -> Self
                where
                    F: FnMut(&::core::ffi::CStr) -> *mut ::core::ffi::c_void,
                {
                    Self { #(#lookups,)* }
                }

                /// Each symbol name with whether the table has it.
                pub fn presence(&self) -> [(&'static ::core::ffi::CStr, bool); #count] {
                    [#(#presence),*]
                }

                /// Each symbol name with the address of its entry (null for `None`): the
                /// same order as [`NrtFns::NAMES`].
                pub fn addresses(&self) -> [(&'static ::core::ffi::CStr, *mut ::core::ffi::c_void); #count] {
                    [#(#addresses),*]
                }

                /// The table of the functions linked at build time (feature `linked` or `link`).
                #[cfg(feature = "linked")]
                pub fn linked() -> Self {
                    Self { #(#linked_fields,)* }
                }
            }
        }
    }
}
