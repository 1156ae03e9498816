//! ImageNet-1k class names and WordNet IDs in the index order of the weights.
//! The data file is generated from timm's class info by tools/make_labels.py and compiled in.

const LABELS_TSV: &str = include_str!("imagenet1k_labels.tsv");

/// One ImageNet-1k class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub index: usize,
    /// WordNet ID, e.g. "n02123045"; ImageNet's validation folders are named by it.
    pub wnid: &'static str,
    /// WordNet lemmas, e.g. "tabby, tabby cat".
    pub label: &'static str,
}

/// All 1000 classes, parsed once.
pub fn imagenet1k() -> &'static [Class] {
    static CLASSES: std::sync::OnceLock<Vec<Class>> = std::sync::OnceLock::new();
    CLASSES.get_or_init(|| {
        LABELS_TSV
            .lines()
            .enumerate()
            .map(|(index, line)| {
                let (wnid, label) = line.split_once('\t').unwrap_or((line, ""));
                Class { index, wnid, label }
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_classes_with_unique_wnids() {
        let classes = imagenet1k();
        assert_eq!(classes.len(), 1000);
        let mut wnids: Vec<_> = classes.iter().map(|c| c.wnid).collect();
        wnids.sort();
        wnids.dedup();
        assert_eq!(wnids.len(), 1000);
        assert!(classes.iter().all(|c| c.wnid.len() == 9 && c.wnid.starts_with('n') && !c.label.is_empty()));
    }

    #[test]
    fn well_known_indices() {
        let c = imagenet1k();
        assert_eq!((c[0].wnid, c[0].label), ("n01440764", "tench, Tinca tinca"));
        assert_eq!((c[281].wnid, c[281].label), ("n02123045", "tabby, tabby cat"));
        assert_eq!((c[504].wnid, c[504].label), ("n03063599", "coffee mug"));
        assert_eq!((c[967].wnid, c[967].label), ("n07920052", "espresso"));
    }
}
