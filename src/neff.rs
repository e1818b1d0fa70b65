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

impl From<DType> for crate::DType {
    fn from(d: DType) -> crate::DType {
        match d {
            DType::F16 => crate::DType::F16,
            DType::BF16 => crate::DType::BF16,
            DType::F32 => crate::DType::F32,
            DType::I8 => crate::DType::I8,
            DType::U8 => crate::DType::U8,
            DType::I16 => crate::DType::I16,
            DType::U16 => crate::DType::U16,
            DType::I32 => crate::DType::I32,
            DType::U32 => crate::DType::U32,
            DType::I64 => crate::DType::I64,
            DType::U64 => crate::DType::U64,
            // `neuron_neff::DType` is non-exhaustive: a dtype added there later.
            _ => crate::DType::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn every_neff_dtype_has_the_runtime_dtype_of_the_same_size() {
        for d in DType::ALL {
            let rt = crate::DType::from(d);
            assert_ne!(rt, crate::DType::Unknown, "{d}");
            assert_eq!(rt.size_in_bytes(), Some(d.size()), "{d}");
        }
    }
}
