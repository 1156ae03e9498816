//! An ONNX file's large int8 weights read where they lie in its bytes, instead of copied out by prost.
//!
//! prost decodes each initializer's `raw_data` into a `Vec<u8>` of its own, through an intermediate copy: for
//! WRN-50-2 that is 69 MB copied twice at every load, and wasm memory, once grown, never shrinks. [`split_weights`]
//! walks the protobuf wire format down to the initializers (ModelProto.graph -> GraphProto.initializer ->
//! TensorProto.raw_data) and writes the file again without the raw data of its large int8 tensors, which it returns
//! as slices of the original bytes. prost then decodes a file of a few hundred kilobytes.

use std::borrow::Cow;
use std::collections::HashMap;

use tract_onnx::pb::{GraphProto, TensorProto, tensor_proto::DataType};

/// Field numbers of onnx.proto.
const MODEL_GRAPH: u64 = 7;
const MODEL_METADATA_PROPS: u64 = 14;
const ENTRY_KEY: u64 = 1;
const ENTRY_VALUE: u64 = 2;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_DATA_TYPE: u64 = 2;
const TENSOR_NAME: u64 = 8;
const TENSOR_RAW_DATA: u64 = 9;

/// Smaller tensors (zero points, a few scales) are left in place: they are cheap, and read by name here and there.
const MIN_SPLIT_BYTES: usize = 4096;

/// The raw data of the int8 tensors [`split_weights`] took out of a model's bytes, by tensor name (which ONNX makes
/// unique among initializers; of two with one name, only the first is taken out).
#[derive(Debug, Default)]
pub struct SplitWeights<'a> {
    by_name: HashMap<String, &'a [u8]>,
}

impl<'a> SplitWeights<'a> {
    /// A tensor's raw data: its own, or the bytes taken out of it.
    pub fn raw_data<'t>(&'t self, tensor: &'t TensorProto) -> &'t [u8] {
        match self.by_name.get(&tensor.name) {
            Some(bytes) if tensor.raw_data.is_empty() => bytes,
            _ => &tensor.raw_data,
        }
    }

    /// A tensor's raw data, taking it: the bytes taken out of it, in place, or its own.
    pub fn take(&self, tensor: TensorProto) -> Cow<'a, [u8]> {
        match self.by_name.get(&tensor.name) {
            Some(bytes) if tensor.raw_data.is_empty() => Cow::Borrowed(bytes),
            _ => Cow::Owned(tensor.raw_data),
        }
    }

    /// Puts the raw data back into the graph's initializers that still lack it (a copy each): for whatever reads
    /// them as plain ONNX from here on.
    pub fn restore(&self, graph: &mut GraphProto) {
        for tensor in &mut graph.initializer {
            if let Some(bytes) = self.by_name.get(&tensor.name).filter(|_| tensor.raw_data.is_empty()) {
                tensor.raw_data = bytes.to_vec();
            }
        }
    }
}

/// The model's bytes without the raw data of its large int8 initializers, and those data. None if it has none (an
/// f32 model: nothing to gain from a copy of its bytes), or if the bytes are not well-formed protobuf (prost, given
/// them as they are, then says what is wrong).
#[inline(never)] // a step of Model::from_onnx
pub fn split_weights(model: &[u8]) -> Option<(Vec<u8>, SplitWeights<'_>)> {
    let model_fields = fields(model)?;
    let graphs = || model_fields.iter().filter(|f| f.number == MODEL_GRAPH).filter_map(|f| f.payload);
    if !graphs().any(has_weights_to_split) {
        return None;
    }
    let mut weights = SplitWeights::default();
    let mut out = Vec::new();
    for field in &model_fields {
        match field {
            Field { number: MODEL_GRAPH, payload: Some(graph), .. } => {
                let graph = split_graph(graph, &mut weights)?;
                put_len_field(&mut out, MODEL_GRAPH, &graph);
            }
            _ => out.extend_from_slice(field.bytes),
        }
    }
    Some((out, weights))
}

