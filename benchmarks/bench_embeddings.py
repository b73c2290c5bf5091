"""Embeddings protocol (spec/benchmarks.md): ADBench ResNet18 CV embeddings
(CIFAR10_k, SVHN_k, MVTec-AD, d = 512) and the BERT / RoBERTa 20news_3 sets (d = 768).

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
