//! tract's optimiser loop (`Optimizer::optimize`), with a patch application of our own.
//!
//! tract 0.23's `ModelPatch::apply` compares each node a patch adds with every node of the graph (`dyn_eq`, then its
//! inputs), to reuse one already there. The loop has no effect: its `continue` only moves on to the next node compared,
//! and the patch's node is added after it whatever was found. But it makes each patch cost the size of the graph
//! (~1,000 patches while WRN-50-2 is optimised, on graphs of 230 to 630 nodes): in Node, a CPU profile of a load
//! showed 45 ms in `apply`, most of it in that loop (`dyn_eq` and `as_op` alone 30 ms). [`apply`] is tract's without
//! it, so the graph comes out the same, node for node. [`optimize`] is tract's loop over the passes, which has to be
//! ours to apply their patches with it.

use std::collections::{HashMap, HashSet};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{TypedModelPatch, ensure, rctensor0};
use tract_onnx::tract_core::model::{Node, STAGE_OPTIMIZED, SpecialOps, TRACT_STAGE};
use tract_onnx::tract_core::optim::Optimizer;

/// Runs `optimizer`'s passes on `model` until none changes it, as `Optimizer::optimize` does.
pub fn optimize(optimizer: &Optimizer, model: &mut TypedModel) -> TractResult<()> {
    ensure!(optimizer.steps.is_none(), "an optimizer stopping after some steps");
    let _proof_session = model.symbols.proof_cache_session();
    model.compact()?;
    let mut session = optimizer.session();
    let mut seen = HashSet::new();
    loop {
        let mut patched = false;
        // Each round with passes as new, as tract's run_all_passes.
        for pass in optimizer.passes.clone().iter_mut() {
            // A pass runs until it makes no patch (run_direct's changes alone do not count, as in tract).
            loop {
                pass.reset()?;
                let mut applied = 0;
                while let Some(mut patch) = pass.next(&mut session, model)? {
                    if let Some(watchdog) = patch.dont_apply_twice.take()
                        && !seen.insert(watchdog)
                    {
                        continue;
                    }
                    apply(patch, model)?;
                    applied += 1;
                }
                pass.run_direct(model)?;
                if applied == 0 {
                    break;
                }
                patched = true;
                model.compact()?;
            }
            model.compact()?;
        }
        if !patched {
            return Ok(());
        }
        model.compact()?;
    }
}

/// tract's codegen (`TypedModel::optimize`), run by [`optimize`].
pub fn codegen(model: &mut TypedModel) -> TractResult<()> {
    optimize(&Optimizer::codegen(), model)?;
    model.properties.insert(TRACT_STAGE.to_string(), rctensor0(STAGE_OPTIMIZED.to_string()));
    Ok(())
}