/// The model's metadata_props (key, value), read off the wire without decoding its graph: cheap enough to check
/// which weights a file holds before it is loaded. None if the bytes are not well-formed protobuf.
pub fn model_metadata(model: &[u8]) -> Option<Vec<(String, String)>> {
    let entries = fields(model)?.into_iter().filter(|f| f.number == MODEL_METADATA_PROPS);
    let text = |entry: &[Field], number| {
        let field = entry.iter().rfind(|f| f.number == number);
        String::from_utf8_lossy(field.and_then(|f| f.payload).unwrap_or_default()).into_owned()
    };
    entries.map(|entry| fields(entry.payload?).map(|e| (text(&e, ENTRY_KEY), text(&e, ENTRY_VALUE)))).collect()
}

fn has_weights_to_split(graph: &[u8]) -> bool {
    let initializers = fields(graph).unwrap_or_default().into_iter().filter(|f| f.number == GRAPH_INITIALIZER);
    initializers.filter_map(|f| fields(f.payload?)).any(|tensor| to_split(&tensor).is_some())
}

fn split_graph<'a>(graph: &'a [u8], weights: &mut SplitWeights<'a>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(graph.len().min(1 << 20));
    for field in fields(graph)? {
        match field {
            Field { number: GRAPH_INITIALIZER, payload: Some(tensor), .. } => match split_tensor(tensor, weights)? {
                Some(tensor) => put_len_field(&mut out, GRAPH_INITIALIZER, &tensor),
                None => out.extend_from_slice(field.bytes),
            },
            _ => out.extend_from_slice(field.bytes),
        }
    }
    Some(out)
}

/// The tensor without its raw data, if it is one to take out (Some(None): kept as it is).
fn split_tensor<'a>(tensor: &'a [u8], weights: &mut SplitWeights<'a>) -> Option<Option<Vec<u8>>> {
    let fields = fields(tensor)?;
    let Some((name, raw)) = to_split(&fields).filter(|(name, _)| !weights.by_name.contains_key(*name)) else {
        return Some(None);
    };
    weights.by_name.insert(name.to_string(), raw);
    let mut out = Vec::with_capacity(tensor.len() - raw.len());
    for field in fields.iter().filter(|f| f.number != TENSOR_RAW_DATA) {
        out.extend_from_slice(field.bytes);
    }
    Some(Some(out))
}

/// The name and raw data of a tensor (by its fields) to take out: a large int8 tensor with one name and one raw data.
fn to_split<'a>(fields: &[Field<'a>]) -> Option<(&'a str, &'a [u8])> {
    let (mut name, mut data_type, mut raw) = (None, 0, None);
    for field in fields {
        match (field.number, field.payload) {
            (TENSOR_NAME, Some(n)) => name = std::str::from_utf8(n).ok(),
            (TENSOR_DATA_TYPE, None) => data_type = field.value,
            (TENSOR_RAW_DATA, Some(r)) => raw = Some(r),
            _ => {}
        }
    }
    let once = fields.iter().filter(|f| f.number == TENSOR_RAW_DATA || f.number == TENSOR_NAME).count() == 2;
    let (name, raw) = (name?, raw?);
    (data_type == DataType::Int8 as u64 && raw.len() >= MIN_SPLIT_BYTES && once && !name.is_empty())
        .then_some((name, raw))
}

/// One field of a message on the wire.
struct Field<'a> {
    number: u64,
    /// The whole field, key included, as it is on the wire.
    bytes: &'a [u8],
    /// A length-delimited field's content.
    payload: Option<&'a [u8]>,
    /// A varint field's value.
    value: u64,
}

/// The fields of a message, in wire order. None if it is not well-formed (or uses the deprecated groups).
fn fields(message: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut fields = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let start = pos;
        let key = varint(message, &mut pos)?;
        let (mut payload, mut value) = (None, 0);
        match key & 7 {
            0 => value = varint(message, &mut pos)?,
            1 => pos = pos.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(message, &mut pos)?).ok()?;
                payload = Some(message.get(pos..pos.checked_add(len)?)?);
                pos += len;
            }
            5 => pos = pos.checked_add(4)?,
            _ => return None,
        }
        fields.push(Field { number: key >> 3, bytes: message.get(start..pos)?, payload, value });
    }
    Some(fields)
}

