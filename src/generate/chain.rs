//! [`DecodeChain`]: what one device-sampled decode step runs, one member or several
//! queued together (embedding, a member per layer, the head), each one's outputs bound
//! to the next one's inputs on the device.

use std::fmt;

use super::bundle::{Bundle, Member, MemberKind, Sampling};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::objects::TensorInfo;

/// The user input a step's token ids go into (NxD Inference's name).
pub const IDS_INPUT: &str = "input_ids";
/// The user input a step's positions go into.
pub const POSITIONS_INPUT: &str = "position_ids";
/// The user input naming each row's cache slot.
pub const SEQ_IDS_INPUT: &str = "seq_ids";
/// The output a device-sampling member writes the next token ids to.
pub const NEXT_IDS_OUTPUT: &str = "next_ids";

/// Where a chain member's user input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The step's token ids ([`IDS_INPUT`]): the previous step's [`NEXT_IDS_OUTPUT`].
    Ids,
    /// The step's positions ([`POSITIONS_INPUT`]), written by the host ahead.
    Positions,
    /// The rows' cache slots ([`SEQ_IDS_INPUT`]), the same every step.
    SeqIds,
    /// Output `output` of the earlier member `from` (an index into the chain).
    Link { from: usize, output: String },
}

/// One member of a chain and how its user inputs are bound.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub(crate) name: String,
    /// `(input name, source)` for every user input of the member.
    pub(crate) inputs: Vec<(String, Source)>,
}

/// The members one decode step runs, in order, checked against a [`Bundle`]: the
/// last one samples on the device (its [`NEXT_IDS_OUTPUT`] output is the next token
/// ids), and every user input of every member is bound: [`IDS_INPUT`],
/// [`POSITIONS_INPUT`] and [`SEQ_IDS_INPUT`] by the decode loop, any other to an
/// output of an earlier member, matched by name (the same name, or the output's name
/// without a `_out` / `.out` suffix: `hidden_out` feeds `hidden`).
///
/// A chain of one member is a fused decode NEFF (`decode_b1_ids`); the small decoder's
/// chain is `chain_embed`, `chain_layer_0`, `chain_layer_1`, `chain_head_ids` (the
/// vendor's PJRT path runs its decode step the same way, aws-neuron-sdk#1370).
///
/// ```
/// use neuron_rt::Runtime;
/// use neuron_rt::generate::{Bundle, DecodeChain};
///
/// let dir = tempfile::tempdir().unwrap();
/// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
/// let runtime = Runtime::builder().simulator().build()?;
/// let bundle = Bundle::builder(&runtime).dir(dir.path())?.build()?;
/// let fused = DecodeChain::single(&bundle, "decode_b4_ids")?;
/// assert_eq!((fused.len(), fused.batch()), (1, 4));
/// let chain = DecodeChain::stages(&bundle)?; // the members of kind `chain`, by stage
/// assert_eq!(chain.members().collect::<Vec<_>>(),
///            ["chain_embed", "chain_layer_0", "chain_layer_1", "chain_head_ids"]);
/// // A member returning logits cannot end a device-sampled step.
/// assert!(DecodeChain::single(&bundle, "decode_b1_logits").is_err());
/// # Ok::<(), neuron_rt::Error>(())
/// ```
#[derive(Clone)]
pub struct DecodeChain {
    pub(crate) stages: Vec<Stage>,
    pub(crate) batch: u32,
    /// Element type of the ids ([`IDS_INPUT`] and [`NEXT_IDS_OUTPUT`]).
    pub(crate) ids_dtype: DType,
    /// Element type of [`POSITIONS_INPUT`] (I32 when no member takes it).
    pub(crate) positions_dtype: DType,
    /// Element type of [`SEQ_IDS_INPUT`] (I32 when no member takes it).
    pub(crate) seq_ids_dtype: DType,
}

impl DecodeChain {
    /// A step of one device-sampling member (`sampling` `ids`, output
    /// [`NEXT_IDS_OUTPUT`]).
    ///
    /// # Errors
    ///
    /// As [`DecodeChain::new`].
    pub fn single(bundle: &Bundle, member: &str) -> Result<DecodeChain> {
        DecodeChain::new(bundle, [member])
    }

