#!/usr/bin/env python3
"""Writes src/imagenet1k_labels.tsv: the 1000 ImageNet-1k classes in index order, `wnid<TAB>label`.

Taken from timm's own class info (the package that publishes the weights), so the index order is the one the weights
were trained with. The label is the WordNet lemma list, e.g. "tabby, tabby cat". The output is committed; rerun this
only to check or refresh it.
"""
import os

from registry_wheel import read_members

TIMM = "timm==1.0.31"
INFO = "timm/data/_info/"
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "imagenet1k_labels.tsv")


def main():
    files = read_members(TIMM, [INFO + "imagenet_synsets.txt", INFO + "imagenet_synset_to_lemma.txt"])
    wnids = files[INFO + "imagenet_synsets.txt"].decode().split()
    lemmas = dict(line.split("\t", 1) for line in files[INFO + "imagenet_synset_to_lemma.txt"].decode().splitlines())
    assert len(wnids) == 1000, len(wnids)
    with open(OUT, "w") as f:
        for wnid in wnids:
            f.write(f"{wnid}\t{lemmas[wnid].strip()}\n")
    print(f"wrote {OUT} from {TIMM}")


if __name__ == "__main__":
    main()