fn varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        // A tenth byte may only hold the 64th bit, as prost requires.
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_len_field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tract_onnx::pb::{ModelProto, NodeProto, StringStringEntryProto};

    use super::*;

    fn tensor(name: &str, data_type: DataType, len: usize) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![len as i64],
            data_type: data_type as i32,
            raw_data: (0..len).map(|i| (i * 7 % 251) as u8).collect(),
            ..Default::default()
        }
    }

    fn model() -> ModelProto {
        let graph = GraphProto {
            name: "g".into(),
            node: vec![NodeProto { op_type: "Cast".into(), input: vec!["big".into()], ..Default::default() }],
            initializer: vec![
                tensor("big", DataType::Int8, 70_000),
                tensor("small", DataType::Int8, 16),
                tensor("float", DataType::Float, 40_000),
                tensor("big2", DataType::Int8, MIN_SPLIT_BYTES),
            ],
            ..Default::default()
        };
        ModelProto { ir_version: 8, producer_name: "test".into(), graph: Some(graph), ..Default::default() }
    }

    #[test]
    fn large_int8_weights_are_taken_out_and_restored_exactly() {
        let original = model();
        let bytes = original.encode_to_vec();
        let (split, weights) = split_weights(&bytes).expect("well-formed");
        assert!(split.len() < bytes.len() - 70_000 - MIN_SPLIT_BYTES + 200, "the large int8 data are out");
        let mut decoded = ModelProto::decode(split.as_slice()).unwrap();
        let graph = decoded.graph.as_mut().unwrap();
        let raw: Vec<usize> = graph.initializer.iter().map(|t| t.raw_data.len()).collect();
        assert_eq!(raw, [0, 16, 40_000, 0], "only the large int8 tensors lost their data");
        let expected = &original.graph.as_ref().unwrap().initializer;
        for (t, e) in graph.initializer.iter().zip(expected) {
            assert_eq!(weights.raw_data(t), e.raw_data.as_slice(), "{}'s data, in place", t.name);
        }
        weights.restore(graph);
        assert_eq!(decoded, original);
    }

    #[test]
    fn metadata_props_are_read_as_prost_decodes_them() {
        let mut with_props = model();
        let entry = |k: &str, v: &str| StringStringEntryProto { key: k.into(), value: v.into() };
        with_props.metadata_props = vec![entry("weights_sha256", "abc"), entry("", "no key"), entry("arch", "")];
        let bytes = with_props.encode_to_vec();
        let expected: Vec<_> = with_props.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        assert_eq!(model_metadata(&bytes), Some(expected));
        assert_eq!(model_metadata(&model().encode_to_vec()), Some(vec![]), "none");
        assert_eq!(model_metadata(&bytes[..bytes.len() - 3]), None, "truncated");

        // Written by hand: a key given twice in one entry (the last one counts), and two entries with one key.
        let entry = |fields: &[(u64, &str)]| {
            let mut e = Vec::new();
            fields.iter().for_each(|(number, text)| put_len_field(&mut e, *number, text.as_bytes()));
            e
        };
        let mut bytes = Vec::new();
        put_len_field(&mut bytes, MODEL_METADATA_PROPS, &entry(&[(1, "k"), (2, "v1"), (1, "key")]));
        put_len_field(&mut bytes, MODEL_METADATA_PROPS, &entry(&[(1, "key"), (2, "v2"), (2, "v3")]));
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap().metadata_props;
        let expected: Vec<_> = decoded.into_iter().map(|e| (e.key, e.value)).collect();
        assert_eq!(expected, [("key".to_string(), "v1".to_string()), ("key".into(), "v3".into())]);
        assert_eq!(model_metadata(&bytes), Some(expected));
    }

    #[test]
    fn malformed_bytes_and_models_without_int8_weights_are_not_split() {
        let bytes = model().encode_to_vec();
        assert!(split_weights(&bytes[..bytes.len() - 10]).is_none(), "truncated");
        assert!(split_weights(&[0x3b, 1]).is_none(), "a group");
        assert!(split_weights(&[0x3a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_none());
        assert!(split_weights(&[]).is_none(), "nothing to split");
        let mut f32_only = model();
        f32_only.graph.as_mut().unwrap().initializer.retain(|t| t.data_type != DataType::Int8 as i32);
        assert!(
            split_weights(&f32_only.encode_to_vec()).is_none(),
            "no int8 weights: the bytes are decoded as they are"
        );
    }
}
