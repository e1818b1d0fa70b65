//! Feature `link`: libnrt linked at build time by this crate's build script. CI runs this
//! against the simulator: `LIBNRT_LIB_DIR=<folder with libnrt.so -> a copy of
//! libnrt_sim.so> cargo test -p neuron-rt --features link --test linked_runtime`.
#![cfg(feature = "link")]

use neuron_rt::{Placement, Runtime};

#[test]
fn a_runtime_on_the_linked_library_works() {
    let rt = Runtime::builder().linked().build().unwrap();
    assert!(rt.version().is_ok());
    assert!(rt.visible_core_count().unwrap() >= 1);
    assert_eq!(
        rt.library().origin().to_string(),
        "libnrt (linked at build time) (in process)"
    );
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "x")
        .unwrap();
    t.write(&[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 4.0]);
}
