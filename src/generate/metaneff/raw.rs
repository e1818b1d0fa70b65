//! The `metaneff.pb` messages as they are on the wire, with `prost::Message` written by
//! hand (what `#[derive(prost::Message)]` generates for these fields, without the derive
//! macro's crates in the build: prost-derive, anyhow, itertools, either). Fields are
//! encoded in tag order, proto3 defaults are not written, `shape` is packed (read
//! packed or not), and every field not listed is skipped.

use std::collections::BTreeMap;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType, btree_map, bytes, int32, int64, message};
use prost::{DecodeError, Message};

/// Adds `message.field` to a decode error, as derived messages do.
fn at(message: &'static str, field: &'static str) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut error| {
        error.push(message, field);
        error
    }
}

/// `metaneff.MetaNeff`: 1 `input_tensors`, 2 `output_tensors`, 5 `name`, 6
/// `output_aliases_to`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RawMetaNeff {
    pub(super) input_tensors: Vec<RawMetaTensor>,
    pub(super) output_tensors: Vec<RawMetaTensor>,
    pub(super) name: Vec<u8>,
    pub(super) output_aliases_to: BTreeMap<i64, i64>,
}

/// `metaneff.MetaTensor`: 1 `name`, 2 `shape`, 3 `data_type`, 6 `checkpoint_key`, 7
/// `type`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct RawMetaTensor {
    pub(super) name: Vec<u8>,
    pub(super) shape: Vec<i64>,
    pub(super) data_type: i32,
    pub(super) checkpoint_key: Vec<u8>,
    pub(super) r#type: i32,
}

impl Message for RawMetaNeff {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        message::encode_repeated(1, &self.input_tensors, buf);
        message::encode_repeated(2, &self.output_tensors, buf);
        if !self.name.is_empty() {
            bytes::encode(5, &self.name, buf);
        }
        btree_map::encode(
            int64::encode,
            int64::encoded_len,
            int64::encode,
            int64::encoded_len,
            6,
            &self.output_aliases_to,
            buf,
        );
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "RawMetaNeff";
        match tag {
            1 => message::merge_repeated(wire_type, &mut self.input_tensors, buf, ctx)
                .map_err(at(NAME, "input_tensors")),
            2 => message::merge_repeated(wire_type, &mut self.output_tensors, buf, ctx)
                .map_err(at(NAME, "output_tensors")),
            5 => bytes::merge(wire_type, &mut self.name, buf, ctx).map_err(at(NAME, "name")),
            6 => prost::encoding::check_wire_type(WireType::LengthDelimited, wire_type)
                .and_then(|()| {
                    btree_map::merge(
                        int64::merge,
                        int64::merge,
                        &mut self.output_aliases_to,
                        buf,
                        ctx,
                    )
                })
                .map_err(at(NAME, "output_aliases_to")),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.input_tensors)
            + message::encoded_len_repeated(2, &self.output_tensors)
            + if self.name.is_empty() {
                0
            } else {
                bytes::encoded_len(5, &self.name)
            }
            + btree_map::encoded_len(
                int64::encoded_len,
                int64::encoded_len,
                6,
                &self.output_aliases_to,
            )
    }

    fn clear(&mut self) {
        *self = RawMetaNeff::default();
    }
}

