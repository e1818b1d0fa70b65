//! With `NRT_SIM_VERSION=2.31.24` (async v3 without completion events) staged pipelines
//! are woken by the crate's shared poller instead, blocking and async, with the same
//! results. In its own test binary: the variable is set before the simulator's first
//! `nrt_init`.

mod support;

use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use neuron_rt::{Capabilities, StagedPipeline};

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn a_2_31_runtime_drives_staged_pipelines_by_polling() {
    let _g = support::lock();
    // SAFETY: set while no other thread of this test binary touches the environment
    // (this binary has this one test).
    unsafe { std::env::set_var("NRT_SIM_VERSION", "2.31.24") };
    {
        let rt = support::runtime();
        assert!(!rt.capabilities().contains(Capabilities::ASYNC_EVENTS));
        let model = rt
            .load_model_on(&support::identity_model(Duration::from_millis(2)), 0)
            .unwrap();
        assert!(!rt.compute_unit(0).unwrap().has_events());
        let mut pipeline = StagedPipeline::new(&model).unwrap();
        let write = |job: &u32, inputs: &mut neuron_rt::HostInputs<'_>| {
            inputs.write("x", &[*job as f32; 4])
        };
        let read = |_: u32, outputs: &neuron_rt::HostOutputs<'_>| -> neuron_rt::Result<f32> {
            Ok(outputs.to_vec::<f32>("y")?[3])
        };
        let want: Vec<f32> = (0..20).map(|j| j as f32).collect();
        let got: Vec<f32> = pipeline
            .run(0..20u32, write, read)
            .collect::<neuron_rt::Result<_>>()
            .unwrap();
        assert_eq!(got, want);

        let mut stream = pipeline.run_async(0..20u32, write, read);
        let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        loop {
            let mut next = std::pin::pin!(stream.next());
            match next.as_mut().poll(&mut cx) {
                Poll::Ready(Some(item)) => got.push(item.unwrap()),
                Poll::Ready(None) => break,
                Poll::Pending => std::thread::park_timeout(Duration::from_secs(1)),
            }
        }
        assert_eq!(got, want);
    }
    support::assert_no_leaks();
}
