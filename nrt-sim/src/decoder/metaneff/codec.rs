//! `prost::Message` for the `metaneff` messages, written by hand: what
//! `#[derive(prost::Message)]` and `#[derive(prost::Enumeration)]` generate for these
//! fields (encoding in tag order, proto3 defaults not written, `shape` packed and read
//! packed or not, unknown fields skipped, errors naming `Message.field`; the same
//! `Default`, `Debug` with enum values by name, accessors and enum conversions), without
//! the derive macro's crates in the build (prost-derive, anyhow, itertools, either).
//!
//! Tags: `MetaTensor` 1 `name`, 2 `shape`, 3 `data_type`, 4 `content`, 5
//! `allow_dynamic_batch_size`, 6 `checkpoint_key`, 7 `type`, 8 `user_input_key`;
//! `ModelConfig` 1 `num_infer`, 2 `timeout`, 3 `optimal_ncg_size`, 4 `async_load`, 5
//! `lazy_load`, 6 `return_aliases`; `MetaNeff` 1 `input_tensors`, 2 `output_tensors`, 3
//! `model_config`, 4 `serialized_graph_def`, 5 `name`, 6 `output_aliases_to`, 7
//! `num_user_inputs`, 8 `num_states`, 9 `num_weights`.

use std::fmt;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    DecodeContext, WireType, bool as boolean, btree_map, bytes, check_wire_type, int32, int64,
    message, skip_field,
};
use prost::{DecodeError, Message, UnknownEnumValue};

use super::{DataType, MetaNeff, MetaTensor, ModelConfig, TensorType};

/// Adds `message.field` to a decode error, as derived messages do.
fn at(message: &'static str, field: &'static str) -> impl FnOnce(DecodeError) -> DecodeError {
    move |mut error| {
        error.push(message, field);
        error
    }
}

/// The conversions `#[derive(prost::Enumeration)]` gives an enum (the first variant is
/// the default).
macro_rules! enumeration {
    ($name:ident { $first:ident = $first_value:literal, $($variant:ident = $value:literal,)* }) => {
        impl $name {
            #[doc = concat!("Returns `true` if `value` is a variant of `", stringify!($name), "`.")]
            // The variants are listed as the enum declares them, contiguous or not.
            #[allow(clippy::manual_range_patterns)]
            pub const fn is_valid(value: i32) -> bool {
                matches!(value, $first_value $(| $value)*)
            }

            #[deprecated = "Use the TryFrom<i32> implementation instead"]
            #[doc = concat!("Converts an `i32` to a `", stringify!($name), "`, or `None` if `value` is not a valid variant.")]
            pub fn from_i32(value: i32) -> Option<$name> {
                $name::try_from(value).ok()
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::$first
            }
        }

        impl From<$name> for i32 {
            fn from(value: $name) -> i32 {
                value as i32
            }
        }

        impl TryFrom<i32> for $name {
            type Error = UnknownEnumValue;

            fn try_from(value: i32) -> Result<$name, UnknownEnumValue> {
                match value {
                    $first_value => Ok($name::$first),
                    $($value => Ok($name::$variant),)*
                    _ => Err(UnknownEnumValue(value)),
                }
            }
        }
    };
}

enumeration!(DataType {
    Undefined = 0,
    Float = 1,
    Int32 = 2,
    Byte = 3,
    String = 4,
    Bool = 5,
    Uint8 = 6,
    Int8 = 7,
    Uint16 = 8,
    Int16 = 9,
    Int64 = 10,
    Float16 = 12,
    Double = 13,
    Bfloat16 = 14,
});

enumeration!(TensorType {
    UndefinedType = 0,
    UserInput = 1,
    InputState = 2,
    InputWeight = 3,
});

/// The encoded length of a proto3 field, 0 when it holds its default (not written).
fn len_unless_default<T: Default + PartialEq>(
    tag: u32,
    value: &T,
    len: impl Fn(u32, &T) -> usize,
) -> usize {
    if *value == T::default() {
        0
    } else {
        len(tag, value)
    }
}

impl MetaTensor {
    /// Returns the enum value of `data_type`, or the default if the field is set to an
    /// invalid enum value.
    pub fn data_type(&self) -> DataType {
        DataType::try_from(self.data_type).unwrap_or(DataType::Undefined)
    }

    /// Sets `data_type` to the provided enum value.
    pub fn set_data_type(&mut self, value: DataType) {
        self.data_type = value as i32;
    }

    /// Returns the enum value of `type`, or the default if the field is set to an invalid
    /// enum value.
    pub fn r#type(&self) -> TensorType {
        TensorType::try_from(self.r#type).unwrap_or(TensorType::UndefinedType)
    }

