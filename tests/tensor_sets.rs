//! Tensor sets: insert, replace, lookup, lifetime of the tensors in them, and bad names.

mod support;

use neuron_rt::{Error, Placement};
use support::{assert_no_leaks, control, lock, runtime};

#[test]
fn insert_get_replace_and_list() {
    let _g = lock();
    let rt = runtime();
    let mut set = rt.tensor_set().unwrap();
    assert!(set.is_empty());
    let a = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "a")
        .unwrap();
    let b = rt.allocate_tensor(Placement::Host, None, 4, "b").unwrap();
    assert!(set.insert("first", &a).unwrap().is_none());
    assert!(set.insert("second", &b).unwrap().is_none());
    assert_eq!(set.len(), 2);
    assert_eq!(set.names().collect::<Vec<_>>(), ["first", "second"]);
    assert!(set.contains("first") && !set.contains("third"));
    assert_eq!(set.get("first").unwrap().name(), "a");
    assert!(set.get("third").is_none());

    // Replacing by name returns the old tensor; the set now refers to the new one.
    let c = rt
        .allocate_tensor(Placement::Device, Some(0), 8, "c")
        .unwrap();
    c.write(&[42u64]).unwrap();
    let old = set.insert("first", &c).unwrap().unwrap();
    assert_eq!(old.name(), "a");
    assert_eq!(set.len(), 2);
    assert_eq!(set.get("first").unwrap().to_vec::<u64>().unwrap(), [42]);
    let listed: Vec<_> = set
        .iter()
        .map(|(n, t)| (n.to_owned(), t.name().to_owned()))
        .collect();
    assert_eq!(
        listed,
        [("first".into(), "c".into()), ("second".into(), "b".into())]
    );
    assert!(format!("{set:?}").contains("first"));
    assert_eq!(control().counters().tensor_sets, 1);
    drop(set);
    assert_eq!(control().counters().tensor_sets, 0);
}

#[test]
fn a_set_keeps_its_tensors_alive_and_frees_them_after_itself() {
    let _g = lock();
    let rt = runtime();
    let mut set = rt.tensor_set().unwrap();
    let t = rt
        .allocate_tensor(Placement::Device, Some(0), 16, "kept")
        .unwrap();
    t.write(&[3u32, 1, 4, 1]).unwrap();
    set.insert("kept", &t).unwrap();
    drop(t);
    assert_eq!(control().counters().cores[0].tensors, 1);
    assert_eq!(
        set.get("kept").unwrap().to_vec::<u32>().unwrap(),
        [3, 1, 4, 1]
    );
    drop(set);
    drop(rt);
    assert_no_leaks();
}

#[test]
fn bad_names_are_refused_and_leave_the_set_unchanged() {
    let _g = lock();
    let rt = runtime();
    let mut set = rt.tensor_set().unwrap();
    let t = rt.allocate_tensor(Placement::Host, None, 4, "t").unwrap();
    let err = set.insert("", &t).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "name", reason } if reason.contains("has 0")),
        "{err}"
    );
    let long = "n".repeat(256);
    let err = set.insert(&long, &t).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { argument: "name", reason } if reason.contains("1 to 255") && reason.contains("has 256")),
        "{err}"
    );
    let err = set.insert("a\0b", &t).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                argument: "name",
                ..
            }
        ),
        "{err}"
    );
    assert!(set.is_empty());
    // The longest allowed name works.
    set.insert(&"n".repeat(255), &t).unwrap();
    assert_eq!(set.len(), 1);
}

/// Sets remember the binding check they passed (so repeated executions skip the name
/// lookups); any change of a set, and any other model, checks again.
#[test]
fn a_set_that_changed_after_passing_a_binding_check_is_checked_again() {
    let _g = lock();
    let rt = runtime();
    let model = rt.load_model_on(&support::add_model(), 0).unwrap();
    let mut inputs = model.allocate_inputs().unwrap();
    let mut outputs = model.allocate_outputs().unwrap();
    for _ in 0..2 {
        model.execute(&inputs, &mut outputs).unwrap();
    }
    // A smaller tensor under an input's name: refused, although the set passed before.
    let small = rt
        .allocate_tensor(Placement::Device, Some(0), 20, "small")
        .unwrap();
    let old_b = inputs.insert("b", &small).unwrap().unwrap();
    let err = model.execute(&inputs, &mut outputs).unwrap_err();
    assert!(
        matches!(&err, Error::SizeMismatch { tensor, expected: 24, actual: 20, .. } if tensor == "b"),
        "{err}"
    );
    // The async path checks the same way.
    let unit = rt.compute_unit(0).unwrap();
    let rejected = unit.execute(&model, inputs, outputs).unwrap_err();
    assert!(
        matches!(rejected.error(), Error::SizeMismatch { .. }),
        "{rejected}"
    );
    let (mut inputs, mut outputs) = rejected.into_inner();
    // Put right again: passes again.
    inputs.insert("b", &old_b).unwrap();
    model.execute(&inputs, &mut outputs).unwrap();

    // The same sets with another model whose tensors differ: checked for that model.
    let other = rt
        .load_model_on(
            &nrt_sim::ModelBuilder::add_example(&[4]).build().unwrap(),
            0,
        )
        .unwrap();
    let err = other.execute(&inputs, &mut outputs).unwrap_err();
    assert!(matches!(&err, Error::SizeMismatch { .. }), "{err}");
    // Roles swapped (outputs as inputs): checked as such, refused (no `a`, `b` in it).
    let err = model.execute(&outputs, &mut inputs).unwrap_err();
    assert!(matches!(&err, Error::MissingTensor { .. }), "{err}");
    model.execute(&inputs, &mut outputs).unwrap();
    drop((inputs, outputs, model, other, old_b, small, unit, rt));
    assert_no_leaks();
}
