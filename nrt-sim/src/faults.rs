//! Fault injection: the spec language and the process-wide list of armed faults.
//!
//! The language is documented in the crate docs and `nrt-sim/FAULTS.md`.

use crate::status;
use nrt_sys::*;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A fault spec could not be parsed: which fault, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpecError {
    /// The fault (one `;`-separated part of the spec) that is wrong.
    pub fault: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad fault {:?}: {}", self.fault, self.message)
    }
}

impl std::error::Error for FaultSpecError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Only the N-th matching event.
    Nth(u64),
    /// Every matching event after the first N.
    After(u64),
    /// Matching events N, 2N, 3N, ... (N >= 1).
    Every(u64),
    /// At once (xu only).
    Now,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Exec { vnc: Option<u32>, outputs: bool },
    Alloc { vnc: Option<u32> },
    Load { vnc: Option<u32> },
    Xu { vnc: u32, xu: nrta_xu_t, queue: u32 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Env,
    Api,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) kind: Kind,
    pub(crate) trigger: Trigger,
    pub(crate) status: NRT_STATUS,
    seen: u64,
    source: Source,
    /// The fault as written, for messages.
    text: String,
}

/// Queues per XU type (v3): TENSOR_OP 2, COMPUTE 1, COLLECTIVES 3.
pub(crate) fn queues_of(xu: nrta_xu_t) -> Option<u32> {
    match xu {
        NRTA_XU_TENSOR_OP => Some(2),
        NRTA_XU_COMPUTE => Some(1),
        NRTA_XU_COLLECTIVES => Some(3),
        _ => None,
    }
}

/// Parses a spec (see the module docs).
pub(crate) fn parse(spec: &str) -> Result<Vec<Fault>, FaultSpecError> {
    let mut faults = Vec::new();
    for part in spec
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let mut fault = parse_one(part).map_err(|message| FaultSpecError {
            fault: part.to_string(),
            message,
        })?;
        fault.text = part.to_string();
        faults.push(fault);
    }
    if faults.is_empty() {
        return Err(FaultSpecError {
            fault: spec.to_string(),
            message: "the spec contains no fault".into(),
        });
    }
    Ok(faults)
}

