//! Logits -> probabilities -> the best k classes.

use crate::labels::Class;

/// One ranked class with its probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: &'static str,
    pub wnid: &'static str,
    /// Softmax probability in [0, 1].
    pub score: f32,
}

/// Numerically stable softmax (the max is subtracted first), computed in f64 and returned as f32.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

/// The k highest scores, best first; ties keep the lower index first. NaN scores rank last.
pub fn top_k(scores: &[f32], classes: &[Class], k: usize) -> Vec<Prediction> {
    let mut order: Vec<usize> = (0..scores.len().min(classes.len())).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let nan_last = |i: &usize| scores[*i].is_nan();
    order.sort_by_key(nan_last);
    order
        .into_iter()
        .take(k)
        .map(|i| Prediction { index: i, label: classes[i].label, wnid: classes[i].wnid, score: scores[i] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::imagenet1k;

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let p = softmax(&[1000.0, 1001.0, 999.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
        assert!((p[1] - 0.665_240_9).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_by_score_with_labels() {
        let mut s = vec![0.0f32; 1000];
        s[281] = 0.5;
        s[504] = 0.3;
        s[0] = 0.3;
        s[967] = f32::NAN;
        let top = top_k(&s, imagenet1k(), 3);
        let got: Vec<_> = top.iter().map(|p| (p.index, p.wnid)).collect();
        assert_eq!(got, [(281, "n02123045"), (0, "n01440764"), (504, "n03063599")]);
        assert_eq!(top[0].label, "tabby, tabby cat");
        assert_eq!(top_k(&s, imagenet1k(), 5000).len(), 1000);
        assert_eq!(top_k(&s, imagenet1k(), 1000).last().unwrap().index, 967);
    }
}
