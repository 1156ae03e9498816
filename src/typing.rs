//! tract-onnx's graph (tract-hir's inference ops) into tract's typed graph.
//!
//! tract-hir's `into_typed` first runs its analyser, a solver over every op's inference rules, twice (before and after
//! its incorporate pass, which WRN-50-2's ops leave as they are), so that ops can read what it learnt. WRN-50-2's ops
//! do not need it: each is an expansion that wires tract's typed ops from the typed facts of its inputs, and the
//! inputs' facts are known (the model's input, its weights and constants). For graphs of only such ops, [`into_typed`]
//! translates them as tract-hir's translator does, without the analyser: the same typed graph, node for node (the test
//! in src/optimiser.rs holds WRN-50-2's to tract's own). In CPU profiles of loads in Node, the analyser took 10-30 ms;
//! natively, typing takes 1.6 instead of 4.5-5 ms.

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::EvalContext;
use tract_onnx::tract_core::model::translator::Translate;
use tract_onnx::tract_hir::infer::{Factoid, InferenceModelExt, InferenceNode, InferenceOp};

/// Ops that type themselves from their inputs' typed facts alone: tract-hir's `Expansion`s (their `to_typed` wires
/// them into the typed graph; none of these overrides it to read the analysed graph), sources and constants.
const SELF_TYPING_OPS: &[&str] =
    &["Source", "Const", "ConvHir", "Clip", "Add", "MaxPool", "GlobalAvgPool", "Flatten", "Gemm"];

/// `model.into_typed()`, without the analyser when every op types itself.
pub fn into_typed(model: InferenceModel) -> TractResult<TypedModel> {
    if types_itself(&model) { WithoutAnalysis.translate_model(&model) } else { model.into_typed() }
}

/// Whether every op of `model` is one of [`SELF_TYPING_OPS`].
pub fn types_itself(model: &InferenceModel) -> bool {
    model.nodes().iter().all(|node| SELF_TYPING_OPS.contains(&&*node.op.name()))
}

/// tract-hir's translator (the one `into_typed` runs): a node whose value the graph already knows becomes a constant,
/// any other is asked for its typed ops.
#[derive(Debug)]
struct WithoutAnalysis;

impl Translate<InferenceFact, Box<dyn InferenceOp>, TypedFact, Box<dyn TypedOp>> for WithoutAnalysis {
    fn translate_node(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        if !InferenceModel::is_source(&node.op)
            && node.op.state(&EvalContext::out_of_plan())?.is_none()
            && source.node_output_facts(node.id)?.iter().all(|f| f.value.is_concrete())
        {
            return (0..node.outputs.len())
                .map(|ix| {
                    let value =
                        node.outputs[ix].fact.value.concretize().ok_or_else(|| TractError::msg("a known value"))?;
                    target.add_const(format!("{}.{}", node.name, ix), value)
                })
                .collect();
        }
        let outputs = node.op.to_typed(source, node, target, mapping)?;
        for output in &outputs {
            target.outlet_fact(*output)?.consistent()?;
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::tensor_proto::DataType;
    use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto};

    use super::*;
    use crate::fold_weights::tensor_value_info;

    /// `Reshape(x, Shape(x))`: ops outside [`SELF_TYPING_OPS`].
    fn reshape_to_own_shape() -> InferenceModel {
        let node = |op_type: &str, input: &[&str], output: &str| NodeProto {
            op_type: op_type.into(),
            input: input.iter().map(|&i| i.into()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node("Shape", &["x"], "s"), node("Reshape", &["x", "s"], "y")],
            input: vec![tensor_value_info("x", DataType::Float, &[2, 3])],
            output: vec![tensor_value_info("y", DataType::Float, &[2, 3])],
            ..Default::default()
        };
        let opset = OperatorSetIdProto { domain: String::new(), version: 13 };
        let proto = ModelProto { ir_version: 8, graph: Some(graph), opset_import: vec![opset], ..Default::default() };
        tract_onnx::onnx().model_for_proto_model(&proto).unwrap()
    }

    /// A graph with other ops than WRN-50-2's is left to tract-hir's `into_typed` (whether the translation without the
    /// analyser would type it right is not known for every op), and typed.
    #[test]
    fn other_ops_are_typed_with_the_analyser() {
        assert!(!types_itself(&reshape_to_own_shape()));
        let typed = into_typed(reshape_to_own_shape()).unwrap();
        assert_eq!(typed.output_fact(0).unwrap().shape.as_concrete(), Some(&[2usize, 3][..]));
    }
}