fn parse_one(part: &str) -> Result<Fault, String> {
    let mut fields = part.split(':');
    let kind = fields.next().unwrap_or_default();
    let mut vnc = None;
    let mut nth = None;
    let mut after = None;
    let mut every = None;
    let mut status = None;
    let mut outputs = None;
    let mut xu = None;
    let mut queue = None;
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("field {field:?} is not key=value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{key}={value:?} is not a non-negative integer"))
        };
        let small = || {
            number()
                .and_then(|v| u32::try_from(v).map_err(|_| format!("{key}={value} is too large")))
        };
        match key {
            "vnc" => vnc = Some(small()?),
            "nth" => {
                let n = number()?;
                if n == 0 {
                    return Err("nth counts from 1".into());
                }
                nth = Some(n);
            }
            "after" => after = Some(number()?),
            "every" => {
                let n = number()?;
                if n == 0 {
                    return Err(
                        "every=0: every counts from 1 (every=N fails events N, 2N, 3N, ...)".into(),
                    );
                }
                every = Some(n);
            }
            "status" => {
                let s = status::parse(value).ok_or_else(|| {
                    format!("status={value:?} is not a status number or NRT_* name")
                })?;
                if s == NRT_SUCCESS {
                    return Err("status=0 (NRT_SUCCESS) would not be a fault".into());
                }
                status = Some(s);
            }
            "outputs" => {
                outputs = Some(match value {
                    "yes" | "true" | "1" => true,
                    "no" | "false" | "0" => false,
                    _ => return Err(format!("outputs={value:?} is not yes or no")),
                })
            }
            "type" => {
                xu = Some(match value.to_ascii_lowercase().as_str() {
                    "tensor_op" | "0" => NRTA_XU_TENSOR_OP,
                    "compute" | "1" => NRTA_XU_COMPUTE,
                    "collectives" | "2" => NRTA_XU_COLLECTIVES,
                    _ => {
                        return Err(format!(
                            "type={value:?} is not tensor_op, compute or collectives"
                        ));
                    }
                })
            }
            "queue" => queue = Some(small()?),
            _ => return Err(format!("unknown field {key:?}")),
        }
        let applies = matches!(key, "vnc" | "nth" | "after" | "status")
            || (key == "every" && kind != "xu")
            || (kind == "exec" && key == "outputs")
            || (kind == "xu" && matches!(key, "type" | "queue"));
        if key == "every" && kind == "xu" {
            return Err(
                "field \"every\" does not apply to \"xu\" faults: the first one that fires makes the queue unrecoverable (use nth)"
                    .into(),
            );
        }
        if !applies {
            return Err(format!("field {key:?} does not apply to {kind:?} faults"));
        }
    }
    let trigger = match (nth, after, every) {
        (Some(n), None, None) => Trigger::Nth(n),
        (None, Some(n), None) => Trigger::After(n),
        (None, None, Some(n)) => Trigger::Every(n),
        (None, None, None) if kind == "xu" => Trigger::Now,
        (None, None, None) => Trigger::Nth(1),
        _ => return Err("give one of nth, after and every, not both".into()),
    };
    let (kind, default_status) = match kind {
        "exec" => {
            let s = status.unwrap_or(NRT_EXEC_COMPLETED_WITH_ERR);
            let completed = matches!(
                s,
                NRT_EXEC_COMPLETED_WITH_ERR | NRT_EXEC_COMPLETED_WITH_NUM_ERR
            );
            (
                Kind::Exec {
                    vnc,
                    outputs: outputs.unwrap_or(completed),
                },
                NRT_EXEC_COMPLETED_WITH_ERR,
            )
        }
        "alloc" => (Kind::Alloc { vnc }, NRT_RESOURCE),
        "load" => (Kind::Load { vnc }, NRT_RESOURCE),
        "xu" => {
            let vnc = vnc.ok_or("xu faults need vnc=N")?;
            let xu = xu.ok_or("xu faults need type=tensor_op|compute|collectives")?;
            let queue = queue.unwrap_or(0);
            let count = queues_of(xu).unwrap_or(0);
            if queue >= count {
                return Err(format!(
                    "queue={queue} does not exist: this XU type has queues 0 to {}",
                    count - 1
                ));
            }
            (Kind::Xu { vnc, xu, queue }, NRT_EXEC_UNIT_UNRECOVERABLE)
        }
        other => {
            return Err(format!(
                "unknown fault kind {other:?} (expected exec, alloc, load or xu)"
            ));
        }
    };
    Ok(Fault {
        kind,
        trigger,
        status: status.unwrap_or(default_status),
        seen: 0,
        source: Source::Api,
        text: String::new(),
    })
}

/// Refuses faults naming a core beyond the `visible` ones: they could never fire, and a
/// test relying on them would silently test nothing.
pub(crate) fn check_cores(faults: &[Fault], visible: u32) -> Result<(), String> {
    for f in faults {
        let vnc = match f.kind {
            Kind::Exec { vnc, .. } | Kind::Alloc { vnc } | Kind::Load { vnc } => vnc,
            Kind::Xu { vnc, .. } => Some(vnc),
        };
        if let Some(vnc) = vnc.filter(|&v| v >= visible) {
            return Err(format!(
                "fault {:?} names core {vnc}, but the runtime has {visible} visible core(s) (0 to {}): it could never fire",
                f.text,
                visible.saturating_sub(1)
            ));
        }
    }
    Ok(())
}

/// Armed faults, in the order they were armed.
static FAULTS: Mutex<Vec<Fault>> = Mutex::new(Vec::new());

fn faults() -> std::sync::MutexGuard<'static, Vec<Fault>> {
    // Every mutation leaves the Vec consistent, so a poisoned lock is still usable.
    FAULTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Arms faults given through the control API.
pub(crate) fn arm(new: Vec<Fault>) {
    faults().extend(new);
}

