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