    /// The bundle's chain stages ([`MemberKind::ChainStage`]) ordered by
    /// [`Member::chain_stage`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the bundle has no chain stage or two with the
    /// same stage number; otherwise as [`DecodeChain::new`].
    pub fn stages(bundle: &Bundle) -> Result<DecodeChain> {
        let mut stages: Vec<(u32, &str)> = bundle
            .members()
            .iter()
            .filter(|m| m.kind() == &MemberKind::ChainStage)
            .map(|m| (m.chain_stage().unwrap_or(u32::MAX), m.name()))
            .collect();
        stages.sort_unstable();
        if stages.is_empty() {
            return Err(Error::invalid(
                "bundle",
                "the bundle has no member of kind `chain` (chain stages)",
            ));
        }
        if let Some(w) = stages.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::invalid(
                "bundle",
                format!(
                    "members `{}` and `{}` both have chain stage {}",
                    w[0].1, w[1].1, w[0].0
                ),
            ));
        }
        DecodeChain::new(bundle, stages.into_iter().map(|(_, name)| name))
    }

    /// The members named `members`, run in this order every step.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the member and tensor: an empty chain, a
    /// member the bundle lacks, a last member without an integer [`NEXT_IDS_OUTPUT`]
    /// output (e.g. one returning logits: host sampling), a first member without
    /// [`IDS_INPUT`], ids of a shape other than `[batch, 1]` (or `[batch]`), ids in and
    /// out of different types or sizes, members of different batch sizes, a user input
    /// no earlier output feeds, or a link between tensors of different sizes or types.
    pub fn new<'a>(
        bundle: &Bundle,
        members: impl IntoIterator<Item = &'a str>,
    ) -> Result<DecodeChain> {
        let members: Vec<&Member> = members
            .into_iter()
            .map(|name| {
                bundle.member(name).ok_or_else(|| {
                    Error::invalid(
                        "members",
                        format!(
                            "the bundle has no member `{name}` (it has {:?})",
                            bundle
                                .members()
                                .iter()
                                .map(Member::name)
                                .collect::<Vec<_>>()
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let (Some(first), Some(last)) = (members.first(), members.last()) else {
            return Err(Error::invalid("members", "a decode chain needs a member"));
        };
        let ids_in = first
            .user_inputs()
            .find(|i| i.name == IDS_INPUT)
            .ok_or_else(|| {
                Error::invalid(
                    "members",
                    format!(
                        "the first member `{}` has no user input `{IDS_INPUT}`",
                        first.name()
                    ),
                )
            })?;
        let ids_out = last
            .user_outputs()
            .find(|o| o.name == NEXT_IDS_OUTPUT)
            .ok_or_else(|| {
                let what = match last.sampling() {
                    Some(Sampling::Logits) => "returns logits (the host samples)",
                    _ => "does not sample on the device",
                };
                Error::invalid(
                    "members",
                    format!(
                        "the last member `{}` {what}: it has no output `{NEXT_IDS_OUTPUT}`; a device-sampled decode needs a member with `sampling: ids`",
                        last.name()
                    ),
                )
            })?;
        let batch = ids_batch(first.name(), ids_in)?;
        if !matches!(ids_in.dtype, DType::I32 | DType::I64 | DType::U32)
            || ids_out.dtype != ids_in.dtype
            || ids_out.size != ids_in.size
        {
            return Err(Error::invalid(
                "members",
                format!(
                    "`{NEXT_IDS_OUTPUT}` of `{}` ({} {:?}) cannot feed `{IDS_INPUT}` of `{}` ({} {:?}): the next step's ids input is the previous step's ids output, of one integer type and shape",
                    last.name(),
                    ids_out.dtype,
                    ids_out.shape,
                    first.name(),
                    ids_in.dtype,
                    ids_in.shape
                ),
            ));
        }
        let mut positions_dtype = None;
        let mut seq_ids_dtype = None;
        let mut stages = Vec::with_capacity(members.len());
        for (j, member) in members.iter().enumerate() {
            let mut inputs = Vec::new();
            for input in member.user_inputs() {
                let source = match input.name.as_str() {
                    IDS_INPUT => {
                        same_layout(member, input, ids_in, first.name())?;
                        Source::Ids
                    }
                    POSITIONS_INPUT => {
                        ids_batch(member.name(), input)?;
                        check_index_type(member, input, &mut positions_dtype)?;
                        Source::Positions
                    }
                    SEQ_IDS_INPUT => {
                        check_index_type(member, input, &mut seq_ids_dtype)?;
                        if input.element_count() != Some(batch as usize) {
                            return Err(Error::invalid(
                                "members",
                                format!(
                                    "`{SEQ_IDS_INPUT}` of `{}` has shape {:?}, the chain's batch is {batch}",
                                    member.name(),
                                    input.shape
                                ),
                            ));
                        }
                        Source::SeqIds
                    }
                    _ => link(&members[..j], member, input)?,
                };
                inputs.push((input.name.clone(), source));
            }
            stages.push(Stage {
                name: member.name().to_owned(),
                inputs,
            });
        }
        Ok(DecodeChain {
            stages,
            batch,
            ids_dtype: ids_in.dtype,
            positions_dtype: positions_dtype.unwrap_or(DType::I32),
            seq_ids_dtype: seq_ids_dtype.unwrap_or(DType::I32),
        })
    }

    /// The member names, in the order a step runs them.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|s| s.name.as_str())
    }

    /// How many members a step runs.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Whether the chain has no member (never true for a checked chain).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Rows per step (the first dimension of the ids).
    pub fn batch(&self) -> u32 {
        self.batch
    }

    /// Element type of the token ids on the device.
    pub fn ids_dtype(&self) -> DType {
        self.ids_dtype
    }
}

impl fmt::Debug for DecodeChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodeChain")
            .field("members", &self.members().collect::<Vec<_>>())
            .field("batch", &self.batch)
            .field("ids_dtype", &self.ids_dtype)
            .finish()
    }
}

/// The batch of an ids or positions input: shape `[b, 1]` or `[b]`.
fn ids_batch(member: &str, info: &TensorInfo) -> Result<u32> {
    match info.shape[..] {
        [b] | [b, 1] if b > 0 => Ok(b),
        _ => Err(Error::invalid(
            "members",
            format!(
                "`{}` of `{member}` has shape {:?}: a decode step takes one token per row, [batch, 1]",
                info.name, info.shape
            ),
        )),
    }
}

fn same_layout(member: &Member, input: &TensorInfo, ids: &TensorInfo, first: &str) -> Result<()> {
    if input.dtype == ids.dtype && input.size == ids.size {
        return Ok(());
    }
    Err(Error::invalid(
        "members",
        format!(
            "`{IDS_INPUT}` of `{}` ({} {:?}) differs from `{IDS_INPUT}` of `{first}` ({} {:?})",
            member.name(),
            input.dtype,
            input.shape,
            ids.dtype,
            ids.shape
        ),
    ))
}

fn check_index_type(member: &Member, input: &TensorInfo, seen: &mut Option<DType>) -> Result<()> {
    if !matches!(input.dtype, DType::I32 | DType::I64 | DType::U32) {
        return Err(Error::invalid(
            "members",
            format!(
                "`{}` of `{}` is {}: the decode loop writes i32, i64 or u32 indices",
                input.name,
                member.name(),
                input.dtype
            ),
        ));
    }
    match *seen {
        Some(d) if d != input.dtype => Err(Error::invalid(
            "members",
            format!(
                "`{}` of `{}` is {}, another member's is {d}: one tensor feeds them all",
                input.name,
                member.name(),
                input.dtype
            ),
        )),
        _ => {
            *seen = Some(input.dtype);
            Ok(())
        }
    }
}

/// The output of an earlier member (the latest one that has it) that feeds `input`.
fn link(earlier: &[&Member], member: &Member, input: &TensorInfo) -> Result<Source> {
    let feeds = |output: &str| {
        output == input.name
            || output
                .strip_suffix("_out")
                .or_else(|| output.strip_suffix(".out"))
                == Some(input.name.as_str())
    };
    for (from, producer) in earlier.iter().enumerate().rev() {
        if let Some(output) = producer.user_outputs().find(|o| feeds(&o.name)) {
            if output.dtype != input.dtype || output.size != input.size {
                return Err(Error::invalid(
                    "members",
                    format!(
                        "output `{}` of `{}` ({} {:?}) cannot feed input `{}` of `{}` ({} {:?})",
                        output.name,
                        producer.name(),
                        output.dtype,
                        output.shape,
                        input.name,
                        member.name(),
                        input.dtype,
                        input.shape
                    ),
                ));
            }
            return Ok(Source::Link {
                from,
                output: output.name.clone(),
            });
        }
    }
    Err(Error::invalid(
        "members",
        format!(
            "user input `{}` of `{}` is fed by no earlier member's output (named `{0}`, `{0}_out` or `{0}.out`), and is not one of `{IDS_INPUT}`, `{POSITIONS_INPUT}`, `{SEQ_IDS_INPUT}`",
            input.name,
            member.name()
        ),
    ))
}
