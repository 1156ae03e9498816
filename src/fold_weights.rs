//! ONNX rewrites of the weights before tract sees the graph, for the two ways a model holds them (WeightMemory).
//!
//! A weight-only int8 ONNX file stores each weight as int8 + per-channel scale behind a DequantizeLinear node. tract
//! would constant-evaluate those nodes through a generic broadcasting path during analysis (~4.5 s for WRN-50-2).
//! - f32: [`fold_constant_dequantize`] computes `(q - zero) * scale` here in a plain loop (~0.1 s) and leaves tract an
//!   fp32 graph: the same numbers as onnxruntime's DequantizeLinear.
//! - int8: [`lift_int8_weights`] takes the int8 tensors out as f32-typed model inputs read by their Conv or Gemm
//!   directly, with their scales aside; int8_panels takes over from there.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{GraphProto, NodeProto, TensorProto, tensor_proto::DataType};
use tract_onnx::pb::{TensorShapeProto, TypeProto, ValueInfoProto, type_proto};

use crate::error::{Error, Result};
use crate::proto_split::SplitWeights;

/// Replaces every DequantizeLinear whose inputs are all initializers by an f32 initializer of the same name as its
/// output. Returns how many were folded.
#[inline(never)] // a step of Model::from_onnx
pub fn fold_constant_dequantize(graph: &mut GraphProto) -> Result<usize> {
    let mut folded = 0;
    let nodes = std::mem::take(&mut graph.node);
    let mut kept = Vec::with_capacity(nodes.len());
    for node in nodes {
        if node.op_type == "DequantizeLinear" && node.input.iter().all(|i| initializer(graph, i).is_some()) {
            let tensor = dequantize(graph, &node)?;
            graph.initializer.push(tensor);
            folded += 1;
        } else {
            kept.push(node);
        }
    }
    graph.node = kept;
    drop_unused_initializers(graph);
    Ok(folded)
}

/// Drops the initializers (int8 tensors, scales, zero points, biases) no node reads any more.
fn drop_unused_initializers(graph: &mut GraphProto) {
    let used: HashSet<&str> = graph.node.iter().flat_map(|n| n.input.iter().map(String::as_str)).collect();
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let keep: Vec<bool> =
        graph.initializer.iter().map(|t| used.contains(t.name.as_str()) || outputs.contains(t.name.as_str())).collect();
    let mut keep = keep.into_iter();
    graph.initializer.retain(|_| keep.next().unwrap_or(true));
}

/// Takes every Conv or Gemm (transB=1) whose weight is a per-output-channel symmetric DequantizeLinear of an int8
/// constant (raw bytes, in the tensor or taken out by proto_split, read by nothing else) off its DequantizeLinear:
/// the node reads the int8 tensor's name directly, and that name becomes a graph input of type f32 and the same
/// shape. Returns those int8 tensors, each with its per-channel scales; int8_panels packs them once tract has
/// optimised the graph, each row (output channel) times its scale: the very products of DequantizeLinear.
///
/// As constants, tract would evaluate each weight's dequantisation in full: the small ones folded into f32 (4x their
/// size), the ones above its 4 MiB folding budget on every optimiser pass, only to drop the result for its size.
/// That was most of the load time (natively 0.85 s of 1.3 s). Read by its node itself, each weight is one node of
/// tract's graph (its Source), where a `Cast -> Conv -> Mul(scales) -> Add(bias)` rewrite took four and two
/// constants: half the nodes for tract's typing, decluttering and codegen to walk.
#[inline(never)] // a step of Model::from_onnx
pub fn lift_int8_weights(graph: &mut GraphProto, split: &SplitWeights) -> Result<Vec<(TensorProto, Vec<f32>)>> {
    let producers: HashMap<String, NodeProto> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
        .filter_map(|n| Some((n.output.first()?.clone(), n.clone())))
        .collect();
    // Graph outputs count as readers; a name that is a graph input already (as initializers were listed in older
    // files) is left alone.
    let mut readers: HashMap<&str, usize> = HashMap::new();
    for name in graph.node.iter().flat_map(|n| &n.input).chain(graph.output.iter().map(|o| &o.name)) {
        *readers.entry(name.as_str()).or_default() += 1;
    }
    let inputs: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    let mut lift: HashMap<String, Vec<f32>> = HashMap::new();
    let mut rewired = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        let Some(Int8Plan { q_name, scale }) = int8_plan(graph, split, &producers, node) else {
            continue;
        };
        // The DequantizeLinear feeds this node alone, and its int8 tensor feeds that DequantizeLinear alone.
        let read_once = |name: &str| readers.get(name) == Some(&1);
        if !read_once(&node.input[1]) || !read_once(&q_name) || inputs.contains(q_name.as_str()) {
            continue;
        }
        rewired.push((i, q_name.clone()));
        lift.insert(q_name, scale);
    }
    for (i, q_name) in rewired {
        graph.node[i].input[1] = q_name;
    }
    // The DequantizeLinear nodes of the lifted weights have no reader left.
    let used: HashSet<String> = graph.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    graph.node.retain(|n| n.op_type != "DequantizeLinear" || n.output.iter().any(|o| used.contains(o)));
    let (lifted, kept): (Vec<_>, Vec<_>) =
        std::mem::take(&mut graph.initializer).into_iter().partition(|t| lift.contains_key(&t.name));
    graph.initializer = kept;
    drop_unused_initializers(graph);
    graph.input.extend(lifted.iter().map(|t| tensor_value_info(&t.name, DataType::Float, &t.dims)));
    Ok(lifted
        .into_iter()
        .map(|t| {
            let scale = lift.remove(&t.name).unwrap_or_default();
            (t, scale)
        })
        .collect())
}

