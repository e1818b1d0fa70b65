//! What the crate logs through the `log` facade (nothing is printed unless the
//! application installs a logger): runtime start and model loads at `info`; execution
//! units, retries and diagnosis findings at `debug`.

use super::model::Model;
use super::runtime::Runtime;

/// `info`: the library, its version and the cores it offers; returns `rt`.
pub(crate) fn runtime_started(rt: Runtime) -> Runtime {
    if !log::log_enabled!(log::Level::Info) {
        return rt;
    }
    let version = rt
        .version()
        .map_or_else(|_| "unknown".to_owned(), |v| v.to_string());
    let visible = rt
        .visible_core_count()
        .map_or_else(|_| "unknown".to_owned(), |n| n.to_string());
    log::info!(
        "Neuron runtime started: libnrt {version} from {}, {visible} NeuronCore(s) visible",
        rt.library().origin()
    );
    rt
}

/// `info`: the model, its core and the sizes of its inputs and outputs; returns `model`.
pub(crate) fn model_loaded(model: Model) -> Model {
    let total = |infos: &[super::model::TensorInfo]| infos.iter().map(|i| i.size).sum::<usize>();
    log::info!(
        "model `{}` loaded on {}: {} input(s), {} bytes; {} output(s), {} bytes",
        model.label(),
        crate::diagnose::hints::place(model.core()),
        model.inputs().len(),
        total(model.inputs()),
        model.outputs().len(),
        total(model.outputs())
    );
    model
}
