//! What the crate logs through the `log` facade, captured by a logger written here.

mod support;

use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use neuron_rt::Placement;

static RECORDS: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        if record.target().starts_with("neuron_rt") {
            RECORDS
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn taken() -> Vec<(Level, String)> {
    std::mem::take(&mut *RECORDS.lock().unwrap())
}

fn find(records: &[(Level, String)], level: Level, start: &str) -> String {
    records
        .iter()
        .find(|(l, m)| *l == level && m.starts_with(start))
        .map(|(_, m)| m.clone())
        .unwrap_or_else(|| panic!("no {level} record starting {start:?} in {records:?}"))
}

#[test]
fn runtime_start_model_load_units_and_diagnosis_are_logged() {
    let _g = support::lock();
    log::set_logger(&Capture).unwrap();
    log::set_max_level(LevelFilter::Trace);

    let rt = support::runtime();
    let records = taken();
    let started = find(&records, Level::Info, "Neuron runtime started: libnrt ");
    assert!(started.ends_with(", 2 NeuronCore(s) visible"), "{started}");
    assert!(started.contains("libnrt_sim"), "{started}");

    let model = rt.load_model(&support::add_model()).unwrap();
    assert_eq!(
        find(&taken(), Level::Info, "model `add`"),
        "model `add` loaded on core 0: 2 input(s), 48 bytes; 1 output(s), 24 bytes"
    );

    let _unit = rt.compute_unit(0).unwrap();
    let unit = find(&taken(), Level::Debug, "execution unit created");
    assert!(unit.ends_with("queue 0 on core 0"), "{unit}");

    let _ = rt
        .allocate_tensor(Placement::Device, Some(9), 8, "x")
        .unwrap_err();
    let diag = find(
        &taken(),
        Level::Debug,
        "nrt_tensor_allocate failed; cause: core 9 does not exist",
    );
    assert!(diag.contains("; diagnosis: nrt-sim's reason: "), "{diag}");
    drop(model);
}
