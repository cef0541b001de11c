"""Deploy-mode plumbing shared by the DIDB backbones."""
import re

from mmengine.logging import print_log

from ..deploy.switch import has_packed_weights

# float weights of the binary layers: ours and mmpretrain's (fused qkv, mmcv
# FFN, Swin's window attention and patch merging)
FLOAT_BINARY_WEIGHT = re.compile(
    r'\.(attn\.(w_msa\.)?(q|k|v|qkv|proj|local_difference|reduction)|'
    r'ffn\.(fc1|fc2|layers\.0\.0|layers\.1)|'
    r'(downsample|merge)\.reduction)\.weight$')


class DeployableMixin:
    """``switch_to_deploy`` and deploy-checkpoint loading for a backbone.

    The backbone calls :meth:`_init_deploy` at the end of its ``__init__``.
    """

    def _init_deploy(self, deploy: bool) -> None:
        self.deploy = False
        self._register_load_state_dict_pre_hook(self._switch_for_checkpoint)
        if deploy:
            self.switch_to_deploy()

    def switch_to_deploy(self) -> None:
        """Pack the binary weights and run the binary products on bits.

        Every binary linear keeps its weight as ``int32`` words (1 bit per
        weight) plus one scale per output channel, Q·Kᵀ and A·V run as
        XNOR/AND-popcount GEMMs, DIBA's θ×θ kernel is kept as packed signs.
        Full-precision parts (patch embedding, norms, softmax, activations,
        scales, position biases) are unchanged. Every integer product equals
        the training graph's; the only float difference is the rounding of
        the scale multiplications (see :mod:`mmdidb.models.deploy`,
        "Numerics"). Not reversible.
        """
        for module in self.modules():
            if module is not self and hasattr(module, 'switch_to_deploy'):
                module.switch_to_deploy()
        self.deploy = True

    def _switch_for_checkpoint(self, state_dict, prefix, *args, **kwargs):
        """Load hook: switch to deploy mode for a deploy checkpoint.

        It runs before the children load their entries, so they then find
        the packed buffers the checkpoint holds.
        """
        name = type(self).__name__
        packed = has_packed_weights(state_dict, prefix)
        if packed and not self.deploy:
            print_log(f'{name}: the checkpoint holds packed binary weights, '
                      'switching to deploy mode', logger='current')
            self.switch_to_deploy()
        elif not packed and has_packed_weights(dict(self.named_buffers())) \
                and any(k.startswith(prefix) and FLOAT_BINARY_WEIGHT.search(k)
                        for k in state_dict):
            raise RuntimeError(
                f'{name} is in deploy mode but the checkpoint holds float '
                'binary-layer weights; load it into a model in training form '
                'and call switch_to_deploy() afterwards, or convert it with '
                'tools/deploy/convert.py')