/// A graph input or output: a tensor named `name` of `elem_type` and fixed `dims`.
pub(crate) fn tensor_value_info(name: &str, elem_type: DataType, dims: &[i64]) -> ValueInfoProto {
    let dim = dims.iter().map(|&d| Dimension { value: Some(dimension::Value::DimValue(d)), ..Default::default() });
    let tensor =
        type_proto::Tensor { elem_type: elem_type as i32, shape: Some(TensorShapeProto { dim: dim.collect() }) };
    let r#type = Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() });
    ValueInfoProto { name: name.into(), r#type, ..Default::default() }
}

/// Elements of a tensor of these dims; None for a negative dim or an overflow.
pub fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
}

struct Int8Plan {
    q_name: String,
    /// One per output channel.
    scale: Vec<f32>,
}

/// What it takes to run `node` on its int8 weight, if it qualifies.
fn int8_plan(
    graph: &GraphProto,
    split: &SplitWeights,
    producers: &HashMap<String, NodeProto>,
    node: &NodeProto,
) -> Option<Int8Plan> {
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let is_conv = match node.op_type.as_str() {
        "Conv" if attr("group").is_none_or(|a| a.i == 1) => true,
        "Gemm"
            if attr("transB").is_some_and(|a| a.i == 1)
                && attr("transA").is_none_or(|a| a.i == 0)
                && attr("alpha").is_none_or(|a| a.f == 1.0)
                && attr("beta").is_none_or(|a| a.f == 1.0) =>
        {
            false
        }
        _ => return None,
    };
    let dq = producers.get(node.input.get(1)?)?;
    let q = initializer(graph, dq.input.first()?)?;
    // Per output channel: axis 0 of the weight (ONNX's default axis is 1).
    let axis = dq.attribute.iter().find(|a| a.name == "axis").map_or(1, |a| a.i);
    if axis != 0 && axis != -(q.dims.len() as i64) {
        return None;
    }
    if (is_conv && q.dims.len() < 3) || node.output.is_empty() {
        return None;
    }
    // Raw int8 bytes, all of them: what int8_panels reads.
    if q.data_type != DataType::Int8 as i32 || element_count(&q.dims) != Some(split.raw_data(q).len()) {
        return None;
    }
    let scale = floats(initializer(graph, dq.input.get(1)?)?)?;
    let channels = *q.dims.first()? as usize;
    // A zero point as large as a weight may have been taken out of the bytes too (proto_split).
    let zero_is_0 = match dq.input.get(2).filter(|n| !n.is_empty()) {
        Some(z) => {
            let zero = initializer(graph, z).and_then(|z| integers(z, split.raw_data(z)))?;
            zero.len() == channels && zero.iter().all(|&z| z == 0)
        }
        None => true,
    };
    if !zero_is_0 || scale.len() != channels {
        return None;
    }
    Some(Int8Plan { q_name: q.name.clone(), scale })
}

#[cfg(test)]
pub(crate) fn f32_tensor(name: String, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name,
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn initializer<'g>(graph: &'g GraphProto, name: &str) -> Option<&'g TensorProto> {
    graph.initializer.iter().find(|t| t.name == name)
}

