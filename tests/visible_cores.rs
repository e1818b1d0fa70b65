//! `RuntimeBuilder::visible_cores` sets `NEURON_RT_VISIBLE_CORES` for `nrt_init`, and is
//! refused while a runtime is up. In its own test binary, as it changes the environment.

mod support;

use neuron_rt::{Error, Runtime};

#[test]
fn visible_cores_restricts_the_runtime_and_is_refused_while_one_is_up() {
    let _g = support::lock();
    // SAFETY: this binary has one test, and it does not touch the environment from
    // another thread during these calls.
    let builder = unsafe { Runtime::builder().visible_cores(1..=1) }.unwrap();
    assert_eq!(std::env::var("NEURON_RT_VISIBLE_CORES").unwrap(), "1");
    let rt = builder.library(support::sim()).build().unwrap();
    assert_eq!(rt.visible_core_count().unwrap(), 1);
    assert!(rt.total_core_count().unwrap() >= 2);
    // SAFETY: as above.
    let err = unsafe { Runtime::builder().visible_cores(0..=1) }.unwrap_err();
    assert!(matches!(err, Error::AlreadyInitialized), "{err}");
    assert_eq!(std::env::var("NEURON_RT_VISIBLE_CORES").unwrap(), "1");
    drop(rt);

    // SAFETY: as above.
    let builder = unsafe { Runtime::builder().visible_cores(0..=1) }.unwrap();
    assert_eq!(std::env::var("NEURON_RT_VISIBLE_CORES").unwrap(), "0-1");
    let rt = builder.library(support::sim()).build().unwrap();
    assert_eq!(rt.visible_core_count().unwrap(), 2);
    drop(rt);

    // Cores 3 and 4 of an 8-core machine are this process's cores 0 and 1: a load on
    // core 3 fails, and the error leads with why.
    // SAFETY: as above.
    unsafe { std::env::set_var("NRT_SIM_VNC_COUNT", "8") };
    // SAFETY: as above.
    let builder = unsafe { Runtime::builder().visible_cores(3..=4) }.unwrap();
    let rt = builder.library(support::sim()).build().unwrap();
    assert_eq!(rt.visible_core_count().unwrap(), 2);
    let err = rt.load_model_on(&support::add_model(), 3).unwrap_err();
    let cause = err.cause().unwrap_or_else(|| panic!("no cause in {err}"));
    assert_eq!(
        cause,
        "core 3 does not exist: 2 NeuronCores are visible (cores 0-1); core indices count from the first visible core: with NEURON_RT_VISIBLE_CORES=\"3-4\" physical core 3 is core 0 of this process (cores 0-1)"
    );
    assert!(
        err.to_string()
            .contains(&format!("core 3: {cause} (libnrt: ")),
        "{err}"
    );
    rt.load_model_on(&support::add_model(), 0).unwrap();
    drop(rt);
    // SAFETY: as above.
    unsafe { std::env::remove_var("NRT_SIM_VNC_COUNT") };

    #[allow(clippy::reversed_empty_ranges)]
    // SAFETY: as above.
    let err = unsafe { Runtime::builder().visible_cores(3..=2) }.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "cores", reason } if reason.contains("3..=2")),
        "{err}"
    );
    support::assert_no_leaks();
}
