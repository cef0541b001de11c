# DIDBBinaryViT (W1A1) on Fashion-MNIST with the quick start's data, schedule and
# budget, for a comparison with DIDB-ViT (tools/benchmark/compare_fashion_mnist.py
# --set backbones).
_base_ = [
    '../_base_/models/didbbinaryvit-mini_fashion-mnist.py',
    '../_base_/datasets/fashion_mnist.py',
    '../_base_/schedules/fashion_mnist_adamw.py',
    '../_base_/default_runtime.py',
]