fn dequantize(graph: &GraphProto, node: &NodeProto) -> Result<TensorProto> {
    let err = |msg: String| Error::Model(format!("DequantizeLinear {}: {msg}", node.name));
    let x = initializer(graph, &node.input[0]).ok_or_else(|| err("no input".into()))?;
    let scale = node.input.get(1).and_then(|name| initializer(graph, name)).ok_or_else(|| err("no scale".into()))?;
    let scale = floats(scale).ok_or_else(|| err("scale is not float32".into()))?;
    let q = integers(x, &x.raw_data).ok_or_else(|| err(format!("unsupported input type {}", x.data_type)))?;
    let zero = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(name) => initializer(graph, name)
            .ok_or_else(|| err("no zero point".into()))
            .map(|z| integers(z, &z.raw_data))?
            .ok_or_else(|| err("zero point is not an 8-bit integer".into()))?,
        None => vec![0; scale.len()],
    };
    let dims: Vec<usize> = x.dims.iter().map(|&d| d as usize).collect();
    if q.len() != dims.iter().product::<usize>() {
        return Err(err(format!("{} values for dims {dims:?}", q.len())));
    }
    // Per-tensor (one scale) or per-axis (one scale per index along `axis`, ONNX's default axis being 1).
    let (channels, inner) = if scale.len() == 1 {
        (1, q.len().max(1))
    } else {
        let axis = node.attribute.iter().find(|a| a.name == "axis").map_or(1, |a| a.i);
        let axis = if axis < 0 { axis + dims.len() as i64 } else { axis } as usize;
        let channels = *dims.get(axis).ok_or_else(|| err(format!("axis {axis} out of {dims:?}")))?;
        (channels, dims[axis + 1..].iter().product())
    };
    if scale.len() != channels || zero.len() != channels {
        return Err(err(format!("{} scales, {} zero points for {channels} channels", scale.len(), zero.len())));
    }
    let mut raw = Vec::with_capacity(q.len() * 4);
    for (i, &v) in q.iter().enumerate() {
        let c = (i / inner) % channels;
        raw.extend_from_slice(&(((v - zero[c]) as f32) * scale[c]).to_le_bytes());
    }
    Ok(TensorProto {
        name: node.output[0].clone(),
        dims: x.dims.clone(),
        data_type: DataType::Float as i32,
        raw_data: raw,
        ..Default::default()
    })
}

fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        return None;
    }
    if t.raw_data.is_empty() {
        return Some(t.float_data.clone());
    }
    Some(t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// An 8-bit integer tensor's values, from `raw` (its raw data, wherever it is) or its int32_data.
fn integers(t: &TensorProto, raw: &[u8]) -> Option<Vec<i32>> {
    let from_raw = |f: fn(u8) -> i32| -> Vec<i32> {
        if raw.is_empty() { t.int32_data.clone() } else { raw.iter().map(|&b| f(b)).collect() }
    };
    match DataType::try_from(t.data_type).ok()? {
        DataType::Int8 => Some(from_raw(|b| b as i8 as i32)),
        DataType::Uint8 => Some(from_raw(|b| b as i32)),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use prost::Message;
    use tract_onnx::pb::ModelProto;

    use tract_onnx::pb::AttributeProto;
    use tract_onnx::pb::attribute_proto::AttributeType;

    use super::*;
    use crate::proto_split::split_weights;

    fn int_attribute(name: &str, i: i64) -> AttributeProto {
        AttributeProto { name: name.into(), i, r#type: AttributeType::Int as i32, ..Default::default() }
    }

    /// An ONNX node `op_type(inputs) -> output` with one integer attribute.
    fn node(op_type: &str, inputs: &[&str], output: &str, (name, value): (&str, i64)) -> NodeProto {
        NodeProto {
            op_type: op_type.into(),
            input: inputs.iter().map(|&i| i.into()).collect(),
            output: vec![output.into()],
            attribute: vec![int_attribute(name, value)],
            ..Default::default()
        }
    }

    /// `DequantizeLinear(q, scale[, zero], axis 0) -> w`, then `Conv(x, w)` in `group` groups into y.
    pub(crate) fn dequantize_then_conv(
        q: TensorProto,
        scale: TensorProto,
        zero: Option<TensorProto>,
        group: i64,
    ) -> GraphProto {
        let inputs: Vec<&str> =
            [Some(&q), Some(&scale), zero.as_ref()].into_iter().flatten().map(|t| &*t.name).collect();
        let dequantize = node("DequantizeLinear", &inputs, "w", ("axis", 0));
        let conv = node("Conv", &["x", "w"], "y", ("group", group));
        let initializer = [Some(q), Some(scale), zero].into_iter().flatten().collect();
        GraphProto { node: vec![dequantize, conv], initializer, ..Default::default() }
    }

    /// A Conv whose weight is a per-channel DequantizeLinear with a zero point as large as the weight (4096
    /// channels), as bytes: both int8 tensors are large enough for proto_split to take them out.
    fn conv_with_zero_point(zero: i8) -> Vec<u8> {
        let channels = 4096;
        let int8 = |name: &str, dims: Vec<i64>, value: i8| TensorProto {
            name: name.into(),
            dims,
            data_type: DataType::Int8 as i32,
            raw_data: vec![value as u8; channels as usize],
            ..Default::default()
        };
        let graph = dequantize_then_conv(
            int8("q", vec![channels, 1, 1, 1], 3),
            f32_tensor("scale".into(), &[channels], &vec![0.5; channels as usize]),
            Some(int8("zero", vec![channels], zero)),
            1,
        );
        ModelProto { graph: Some(graph), ..Default::default() }.encode_to_vec()
    }

    fn small_int8(name: &str, dims: Vec<i64>) -> TensorProto {
        let count = element_count(&dims).unwrap();
        let raw_data = (0..count).map(|i| (i % 7) as u8).collect();
        TensorProto { name: name.into(), dims, data_type: DataType::Int8 as i32, raw_data, ..Default::default() }
    }

    /// A Conv with a bias and a Gemm (transB) read their int8 weights directly, which become f32 graph inputs of the
    /// same shape, with their scales; the DequantizeLinear nodes are gone, the bias stays the Conv's.
    #[test]
    fn a_conv_with_a_bias_and_a_gemm_read_their_lifted_weights() {
        let mut graph = dequantize_then_conv(
            small_int8("q", vec![4, 2, 1, 1]),
            f32_tensor("scale".into(), &[4], &[0.5, 1.0, 2.0, 4.0]),
            None,
            1,
        );
        graph.node[1].input.push("bias".into());
        graph.initializer.push(f32_tensor("bias".into(), &[4], &[0.0; 4]));
        let gemm_dq = node("DequantizeLinear", &["q2", "scale2"], "w2", ("axis", 0));
        let gemm = node("Gemm", &["y", "w2"], "z", ("transB", 1));
        graph.node.extend([gemm_dq, gemm]);
        graph.initializer.extend([small_int8("q2", vec![3, 4]), f32_tensor("scale2".into(), &[3], &[0.25; 3])]);
        let lifted = lift_int8_weights(&mut graph, &SplitWeights::default()).unwrap();
        let names: Vec<&str> = lifted.iter().map(|(t, _)| t.name.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(lifted.iter().any(|(t, scale)| t.name == "q" && scale == &[0.5, 1.0, 2.0, 4.0]));
        assert!(lifted.iter().any(|(t, scale)| t.name == "q2" && scale == &[0.25; 3]));
        assert!(graph.node.iter().all(|n| n.op_type != "DequantizeLinear"));
        assert_eq!(graph.node[0].input, ["x", "q", "bias"], "the Conv reads its weight and keeps its bias");
        assert_eq!(graph.node[1].input, ["y", "q2"]);
        let input_types: Vec<(&str, i32)> = graph
            .input
            .iter()
            .map(|i| match &i.r#type.as_ref().unwrap().value {
                Some(type_proto::Value::TensorType(t)) => (i.name.as_str(), t.elem_type),
                _ => panic!("not a tensor"),
            })
            .collect();
        assert_eq!(input_types, [("q", DataType::Float as i32), ("q2", DataType::Float as i32)]);
        assert!(graph.initializer.iter().all(|t| t.name == "bias"), "the int8 tensors and scales are out");
    }

    /// A dequantised weight read by two nodes, or that is also a graph output, stays as it is (folded later).
    #[test]
    fn weights_read_elsewhere_are_not_lifted() {
        let graph = || {
            dequantize_then_conv(
                small_int8("q", vec![4, 2, 1, 1]),
                f32_tensor("scale".into(), &[4], &[1.0; 4]),
                None,
                1,
            )
        };
        let mut twice = graph();
        let mut second = twice.node[1].clone();
        second.output = vec!["y2".into()];
        twice.node.push(second);
        let mut output = graph();
        output.output.push(tensor_value_info("w", DataType::Float, &[4, 2, 1, 1]));
        for mut graph in [twice, output] {
            assert!(lift_int8_weights(&mut graph, &SplitWeights::default()).unwrap().is_empty());
            assert!(graph.node.iter().any(|n| n.op_type == "DequantizeLinear"));
        }
    }

    #[test]
    fn a_zero_point_taken_out_of_the_bytes_is_still_read() {
        for (zero, symmetric) in [(0, true), (1, false)] {
            let bytes = conv_with_zero_point(zero);
            let (split_bytes, split) = split_weights(&bytes).expect("large int8 tensors");
            let mut proto = ModelProto::decode(split_bytes.as_slice()).unwrap();
            let graph = proto.graph.as_mut().unwrap();
            assert!(graph.initializer.iter().all(|t| t.name == "scale" || t.raw_data.is_empty()), "both were split");
            let lifted = lift_int8_weights(graph, &split).unwrap();
            assert_eq!(
                lifted.iter().any(|(t, _)| t.name == "q"),
                symmetric,
                "zero point {zero}: lifted only if symmetric"
            );
        }
    }
}
