//! Buckets: the member of a kind that fits a call, and padding to its shape.

use super::bundle::{Bucket, Bundle, Member, MemberKind, Sampling};
use super::error::BundleError;
use crate::error::Result;

/// Position of a padding token: the small decoder (and NxD Inference's position-id
/// convention for padded rows of the simulator's members) neither attends to it nor
/// writes it into the cache, and its output row is zero.
pub const PAD_POSITION: i64 = -1;

impl Bucket {
    /// Whether a call of `batch` rows of `seq_len` tokens fits this bucket.
    pub fn fits(&self, batch: u32, seq_len: u32) -> bool {
        batch <= self.batch && seq_len <= self.seq_len
    }

    /// Elements per user tensor of this bucket (`batch x seq_len`).
    pub fn tokens(&self) -> u64 {
        u64::from(self.batch) * u64::from(self.seq_len)
    }
}

impl Bundle {
    /// The member of `kind` (and `sampling`, when given) with the smallest bucket that
    /// fits `batch` rows of `seq_len` tokens: fewest tokens per call, then fewest rows.
    ///
    /// ```
    /// use neuron_rt::Runtime;
    /// use neuron_rt::generate::{Bundle, BundleError, MemberKind, Sampling};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// neuron_rt::sim::decoder::write_bundle(dir.path(), &Default::default()).unwrap();
    /// let runtime = Runtime::builder().simulator().build()?;
    /// let bundle = Bundle::builder(&runtime).dir(dir.path())?.build()?;
    ///
    /// assert_eq!(bundle.bucket_for(&MemberKind::Prefill, None, 1, 20)?.name(), "prefill_t64");
    /// assert_eq!(bundle.bucket_for(&MemberKind::Decode, Some(Sampling::Ids), 3, 1)?.name(), "decode_b4_ids");
    /// let err = bundle.bucket_for(&MemberKind::Prefill, None, 1, 65).unwrap_err();
    /// assert!(matches!(err.as_bundle(), Some(BundleError::NoBucket { largest: Some(b), .. }) if b.seq_len == 64));
    /// # Ok::<(), neuron_rt::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`BundleError::NoBucket`] naming the largest bucket of that kind (or none) when
    /// nothing fits.
    pub fn bucket_for(
        &self,
        kind: &MemberKind,
        sampling: Option<Sampling>,
        batch: u32,
        seq_len: u32,
    ) -> Result<&Member> {
        let of_kind = || {
            self.members().iter().filter(move |m| {
                m.kind() == kind && sampling.is_none_or(|s| m.sampling() == Some(s))
            })
        };
        let best = of_kind()
            .filter_map(|m| m.bucket().map(|b| (b, m)))
            .filter(|(b, _)| b.fits(batch, seq_len))
            .min_by_key(|(b, m)| (b.tokens(), b.batch, m.name().to_owned()));
        if let Some((_, m)) = best {
            return Ok(m);
        }
        let largest = of_kind()
            .filter_map(Member::bucket)
            .max_by_key(|b| (b.tokens(), b.batch));
        let kind = match sampling {
            Some(Sampling::Ids) => format!("{} (ids)", kind_name(kind)),
            Some(Sampling::Logits) => format!("{} (logits)", kind_name(kind)),
            None => kind_name(kind),
        };
        Err(BundleError::NoBucket {
            kind,
            batch,
            seq_len,
            largest,
        }
        .into())
    }
}

pub(crate) fn kind_name(kind: &MemberKind) -> String {
    match kind {
        MemberKind::Prefill => "prefill".into(),
        MemberKind::Decode => "decode".into(),
        MemberKind::ChainStage => "chain stage".into(),
        MemberKind::Other(s) => s.clone(),
    }
}

/// User inputs of one call padded to a bucket, row-major `[batch, seq_len]` (`seq_ids`
/// `[batch]`): token ids (padding: the pad id), positions (padding:
/// [`PAD_POSITION`]), each row's cache slot (padding rows: slot 0, never written), and
/// an attention mask (1 for a real token, 0 for padding) for members that take one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Padded {
    /// The bucket padded to.
    pub bucket: Bucket,
    /// `input_ids`.
    pub ids: Vec<i64>,
    /// `position_ids`.
    pub positions: Vec<i64>,
    /// `seq_ids`.
    pub seq_ids: Vec<i64>,
    /// `attention_mask`.
    pub mask: Vec<i64>,
    /// Which bucket rows hold real rows (the rest are padding), in order.
    pub rows: usize,
}

impl Padded {
    /// Pads `rows` (each: its tokens, the position of its first token, its cache slot)
    /// to `bucket`. Rows beyond the bucket's batch or tokens beyond its length are the
    /// caller's mistake and were refused by [`Bundle::bucket_for`]; here they panic.
    pub fn new(bucket: Bucket, rows: &[(&[u32], u32, u32)], pad_id: u32) -> Padded {
        let (b, t) = (bucket.batch as usize, bucket.seq_len as usize);
        assert!(rows.len() <= b, "{} rows in a batch-{b} bucket", rows.len());
        let mut p = Padded {
            bucket,
            ids: vec![i64::from(pad_id); b * t],
            positions: vec![PAD_POSITION; b * t],
            seq_ids: vec![0; b],
            mask: vec![0; b * t],
            rows: rows.len(),
        };
        for (r, (tokens, start, slot)) in rows.iter().enumerate() {
            assert!(
                tokens.len() <= t,
                "{} tokens in a {t}-token bucket",
                tokens.len()
            );
            p.seq_ids[r] = i64::from(*slot);
            for (i, &tok) in tokens.iter().enumerate() {
                p.ids[r * t + i] = i64::from(tok);
                p.positions[r * t + i] = i64::from(*start) + i as i64;
                p.mask[r * t + i] = 1;
            }
        }
        p
    }

    /// The first `rows` rows of an output of `row_len` values per bucket row: the
    /// padding rows removed.
    pub fn unpad<'a, T>(&self, output: &'a [T], row_len: usize) -> &'a [T] {
        &output[..(self.rows * row_len).min(output.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_with_the_pad_id_pad_positions_and_slot_zero() {
        let bucket = Bucket {
            batch: 2,
            seq_len: 4,
        };
        let p = Padded::new(bucket, &[(&[5, 6], 10, 3)], 9);
        assert_eq!(p.ids, [5, 6, 9, 9, 9, 9, 9, 9]);
        assert_eq!(p.positions, [10, 11, -1, -1, -1, -1, -1, -1]);
        assert_eq!(p.seq_ids, [3, 0]);
        assert_eq!(p.mask, [1, 1, 0, 0, 0, 0, 0, 0]);
        let out: Vec<u32> = (0..2 * 3).collect();
        assert_eq!(p.unpad(&out, 3), [0, 1, 2]);
        assert!(bucket.fits(2, 4) && !bucket.fits(3, 1) && !bucket.fits(1, 5));
    }
}
