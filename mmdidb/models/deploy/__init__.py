"""Deploy mode of DIDB-ViT: 1-bit packed weights, binary products on bits.

Switching
    ``switch_to_deploy(model)`` (this package; works on a classifier, a
    segmentor or the backbone) or ``DIDBViT.switch_to_deploy()`` turns a
    trained model into its inference form, in place and for good.
    mmpretrain 1.2.0's ``ImageClassifier`` has no ``switch_to_deploy`` of
    its own (only RepVGG-style backbones do), hence the walker.
    ``DIDBViT(deploy=True)`` builds a model directly in deploy form.

What changes (W1A1 layers only; W32 or A32 layers stay as they are)
    - ``BinaryLinear`` / ``WrappedBinaryLinear``: ``weight`` is replaced by
      ``weight_packed`` (``int32``, (out, ceil(in / 32)): the bits of
      ``sign(W - mean_row W)``, 1 bit per weight) and ``weight_scale``
      ((out,): ``mean_row |W|``). Forward: RSign, pack the ±1 input,
      ``bmm_pm1`` (XNOR-popcount), int32 -> float, ``* scale + bias``.
    - Q·Kᵀ (plain or both HFSC bands): the binarized Q and K are packed per
      head and multiplied with ``bmm_pm1``.
    - A·V in DIBA: the binarized attention ``alpha * mask`` is packed as a
      mask (``pack_mask``), V's ±1 columns as signs, ``bmm_mask_pm1``
      (AND-popcount) gives ``mask @ V`` and ``alpha`` multiplies it after.
      DIBA's self term keeps the training graph's formula.
    - DIBA's θ×θ local term: the kernel is stored as packed signs (1 bit per
      weight) + one scale per channel; the depthwise convolution stays a
      float ``conv2d`` of the ±1 kernel with the ±1 values, which is exact
      (every partial sum is a small integer), and the scales multiply after.

Numerics
    Every binarizer sees the same input in both forms, every integer product
    equals the training graph's float product of the same ±1 operands
    exactly, and the only float difference is the rounding of the scale
    multiplications (a scale times an integer sum instead of a sum of
    ±scale terms), about 1e-7 relative. Fed the same input, a deployed
    layer binarizes exactly what the training layer binarizes (0 of 69
    million values differ over the 12 layers of a DeiT-S on 4 images) and
    its output agrees to ~1e-5; small models agree end to end bit for bit
    in every binarized tensor, logits to ~1e-6 (tests/deploy). Through a
    deep model the 1e-7 differences accumulate until, now and then, a value
    lands on the other side of a binarization threshold and the flip
    cascades: on DeiT-S with random shifts, 3 of 4 images had logits off
    by up to 0.55 (top-1 unchanged). The training graph itself does the
    same between FP32 and FP64 (2 of the 4 images, up to 0.78): this is
    the precision of a binary network in float arithmetic, not a flaw of
    deploy mode.

CUDA graphs (:mod:`.graph_runtime`)
    ``switch_to_deploy(model, cuda_graph=True)`` (or
    :func:`enable_cuda_graph`) captures the backbone's forward into a CUDA
    graph on the first CUDA call and replays it for that input shape,
    removing the per-kernel Python, CuPy-launch and allocation overhead;
    other shapes run eagerly (one warning each). Same results bit for bit.
    ``tools/test.py --cuda-graph`` and ``tools/benchmark/inference.py``
    use it.

Deploy checkpoint (:func:`deploy_checkpoint`, ``tools/deploy/convert.py``)
    An ordinary mmengine checkpoint ``{'meta', 'state_dict'}`` whose state
    dict is the deployed model's: packed ``int32`` words for every binary
    weight, no float binary weights, the full-precision leftovers (patch
    embedding, head, norms, biases, scales, activations) in fp32, or in
    fp16 with ``--fp16``. ``meta['mmdidb_deploy']`` describes it. A
    ``DIDBViT`` in training form that loads a state dict holding
    ``*.weight_packed`` entries switches itself to deploy mode first (a load
    hook), so ``tools/test.py CONFIG DEPLOY_CKPT``, mmpretrain's own tools
    and ``init_model`` use deploy checkpoints unchanged. A model already in
    deploy mode refuses a training checkpoint.

    fp16 leftovers roughly halve the non-binary part of the file, but the
    rounded weights move pre-binarization activations, some signs flip, and
    the flips propagate through the binary layers: the logits are no longer
    those of the training graph (see docs/benchmarks.md, "Deploy checkpoint
    sizes"). Use them only after checking the accuracy.
"""
from .checkpoint import META_KEY, deploy_checkpoint
from .graph_runtime import (
    CUDAGraphRunner,
    disable_cuda_graph,
    enable_cuda_graph,
    graph_runner,
)
from .switch import PACKED_SUFFIX, has_packed_weights, switch_to_deploy

__all__ = [
    'CUDAGraphRunner', 'META_KEY', 'PACKED_SUFFIX', 'deploy_checkpoint',
    'disable_cuda_graph', 'enable_cuda_graph', 'graph_runner',
    'has_packed_weights', 'switch_to_deploy'
]