    /// Sets `type` to the provided enum value.
    pub fn set_type(&mut self, value: TensorType) {
        self.r#type = value as i32;
    }

    /// Returns the value of `checkpoint_key`, or the default value if `checkpoint_key`
    /// is unset.
    pub fn checkpoint_key(&self) -> &[u8] {
        self.checkpoint_key.as_deref().unwrap_or_default()
    }

    /// Returns the value of `user_input_key`, or the default value if `user_input_key`
    /// is unset.
    pub fn user_input_key(&self) -> &[u8] {
        self.user_input_key.as_deref().unwrap_or_default()
    }
}

/// An enum field's value by name when it is one (as the derived `Debug` shows it).
struct EnumDebug<T>(i32, std::marker::PhantomData<T>);

impl<T: TryFrom<i32> + fmt::Debug> fmt::Debug for EnumDebug<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match T::try_from(self.0) {
            Ok(value) => value.fmt(f),
            Err(_) => self.0.fmt(f),
        }
    }
}

impl fmt::Debug for MetaTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data_type = EnumDebug::<DataType>(self.data_type, std::marker::PhantomData);
        let r#type = EnumDebug::<TensorType>(self.r#type, std::marker::PhantomData);
        f.debug_struct("MetaTensor")
            .field("name", &self.name)
            .field("shape", &self.shape)
            .field("data_type", &data_type)
            .field("content", &self.content)
            .field("allow_dynamic_batch_size", &self.allow_dynamic_batch_size)
            .field("checkpoint_key", &self.checkpoint_key)
            .field("r#type", &r#type)
            .field("user_input_key", &self.user_input_key)
            .finish()
    }
}