/// `patch.apply(target)` (tract 0.23.9's `ModelPatch::apply`) without its search for nodes equal to the new ones.
pub fn apply(patch: TypedModelPatch, target: &mut TypedModel) -> TractResult<()> {
    let TypedModelPatch { model: patch, taps: mut mapping, shunts, obliterate, inputs: replaced_inputs, .. } = patch;
    let mut all_inputs = HashMap::new(); // new node in target -> its inputs, as patch outlets
    let mut model_input_outlets = target.input_outlets()?.to_vec();
    let mut new_nodes = Vec::new();
    for node in patch.nodes {
        if TypedModel::is_source(&node.op) && mapping.contains_key(&OutletId::new(node.id, 0)) {
            continue; // a tap
        }
        let Node { id: patch_node_id, name, inputs, op, outputs } = node;
        let n_outputs = outputs.len();
        let facts = outputs.into_iter().map(|of| of.fact).collect();
        let added_node_id = target.add_node(name, op, facts)?;
        new_nodes.push(added_node_id);
        for ix in 0..n_outputs {
            mapping.insert(OutletId::new(patch_node_id, ix), OutletId::new(added_node_id, ix));
        }
        all_inputs.insert(added_node_id, inputs);
        if TypedModel::is_source(&target.node(added_node_id).op) {
            // An input replaced.
            let replaced = replaced_inputs[&patch_node_id];
            model_input_outlets.iter_mut().filter(|oo| oo.node == replaced).for_each(|oo| oo.node = added_node_id);
        }
    }
    let mut shunts: Vec<_> = shunts.into_iter().collect();
    shunts.sort();
    for (outlet, by) in &shunts {
        let replace_by = mapping[by];
        let successors = target.nodes[outlet.node].outputs[outlet.slot].successors.clone();
        for successor in successors {
            target.add_edge(replace_by, successor)?;
        }
        target.outputs.iter_mut().filter(|o| **o == *outlet).for_each(|o| *o = replace_by);
        if let Some(label) = target.outlet_labels.remove(outlet) {
            target.set_outlet_label(replace_by, label)?;
        }
    }
    let mut all_inputs: Vec<_> = all_inputs.into_iter().collect();
    all_inputs.sort_by_key(|(node, _)| *node);
    for (node, inputs) in all_inputs {
        for (ix, input) in inputs.iter().enumerate() {
            target.add_edge(mapping[input], InletId::new(node, ix))?;
        }
    }
    for node in obliterate {
        target.node_mut(node).op = target.create_dummy();
    }
    target.set_input_outlets(&model_input_outlets)?;
    let mut maybe_garbage: HashSet<usize> = shunts.iter().map(|(outlet, _)| outlet.node).collect();
    while let Some(&maybe) = maybe_garbage.iter().next() {
        maybe_garbage.remove(&maybe);
        if !target.outputs.iter().any(|output| output.node == maybe)
            && !target.inputs.iter().any(|input| input.node == maybe)
            && target.node(maybe).outputs.iter().all(|of| of.successors.is_empty())
        {
            target.node_mut(maybe).op = target.create_dummy();
            target.node_mut(maybe).name = format!("Dummy-node-{maybe}");
            target.node_mut(maybe).outputs.clear(); // drops facts and consts
            let inputs = std::mem::take(&mut target.node_mut(maybe).inputs);
            for input in inputs {
                target.node_mut(input.node).outputs[input.slot].successors.retain(|s| s.node != maybe);
                maybe_garbage.insert(input.node);
            }
        }
    }
    for n in new_nodes {
        if let Some((prefix, _)) = target.nodes[n].name.split_once('#') {
            target.nodes[n].name = target.unique_name(prefix).into();
        } else if target.nodes.iter().any(|node| node.id != n && target.nodes[n].name == node.name) {
            target.nodes[n].name = target.unique_name(&target.nodes[n].name).to_string();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tract_onnx::pb::ModelProto;

    use super::*;

    /// Each node of `model` in order: its name, op, inputs and output facts (constants' first values included).
    fn nodes(model: &TypedModel) -> Vec<String> {
        let facts = |node: &TypedNode| node.outputs.iter().map(|o| format!("{:?}", o.fact)).collect::<Vec<_>>();
        model.nodes().iter().map(|n| format!("{} {} {:?} {:?}", n.name, n.op().name(), n.inputs, facts(n))).collect()
    }

    /// WRN-50-2 (the fp32 file model/ holds), typed, decluttered and optimised by tract itself, and as the load does
    /// it (crate::typing, then [`optimize`] and [`codegen`]): the same graph, node for node. Its optimisation takes
    /// hundreds of patches of every kind a load of it meets (1x1 convolutions as EinSum, strided ones downsampled,
    /// biases, pooling, the classifier's Gemm, then their codegen and fusion).
    #[test]
    fn the_load_optimises_wrn50_2_as_tract_does() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("model");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join("manifest.json")).expect("model/: tools/build-model"))
                .unwrap();
        let file = manifest["fp32_model_file"].as_str().expect("an fp32 copy: tools/build-model adds it");
        let mut proto = ModelProto::decode(&*std::fs::read(root.join(file)).unwrap()).unwrap();
        proto.graph.as_mut().unwrap().value_info.clear();
        let inference = || {
            let model = tract_onnx::onnx().model_for_proto_model(&proto).unwrap();
            model.with_input_fact(0, f32::fact([1, 3, 224, 224]).into()).unwrap()
        };
        let declutter = crate::model::declutter_without_change_axes;

        let mut tracts = inference().into_typed().unwrap();
        declutter().optimize(&mut tracts).unwrap();
        let tracts_decluttered = nodes(&tracts);
        tracts.optimize().unwrap();

        assert!(crate::typing::types_itself(&inference()), "typed without tract-hir's analyser");
        let mut ours = crate::typing::into_typed(inference()).unwrap();
        optimize(&declutter(), &mut ours).unwrap();
        assert_eq!(nodes(&ours), tracts_decluttered);
        codegen(&mut ours).unwrap();
        assert_eq!(nodes(&ours), nodes(&tracts));
        assert!(ours.nodes().iter().filter(|n| n.op().name() == "OptMatMul").count() >= 50, "optimised to matmuls");
    }
}