impl Message for RawMetaTensor {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.name.is_empty() {
            bytes::encode(1, &self.name, buf);
        }
        int64::encode_packed(2, &self.shape, buf);
        if self.data_type != 0 {
            int32::encode(3, &self.data_type, buf);
        }
        if !self.checkpoint_key.is_empty() {
            bytes::encode(6, &self.checkpoint_key, buf);
        }
        if self.r#type != 0 {
            int32::encode(7, &self.r#type, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "RawMetaTensor";
        match tag {
            1 => bytes::merge(wire_type, &mut self.name, buf, ctx).map_err(at(NAME, "name")),
            2 => int64::merge_repeated(wire_type, &mut self.shape, buf, ctx)
                .map_err(at(NAME, "shape")),
            3 => int32::merge(wire_type, &mut self.data_type, buf, ctx)
                .map_err(at(NAME, "data_type")),
            6 => bytes::merge(wire_type, &mut self.checkpoint_key, buf, ctx)
                .map_err(at(NAME, "checkpoint_key")),
            7 => int32::merge(wire_type, &mut self.r#type, buf, ctx).map_err(at(NAME, "r#type")),
            _ => prost::encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let bytes_len = |tag, v: &Vec<u8>| {
            if v.is_empty() {
                0
            } else {
                bytes::encoded_len(tag, v)
            }
        };
        let int32_len = |tag, v: &i32| {
            if *v == 0 {
                0
            } else {
                int32::encoded_len(tag, v)
            }
        };
        bytes_len(1, &self.name)
            + int64::encoded_len_packed(2, &self.shape)
            + int32_len(3, &self.data_type)
            + bytes_len(6, &self.checkpoint_key)
            + int32_len(7, &self.r#type)
    }

    fn clear(&mut self) {
        *self = RawMetaTensor::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, key: &str) -> RawMetaTensor {
        RawMetaTensor {
            name: name.into(),
            shape: vec![2, -1, 300],
            data_type: 14,
            checkpoint_key: key.into(),
            r#type: 2,
        }
    }

    /// Every field set survives encode -> decode, and so does a message of defaults
    /// (which encodes to nothing).
    #[test]
    fn every_field_round_trips() {
        let meta = RawMetaNeff {
            input_tensors: vec![tensor("a", "layers.0.k"), tensor("b", "")],
            output_tensors: vec![tensor("c", ""), RawMetaTensor::default()],
            name: b"model".to_vec(),
            output_aliases_to: BTreeMap::from([(0, 0), (1, 7), (-3, i64::MAX)]),
        };
        let bytes = meta.encode_to_vec();
        assert_eq!(bytes.len(), meta.encoded_len());
        assert_eq!(RawMetaNeff::decode(&*bytes).unwrap(), meta);
        let t = tensor("x", "k");
        assert_eq!(t.encode_to_vec().len(), t.encoded_len());
        assert_eq!(RawMetaTensor::decode(&*t.encode_to_vec()).unwrap(), t);
        assert!(RawMetaNeff::default().encode_to_vec().is_empty());
        assert!(RawMetaTensor::default().encode_to_vec().is_empty());
    }

    /// Bytes written by hand as another encoder may write them: fields out of order, an
    /// unpacked `shape`, a map entry without its value, and unknown fields of every wire
    /// type in both messages.
    #[test]
    fn hand_built_bytes_decode() {
        let tensor = [
            0x38, 3, // 7 type: 3 (varint)
            0x10, 4, // 2 shape: 4 (one unpacked element)
            0x12, 2, 5, 6, // 2 shape: [5, 6] (packed)
            0x0a, 1, b'w', // 1 name: "w"
            0x20, 1, // 4 (unknown, varint)
            0x29, 0, 0, 0, 0, 0, 0, 0, 0, // 5 (unknown, 64-bit)
            0x18, 14, // 3 data_type: 14
            0x32, 2, b'k', b'1', // 6 checkpoint_key: "k1"
            0x4d, 0, 0, 0, 0, // 9 (unknown, 32-bit)
        ];
        let mut bytes = vec![0x2a, 2, b'm', b'n']; // 5 name: "mn"
        bytes.extend_from_slice(&[0x22, 3, 1, 2, 3]); // 4 (unknown, bytes)
        bytes.extend_from_slice(&[0x0a, tensor.len() as u8]); // 1 input_tensors
        bytes.extend_from_slice(&tensor);
        bytes.extend_from_slice(&[0x32, 4, 0x08, 1, 0x10, 0]); // 6 output_aliases_to {1: 0}
        bytes.extend_from_slice(&[0x32, 2, 0x08, 2]); // 6 {2: 0}, value left out
        bytes.extend_from_slice(&[0x12, 0]); // 2 output_tensors: one empty tensor
        bytes.extend_from_slice(&[0x48, 9]); // 9 (unknown, varint)
        let meta = RawMetaNeff::decode(&*bytes).unwrap();
        assert_eq!(
            meta,
            RawMetaNeff {
                input_tensors: vec![RawMetaTensor {
                    name: b"w".to_vec(),
                    shape: vec![4, 5, 6],
                    data_type: 14,
                    checkpoint_key: b"k1".to_vec(),
                    r#type: 3,
                }],
                output_tensors: vec![RawMetaTensor::default()],
                name: b"mn".to_vec(),
                output_aliases_to: BTreeMap::from([(1, 0), (2, 0)]),
            }
        );
    }

    /// A known field of the wrong wire type, and a truncated message, are errors naming
    /// the field as the derived code did.
    #[test]
    fn bad_fields_are_errors() {
        let err = RawMetaNeff::decode(&[0x2d, 0, 0, 0, 0][..]).unwrap_err();
        assert!(err.to_string().contains("RawMetaNeff.name"), "{err}");
        let err = RawMetaNeff::decode(&[0x0a, 1, 0x18][..]).unwrap_err();
        assert!(err.to_string().contains("RawMetaTensor.data_type"), "{err}");
        assert!(RawMetaNeff::decode(&[0x0a, 5, 0x0a][..]).is_err());
    }
}