/// Replaces the faults from `NRT_SIM_FAULTS` with `new` (done by `nrt_init`).
pub(crate) fn arm_from_env(new: Vec<Fault>) {
    let mut list = faults();
    list.retain(|f| f.source != Source::Env);
    list.extend(new.into_iter().map(|f| Fault {
        source: Source::Env,
        ..f
    }));
}

/// Disarms every fault.
pub(crate) fn clear() {
    faults().clear();
}

/// Events that a fault made fail, since the library was loaded (never reset).
static INJECTED: AtomicU64 = AtomicU64::new(0);

/// Number of events that a fault made fail since the library was loaded.
pub(crate) fn injected() -> u64 {
    INJECTED.load(Ordering::Relaxed)
}

/// Counts one event against every armed fault that `matches` it (faults that fire at
/// once are never counted); returns the first armed one that fires. A fired `nth` fault
/// is used up; when several fire on one event, the first armed wins. Each fault counts
/// its own matching events (`seen`), over every core its `vnc` allows.
fn event(matches: impl Fn(&Kind) -> bool) -> Option<Fault> {
    let mut list = faults();
    let mut fired = None;
    let mut used_up = Vec::new();
    for (index, fault) in list.iter_mut().enumerate() {
        if fault.trigger == Trigger::Now || !matches(&fault.kind) {
            continue;
        }
        fault.seen += 1;
        let fires = match fault.trigger {
            Trigger::Nth(n) => fault.seen == n,
            Trigger::After(n) => fault.seen > n,
            Trigger::Every(n) => fault.seen % n == 0,
            Trigger::Now => false,
        };
        if fires {
            if matches!(fault.trigger, Trigger::Nth(_)) {
                used_up.push(index);
            }
            fired.get_or_insert_with(|| fault.clone());
        }
    }
    for index in used_up.into_iter().rev() {
        list.remove(index);
    }
    if fired.is_some() {
        INJECTED.fetch_add(1, Ordering::Relaxed);
    }
    fired
}

/// An execution on core `vnc` is starting: `Some((status, write_outputs))` if it must fail.
pub(crate) fn on_exec(vnc: u32) -> Option<(NRT_STATUS, bool)> {
    event(|k| matches!(k, Kind::Exec { vnc: v, .. } if v.is_none_or(|v| v == vnc))).map(|f| {
        let Kind::Exec { outputs, .. } = f.kind else {
            unreachable!("matched an exec fault")
        };
        (f.status, outputs)
    })
}

/// A tensor allocation (`vnc` = `Some(core)` for device placement) is starting.
pub(crate) fn on_alloc(vnc: Option<u32>) -> Option<NRT_STATUS> {
    event(|k| matches!(k, Kind::Alloc { vnc: v } if v.is_none() || *v == vnc)).map(|f| f.status)
}

/// A model load onto core `vnc` is starting.
pub(crate) fn on_load(vnc: u32) -> Option<NRT_STATUS> {
    event(|k| matches!(k, Kind::Load { vnc: v } if v.is_none_or(|v| v == vnc))).map(|f| f.status)
}

/// An async queue is about to process a request. When a fault fires the queue becomes
/// unrecoverable, so an `after` fault on it is used up too.
pub(crate) fn on_xu_request(vnc: u32, xu: nrta_xu_t, queue: u32) -> Option<NRT_STATUS> {
    let target = Kind::Xu { vnc, xu, queue };
    let fired = event(|k| *k == target)?;
    faults().retain(|f| f.kind != target || f.trigger == Trigger::Now);
    Some(fired.status)
}

