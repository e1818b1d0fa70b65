//! Reading NEFF files (compiled models) without loading them: the header (packaging
//! version, sizes, hash, cores, uuid, name), the compiler version and target, and the
//! signature, every input and output with its name, dtype, shape and byte size.
//!
//! This is the `neuron-neff` crate, re-exported; its dtypes convert to [`DType`]
//! (`DType::from(neff_dtype)`). The `neff-inspect` program of that crate prints the
//! same summary on the command line.
//!
//! ```
//! use neuron_rt::neff::{Neff, NeffWriter};
//!
//! // A NEFF in the compiler's format (a signature, no instructions), as tests make them;
//! // on a real model use `Neff::open("model.neff")`.
//! let bytes = NeffWriter::new("encoder.neff")
//!     .input("tokens", neuron_rt::neff::DType::I64, &[1, 128])
//!     .output("hidden", neuron_rt::neff::DType::BF16, &[1, 128, 768])
//!     .build()?;
//! let neff = Neff::parse(&bytes)?;
//! for t in neff.inputs().iter().chain(neff.outputs()) {
//!     let dtype = neuron_rt::DType::from(t.dtype);
//!     println!("{} {dtype:?} {:?} ({} bytes)", t.name, t.shape, t.byte_size);
//! }
//! assert_eq!(neuron_rt::DType::from(neff.outputs()[0].dtype), neuron_rt::DType::BF16);
//! assert_eq!(neff.cores(), 1);
//! # Ok::<(), neuron_rt::neff::NeffError>(())
//! ```
//!
//! With feature `sim`, the simulator loads such a file in *signature-only* mode: its
//! tensors exactly as the signature gives them, its core count honoured, and executions
//! that write documented synthetic bytes (`neuron_rt::sim::synthetic_output`), never
//! results. That checks a model's IO contract and the serving code around it without
//! hardware.
//!
#![cfg_attr(feature = "sim", doc = "```")]
#![cfg_attr(not(feature = "sim"), doc = "```ignore")]
//! use neuron_rt::Runtime;
//! use neuron_rt::neff::{DType, NeffWriter};
//!
//! let bytes = NeffWriter::new("encoder.neff")
//!     .input("tokens", DType::I64, &[1, 4])
//!     .output("hidden", DType::F32, &[1, 4])
//!     .build()?;
//! let runtime = Runtime::builder().simulator().build()?;
//! let model = runtime.load_model(&bytes)?;
//! assert_eq!(model.inputs()[0].dtype, neuron_rt::DType::I64);
//! let inputs = model.allocate_inputs()?;
//! let mut outputs = model.allocate_outputs()?;
//! model.execute(&inputs, &mut outputs)?;
//! let mut hidden = vec![0u8; 16]; // f32 [1, 4], read as bytes
//! outputs.get("hidden").unwrap().read_at(0, &mut hidden)?;
//! // Synthetic bytes, not results: the same for every run of the same model name,
//! // output index and execution number.
//! assert_eq!(hidden, neuron_rt::sim::synthetic_output("encoder.neff", 0, 0, 16));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use neuron_neff::{
    DType, HEADER_SIZE, Header, Limits, Neff, NeffError, NeffWriter, Packaging, ParseOptions,
    TensorSpec,
};
