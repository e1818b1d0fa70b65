//! What a runtime reports about itself: [`Version`], [`InstanceInfo`], [`MemoryStats`].

use std::fmt;

/// The runtime library version reported by `nrt_get_version`, e.g. 2.31.24.0.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch level.
    pub patch: u64,
    /// Maintenance level.
    pub maintenance: u64,
    /// Free-form detail text from the library.
    pub detail: String,
    /// The library's source revision.
    pub git_hash: String,
}

impl Version {
    /// Whether this version is `major.minor` or newer.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}.{}",
            self.major, self.minor, self.patch, self.maintenance
        )
    }
}

/// The kind of instance the runtime runs on (`nrt_get_instance_info`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceInfo {
    /// Instance family as libnrt numbers it (`NRT_INSTANCE_*`); see [`InstanceInfo::family_name`].
    pub family: u32,
    /// Instance size as libnrt numbers it (`NRT_INSTANCE_SIZE_*`); see [`InstanceInfo::size_name`].
    pub size: u32,
    /// Architecture name.
    pub arch_name: String,
    /// Device revision.
    pub device_revision: String,
}

impl InstanceInfo {
    /// The family's name (`"inf2"`, `"trn1"`, ...), `None` for values this crate does not know.
    pub fn family_name(&self) -> Option<&'static str> {
        const NAMES: [&str; 16] = [
            "unknown",
            "inf1",
            "trn1",
            "trn1n",
            "inf2",
            "trn2",
            "trn2n",
            "inf2e",
            "trn2p",
            "trn2u",
            "trn2e",
            "trn2eu",
            "trn2ac",
            "trn2uac",
            "trn3",
            "trn3pds98",
        ];
        NAMES.get(usize::try_from(self.family).ok()?).copied()
    }

    /// The size's name (`"xlarge"`, `"24xlarge"`, ...), `None` for unknown values.
    pub fn size_name(&self) -> Option<&'static str> {
        const NAMES: [&str; 9] = [
            "xlarge", "2xlarge", "4xlarge", "6xlarge", "8xlarge", "24xlarge", "32xlarge",
            "48xlarge", "3xlarge",
        ];
        NAMES.get(usize::try_from(self.size).ok()?).copied()
    }
}

/// Device memory use of one NeuronCore (`nrt_get_vnc_memory_stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryStats {
    /// Bytes in use.
    pub bytes_used: usize,
    /// Bytes available in total.
    pub bytes_limit: usize,
}