/// Takes the armed `xu` faults that apply at once: `(vnc, xu, queue)` of each.
pub(crate) fn take_immediate_xu() -> Vec<(u32, nrta_xu_t, u32)> {
    let mut list = faults();
    let mut taken = Vec::new();
    list.retain(|f| match (&f.kind, f.trigger) {
        (Kind::Xu { vnc, xu, queue }, Trigger::Now) => {
            taken.push((*vnc, *xu, *queue));
            false
        }
        _ => true,
    });
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_spec_parses_with_all_fields() {
        let f = parse("exec:vnc=0:nth=3:status=1003").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].kind,
            Kind::Exec {
                vnc: Some(0),
                outputs: true
            }
        );
        assert_eq!(f[0].trigger, Trigger::Nth(3));
        assert_eq!(f[0].status, 1003);
        let f = parse("exec:after=2:status=NRT_TIMEOUT").unwrap();
        assert_eq!(
            f[0].kind,
            Kind::Exec {
                vnc: None,
                outputs: false
            }
        );
        assert_eq!(f[0].trigger, Trigger::After(2));
    }

    #[test]
    fn several_faults_and_defaults() {
        let f = parse("alloc:nth=2; xu:vnc=1:type=compute  load").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].status, NRT_RESOURCE);
        assert_eq!(
            f[1].kind,
            Kind::Xu {
                vnc: 1,
                xu: NRTA_XU_COMPUTE,
                queue: 0
            }
        );
        assert_eq!(f[1].trigger, Trigger::Now);
        assert_eq!(f[1].status, NRT_EXEC_UNIT_UNRECOVERABLE);
        assert_eq!(f[2].trigger, Trigger::Nth(1));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("", "no fault"),
            ("boom", "unknown fault kind"),
            ("exec:nth=0", "counts from 1"),
            ("exec:nth=1:after=2", "not both"),
            ("exec:status=0", "would not be a fault"),
            ("exec:status=WHAT", "not a status"),
            ("exec:vnc", "not key=value"),
            ("exec:color=red", "unknown field"),
            ("alloc:outputs=yes", "does not apply"),
            ("xu:type=compute", "need vnc"),
            ("xu:vnc=0", "need type"),
            ("xu:vnc=0:type=compute:queue=1", "queues 0 to 0"),
            ("xu:vnc=0:type=gpu", "not tensor_op"),
            ("exec:vnc=99999999999", "too large"),
        ];
        for (spec, needle) in cases {
            let err = parse(spec).unwrap_err();
            assert!(err.message.contains(needle), "{spec}: {err}");
        }
        let err = parse("exec:nth=2;exec:nth=x").unwrap_err();
        assert_eq!(err.fault, "exec:nth=x");
    }

    #[test]
    fn every_parses_for_exec_alloc_and_load() {
        let f = parse("exec:every=50:status=1003; alloc:vnc=1:every=2; load:every=1").unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].trigger, Trigger::Every(50));
        assert_eq!(f[0].status, NRT_EXEC_COMPLETED_WITH_NUM_ERR);
        assert_eq!(
            f[0].kind,
            Kind::Exec {
                vnc: None,
                outputs: true
            }
        );
        assert_eq!(f[1].trigger, Trigger::Every(2));
        assert_eq!(f[1].kind, Kind::Alloc { vnc: Some(1) });
        assert_eq!(f[1].status, NRT_RESOURCE);
        assert_eq!(f[2].trigger, Trigger::Every(1));
    }

    #[test]
    fn bad_every_values_name_the_fault_and_the_value() {
        let cases = [
            ("exec:every=0", "every=0"),
            ("exec:every=x", "every=\"x\" is not a non-negative integer"),
            (
                "exec:every=-5",
                "every=\"-5\" is not a non-negative integer",
            ),
            ("exec:every=", "every=\"\" is not a non-negative integer"),
            ("exec:every=2:nth=1", "not both"),
            ("exec:after=1:every=2", "not both"),
            ("xu:vnc=0:type=compute:every=5", "does not apply to \"xu\""),
        ];
        for (spec, needle) in cases {
            let err = parse(spec).unwrap_err();
            assert_eq!(err.fault, spec);
            assert!(err.message.contains(needle), "{spec}: {err}");
        }
        let err = parse("exec:every=50; alloc:every=0").unwrap_err();
        assert_eq!(err.fault, "alloc:every=0");
        assert!(err.to_string().contains("every counts from 1"), "{err}");
    }
}