impl Message for MetaTensor {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if !self.name.is_empty() {
            bytes::encode(1, &self.name, buf);
        }
        int64::encode_packed(2, &self.shape, buf);
        if self.data_type != 0 {
            int32::encode(3, &self.data_type, buf);
        }
        if !self.content.is_empty() {
            bytes::encode(4, &self.content, buf);
        }
        if self.allow_dynamic_batch_size {
            boolean::encode(5, &self.allow_dynamic_batch_size, buf);
        }
        if let Some(key) = &self.checkpoint_key {
            bytes::encode(6, key, buf);
        }
        if self.r#type != 0 {
            int32::encode(7, &self.r#type, buf);
        }
        if let Some(key) = &self.user_input_key {
            bytes::encode(8, key, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "MetaTensor";
        match tag {
            1 => bytes::merge(wire_type, &mut self.name, buf, ctx).map_err(at(NAME, "name")),
            2 => int64::merge_repeated(wire_type, &mut self.shape, buf, ctx)
                .map_err(at(NAME, "shape")),
            3 => int32::merge(wire_type, &mut self.data_type, buf, ctx)
                .map_err(at(NAME, "data_type")),
            4 => bytes::merge(wire_type, &mut self.content, buf, ctx).map_err(at(NAME, "content")),
            5 => boolean::merge(wire_type, &mut self.allow_dynamic_batch_size, buf, ctx)
                .map_err(at(NAME, "allow_dynamic_batch_size")),
            6 => {
                let key = self.checkpoint_key.get_or_insert_with(Vec::new);
                bytes::merge(wire_type, key, buf, ctx).map_err(at(NAME, "checkpoint_key"))
            }
            7 => int32::merge(wire_type, &mut self.r#type, buf, ctx).map_err(at(NAME, "r#type")),
            8 => {
                let key = self.user_input_key.get_or_insert_with(Vec::new);
                bytes::merge(wire_type, key, buf, ctx).map_err(at(NAME, "user_input_key"))
            }
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        len_unless_default(1, &self.name, bytes::encoded_len)
            + int64::encoded_len_packed(2, &self.shape)
            + len_unless_default(3, &self.data_type, int32::encoded_len)
            + len_unless_default(4, &self.content, bytes::encoded_len)
            + len_unless_default(5, &self.allow_dynamic_batch_size, boolean::encoded_len)
            + self
                .checkpoint_key
                .as_ref()
                .map_or(0, |key| bytes::encoded_len(6, key))
            + len_unless_default(7, &self.r#type, int32::encoded_len)
            + self
                .user_input_key
                .as_ref()
                .map_or(0, |key| bytes::encoded_len(8, key))
    }

    fn clear(&mut self) {
        *self = MetaTensor::default();
    }
}

impl Message for ModelConfig {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for (tag, value) in [
            (1, &self.num_infer),
            (2, &self.timeout),
            (3, &self.optimal_ncg_size),
        ] {
            if *value != 0 {
                int64::encode(tag, value, buf);
            }
        }
        for (tag, value) in [
            (4, &self.async_load),
            (5, &self.lazy_load),
            (6, &self.return_aliases),
        ] {
            if *value {
                boolean::encode(tag, value, buf);
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "ModelConfig";
        match tag {
            1 => int64::merge(wire_type, &mut self.num_infer, buf, ctx)
                .map_err(at(NAME, "num_infer")),
            2 => int64::merge(wire_type, &mut self.timeout, buf, ctx).map_err(at(NAME, "timeout")),
            3 => int64::merge(wire_type, &mut self.optimal_ncg_size, buf, ctx)
                .map_err(at(NAME, "optimal_ncg_size")),
            4 => boolean::merge(wire_type, &mut self.async_load, buf, ctx)
                .map_err(at(NAME, "async_load")),
            5 => boolean::merge(wire_type, &mut self.lazy_load, buf, ctx)
                .map_err(at(NAME, "lazy_load")),
            6 => boolean::merge(wire_type, &mut self.return_aliases, buf, ctx)
                .map_err(at(NAME, "return_aliases")),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        len_unless_default(1, &self.num_infer, int64::encoded_len)
            + len_unless_default(2, &self.timeout, int64::encoded_len)
            + len_unless_default(3, &self.optimal_ncg_size, int64::encoded_len)
            + len_unless_default(4, &self.async_load, boolean::encoded_len)
            + len_unless_default(5, &self.lazy_load, boolean::encoded_len)
            + len_unless_default(6, &self.return_aliases, boolean::encoded_len)
    }

    fn clear(&mut self) {
        *self = ModelConfig::default();
    }
}

impl Message for MetaNeff {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        message::encode_repeated(1, &self.input_tensors, buf);
        message::encode_repeated(2, &self.output_tensors, buf);
        if let Some(config) = &self.model_config {
            message::encode(3, config, buf);
        }
        if !self.serialized_graph_def.is_empty() {
            bytes::encode(4, &self.serialized_graph_def, buf);
        }
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
        for (tag, value) in [
            (7, &self.num_user_inputs),
            (8, &self.num_states),
            (9, &self.num_weights),
        ] {
            if *value != 0 {
                int64::encode(tag, value, buf);
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        const NAME: &str = "MetaNeff";
        match tag {
            1 => message::merge_repeated(wire_type, &mut self.input_tensors, buf, ctx)
                .map_err(at(NAME, "input_tensors")),
            2 => message::merge_repeated(wire_type, &mut self.output_tensors, buf, ctx)
                .map_err(at(NAME, "output_tensors")),
            3 => {
                let config = self.model_config.get_or_insert_with(ModelConfig::default);
                message::merge(wire_type, config, buf, ctx).map_err(at(NAME, "model_config"))
            }
            4 => bytes::merge(wire_type, &mut self.serialized_graph_def, buf, ctx)
                .map_err(at(NAME, "serialized_graph_def")),
            5 => bytes::merge(wire_type, &mut self.name, buf, ctx).map_err(at(NAME, "name")),
            6 => check_wire_type(WireType::LengthDelimited, wire_type)
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
            7 => int64::merge(wire_type, &mut self.num_user_inputs, buf, ctx)
                .map_err(at(NAME, "num_user_inputs")),
            8 => int64::merge(wire_type, &mut self.num_states, buf, ctx)
                .map_err(at(NAME, "num_states")),
            9 => int64::merge(wire_type, &mut self.num_weights, buf, ctx)
                .map_err(at(NAME, "num_weights")),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.input_tensors)
            + message::encoded_len_repeated(2, &self.output_tensors)
            + self
                .model_config
                .as_ref()
                .map_or(0, |config| message::encoded_len(3, config))
            + len_unless_default(4, &self.serialized_graph_def, bytes::encoded_len)
            + len_unless_default(5, &self.name, bytes::encoded_len)
            + btree_map::encoded_len(
                int64::encoded_len,
                int64::encoded_len,
                6,
                &self.output_aliases_to,
            )
            + len_unless_default(7, &self.num_user_inputs, int64::encoded_len)
            + len_unless_default(8, &self.num_states, int64::encoded_len)
            + len_unless_default(9, &self.num_weights, int64::encoded_len)
    }

    fn clear(&mut self) {
        *self = MetaNeff::default();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn tensor(name: &str, data_type: DataType, role: TensorType) -> MetaTensor {
        MetaTensor {
            name: name.into(),
            shape: vec![2, -1, 0, 300],
            data_type: data_type.into(),
            content: vec![1, 2, 3],
            allow_dynamic_batch_size: true,
            checkpoint_key: Some(b"layers.0.w".to_vec()),
            r#type: role.into(),
            user_input_key: Some(Vec::new()),
        }
    }

    /// Every field of every message set survives encode -> decode (an empty but set
    /// optional included), and messages of defaults encode to nothing.
    #[test]
    fn every_message_round_trips() {
        let meta = MetaNeff {
            input_tensors: vec![
                tensor("ids", DataType::Int64, TensorType::UserInput),
                MetaTensor::default(),
            ],
            output_tensors: vec![tensor("logits", DataType::Bfloat16, TensorType::InputState)],
            model_config: Some(ModelConfig {
                num_infer: 4,
                timeout: -1,
                optimal_ncg_size: 2,
                async_load: true,
                lazy_load: true,
                return_aliases: true,
            }),
            serialized_graph_def: b"hlo".to_vec(),
            name: b"model".to_vec(),
            output_aliases_to: BTreeMap::from([(0, 1), (-3, i64::MAX)]),
            num_user_inputs: 1,
            num_states: -2,
            num_weights: i64::MIN,
        };
        let bytes = meta.encode_to_vec();
        assert_eq!(bytes.len(), meta.encoded_len());
        assert_eq!(MetaNeff::decode(&*bytes).unwrap(), meta);
        let config = meta.model_config.clone().unwrap();
        assert_eq!(
            ModelConfig::decode(&*config.encode_to_vec()).unwrap(),
            config
        );
        let t = &meta.input_tensors[0];
        assert_eq!(MetaTensor::decode(&*t.encode_to_vec()).unwrap(), *t);
        assert!(MetaNeff::default().encode_to_vec().is_empty());
        assert!(ModelConfig::default().encode_to_vec().is_empty());
        assert!(MetaTensor::default().encode_to_vec().is_empty());
        let mut cleared = meta;
        cleared.clear();
        assert_eq!(cleared, MetaNeff::default());
    }

    /// Bytes written by hand: fields out of order, an unpacked `shape`, and unknown
    /// fields of every wire type (skipped); the accessors and enum conversions.
    #[test]
    fn hand_built_bytes_decode() {
        let tensor = [
            0x38, 2, // 7 type: INPUT_STATE
            0x10, 4, // 2 shape: 4 (unpacked)
            0x12, 2, 5, 6, // 2 shape: [5, 6] (packed)
            0x0a, 1, b'k', // 1 name: "k"
            0x60, 1, // 12 (unknown, varint)
            0x69, 0, 0, 0, 0, 0, 0, 0, 0, // 13 (unknown, 64-bit)
            0x18, 99, // 3 data_type: 99 (no such DataType)
            0x42, 0, // 8 user_input_key: set, empty
            0x75, 0, 0, 0, 0, // 14 (unknown, 32-bit)
        ];
        let mut bytes = vec![0x1a, 2, 0x28, 1]; // 3 model_config { lazy_load: true }
        bytes.extend_from_slice(&[0x52, 3, 1, 2, 3]); // 10 (unknown, bytes)
        bytes.extend_from_slice(&[0x0a, tensor.len() as u8]); // 1 input_tensors
        bytes.extend_from_slice(&tensor);
        bytes.extend_from_slice(&[0x32, 4, 0x08, 1, 0x10, 0]); // 6 output_aliases_to {1: 0}
        bytes.extend_from_slice(&[0x40, 1]); // 8 num_states: 1
        let meta = MetaNeff::decode(&*bytes).unwrap();
        let t = &meta.input_tensors[0];
        assert_eq!(
            (t.name.as_slice(), t.shape.as_slice()),
            (&b"k"[..], &[4, 5, 6][..])
        );
        assert_eq!((t.data_type, t.data_type()), (99, DataType::Undefined));
        assert_eq!(t.r#type(), TensorType::InputState);
        assert_eq!(
            (t.checkpoint_key.as_ref(), t.checkpoint_key()),
            (None, &b""[..])
        );
        assert_eq!(t.user_input_key, Some(Vec::new()));
        assert!(meta.model_config.as_ref().unwrap().lazy_load);
        assert_eq!(meta.output_aliases_to, BTreeMap::from([(1, 0)]));
        assert_eq!(meta.num_states, 1);
        assert!(format!("{t:?}").contains("data_type: 99, "), "{t:?}");
        assert!(format!("{t:?}").contains("r#type: InputState, "), "{t:?}");
        assert!(DataType::is_valid(14) && !DataType::is_valid(11));
        assert_eq!(TensorType::try_from(3), Ok(TensorType::InputWeight));
        assert_eq!(TensorType::try_from(4), Err(UnknownEnumValue(4)));
        assert_eq!(i32::from(DataType::Bfloat16), 14);
        let err = MetaNeff::decode(&[0x0a, 2, 0x18, 0x80][..]).unwrap_err();
        assert!(
            err.to_string()
                .contains("MetaTensor.data_type: MetaNeff.input_tensors"),
            "{err}"
        );
    }
}
