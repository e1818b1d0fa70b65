//! `Model::run` (named host data in, named outputs out, sets reused) and
//! `Model::benchmark` (host-timed statistics).

mod support;

use std::time::Duration;

use neuron_rt::{BenchmarkStats, DType, Error, ErrorKind, GivenInput, Input, inputs};
use support::{add_model, control, lock, runtime};

#[test]
fn run_takes_named_inputs_and_returns_named_outputs_reusing_its_sets() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let out = model
        .run(&inputs!["a" => &a, "b" => &[10.0f32; 6]])
        .unwrap();
    assert_eq!(out.iter().map(|o| o.name()).collect::<Vec<_>>(), ["out"]);
    assert_eq!(
        out["out"].as_slice::<f32>().unwrap(),
        [11.0, 12.0, 13.0, 14.0, 15.0, 16.0]
    );
    assert_eq!(
        (out["out"].dtype(), out["out"].shape()),
        (DType::F32, &[2, 3][..])
    );
    let live = control().counters().live_objects();
    for i in 0..3 {
        let b = vec![i as f32; 6];
        let out = model.run(&inputs!["b" => &b, "a" => &a]).unwrap();
        assert_eq!(out["out"].to_vec::<f32>().unwrap()[0], 1.0 + i as f32);
    }
    // The second and later runs allocate nothing new.
    assert_eq!(control().counters().live_objects(), live);
}

#[test]
fn run_refuses_missing_extra_and_mistyped_inputs() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let six = [1.0f32; 6];
    let err = model.run(&inputs!["a" => &six]).unwrap_err();
    assert!(
        matches!(&err, Error::MissingInput(m)
            if m.model == "add" && m.input == "b" && m.dtype == DType::F32 && m.shape == [2, 3] && m.given == ["a"]),
        "{err}"
    );
    // Names what was given, and no tensor set (the caller made none).
    assert_eq!(
        err.to_string(),
        "model `add`: input `b` (f32 [2, 3]) is not given (given: a)"
    );
    let err = model.run(&[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `add`: input `a` (f32 [2, 3]) is not given (given: none)"
    );
    let err = model
        .run(&inputs!["a" => &six, "b" => &six, "c" => &six])
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTensor { role: "input", tensor, known, .. } if tensor == "c" && known == &["a", "b"]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "model `add` has no input `c` (its inputs: a, b)"
    );
    let err = model.run(&inputs!["a" => &six, "a" => &six]).unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateInput { model, input } if model == "add" && input == "a"),
        "{err}"
    );
    assert_eq!(err.to_string(), "model `add`: input `a` is given twice");
    let err = model
        .run(&inputs!["a" => &six[..5], "b" => &six])
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InputMismatch(m) if m.model == "add" && m.input == "a" && m.dtype == DType::F32
                && m.shape == [2, 3] && m.size == 24 && m.given == GivenInput::Elements(5)
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "model `add`: input `a` expects f32 [2, 3] (6 elements), got 5 elements"
    );
    let err = model
        .run(&inputs!["a" => &[1i32; 6], "b" => &six])
        .unwrap_err();
    assert!(
        matches!(&err, Error::InputMismatch(m) if m.given == GivenInput::ElementType("i32")),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "model `add`: input `a` expects f32 [2, 3] (6 elements), got i32 values"
    );
    let err = model
        .run(&[
            ("a", Input::from(&six).with_shape(&[3, 2])),
            ("b", Input::from(&six)),
        ])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "model `add`: input `a` expects f32 [2, 3] (6 elements), got values of shape [3, 2]"
    );
    let err = model
        .run(&[("a", Input::bytes(&[0; 20])), ("b", Input::from(&six))])
        .unwrap_err();
    assert!(
        matches!(&err, Error::InputMismatch(m) if m.given == GivenInput::Bytes(20)),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "model `add`: input `a` expects f32 [2, 3] (24 bytes), got 20 bytes"
    );
    // Every one of them is the caller's mistake.
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // A failed run leaves the model usable.
    let out = model.run(&inputs!["a" => &six, "b" => &six]).unwrap();
    assert_eq!(out["out"].as_slice::<f32>().unwrap(), [2.0; 6]);
}

#[test]
fn benchmark_reports_consistent_statistics() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model(&add_model()).unwrap();
    let stats = model.benchmark(3, 25).unwrap();
    assert_eq!(stats.iterations, 25);
    assert!(stats.min <= stats.p50 && stats.p50 <= stats.p99 && stats.p99 <= stats.max);
    assert!(stats.min <= stats.mean && stats.mean <= stats.max);
    assert!(stats.throughput > 0.0);
    let err = model.benchmark(0, 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "iterations",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn statistics_of_known_durations() {
    let us = Duration::from_micros;
    let times: Vec<Duration> = (1..=100).map(us).collect();
    let s = BenchmarkStats::from_durations(&times).unwrap();
    assert_eq!((s.iterations, s.min, s.max), (100, us(1), us(100)));
    assert_eq!((s.p50, s.p99), (us(50), us(99)));
    assert_eq!(s.mean, Duration::from_nanos(50_500));
    // Population standard deviation of 1..=100 us: sqrt((100^2 - 1) / 12) = 28.866 us.
    assert_eq!(s.std_dev.as_nanos(), 28_866);
    assert!((s.throughput - 100.0 / 0.00505).abs() < 1e-6);
    assert_eq!(BenchmarkStats::from_durations(&[]), None);
    let one = BenchmarkStats::from_durations(&[us(7)]).unwrap();
    assert_eq!(
        (one.p50, one.p99, one.std_dev),
        (us(7), us(7), Duration::ZERO)
    );
}
