"""Embeddings protocol: ADBench ResNet18 CV embeddings (CIFAR10_k, SVHN_k,
MVTec-AD, d = 512) and the BERT / RoBERTa 20news_3 sets (d = 768).

The split is ``skhyper.datasets.one_class_split`` with seed 0: normal rows
shuffled, 70% (at most 10,000) train; test = the other normals plus every
anomaly (at most 10,000, drawn at random); standardised on the training rows.
Every method of ``skhyper.evaluation`` runs on the same split (SparKer in
reference mode). Results: ``results/embeddings.*``, shown in doc/benchmarks.md.

    python benchmarks/bench_embeddings.py
    python benchmarks/bench_embeddings.py --datasets MVTec --limit 3
"""

import sys

import _oneclass

if __name__ == "__main__":
    sys.exit(_oneclass.main(
        "embeddings",
        ["adbench/cv_resnet18", "adbench/nlp_bert", "adbench/nlp_roberta"],
        "ADBench embedding one-class benchmark (embeddings protocol)"))
