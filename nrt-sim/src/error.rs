//! [`Fail`]: how every layer of the simulator reports a failed call (the status the C
//! function returns and the log line saying why).

use crate::log::Level;
use nrt_sys::NRT_STATUS;

/// A failed call: the status to return and the log line saying why.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) status: NRT_STATUS,
    pub(crate) message: String,
    /// Level of the log line (below `Error` for `NRT_QUEUE_FULL`, which is routine
    /// back-pressure); the thread's last error is set whatever the level.
    pub(crate) level: Level,
}

pub(crate) type Res<T> = Result<T, Fail>;

/// `Err(Fail)` with `status` and `message`.
pub(crate) fn fail<T>(status: NRT_STATUS, message: impl Into<String>) -> Res<T> {
    Err(Fail {
        status,
        message: message.into(),
        level: Level::Error,
    })
}
