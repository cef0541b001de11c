# Quick start: the fully binary DIDB-ViT (W1A1) on Fashion-MNIST.
_base_ = [
    '../_base_/models/didbvit-mini_fashion-mnist.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fashion_mnist_adamw.py',
    '../_base_/default_runtime.py',
]
