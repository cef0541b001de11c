"""Deploy switch and checkpoint on a tiny module tree, values written out."""
import pytest
import torch
from torch import nn

from mmdidb.models.deploy import (
    META_KEY,
    deploy_checkpoint,
    has_packed_weights,
    switch_to_deploy,
)
from mmdidb.models.layers import BinaryLinear


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        BinaryLinear(40, 8),                      # W1A1: packed
        nn.LayerNorm(8),
        BinaryLinear(8, 4, binary_acts=False),    # W1A32: stays float
        nn.Sequential(BinaryLinear(8, 3)))        # nested W1A1


def test_switch_names_the_switched_modules_once():
    model = _model()
    assert switch_to_deploy(model) == ['0', '3.0']
    assert model[0].deploy and model[3][0].deploy and not model[2].deploy
    assert switch_to_deploy(model) == []
    # a module already in deploy mode is not switched again
    calls = []

    class Fake(nn.Module):
        deploy = True

        def switch_to_deploy(self):
            calls.append(self)

    assert switch_to_deploy(nn.Sequential(Fake())) == [] and calls == []

    # a module without a ``deploy`` flag is switched; it is listed only if
    # it reports deploy mode afterwards
    class NoFlag(nn.Module):

        def switch_to_deploy(self):
            calls.append(self)
            self.deploy = True

    tree = nn.Sequential(NoFlag(), nn.Linear(2, 2))
    assert switch_to_deploy(tree) == ['0'] and calls == [tree[0]]


def test_has_packed_weights_by_prefix():
    model = _model()
    assert not has_packed_weights(model.state_dict())
    switch_to_deploy(model)
    state = model.state_dict()
    assert has_packed_weights(state)
    assert has_packed_weights(state, prefix='3.')
    assert not has_packed_weights(state, prefix='2.')
    assert not has_packed_weights({'a.weight_packed_scale': 0, 'b.x': 1})


@pytest.mark.parametrize('float_dtype,dtype', [('fp32', torch.float32),
                                               ('fp16', torch.float16)])
def test_checkpoint_contents(float_dtype, dtype):
    model = _model()
    switch_to_deploy(model)
    source_meta = {'dataset_meta': {'classes': ('a', 'b')}}
    ckpt = deploy_checkpoint(model, float_dtype, meta=source_meta)
    assert META_KEY not in source_meta  # the caller's meta is not changed
    assert ckpt['meta']['dataset_meta'] == {'classes': ('a', 'b')}
    # 8 rows x 2 words + 3 rows x 1 word, 32 bits each
    assert ckpt['meta'][META_KEY] == dict(
        format_version=1, float_dtype=float_dtype,
        packed_words_bits=(8 * 2 + 3 * 1) * 32, packed_keys=2)
    state = ckpt['state_dict']
    assert state.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        if key.endswith('weight_packed'):
            assert torch.equal(state[key], value)
        else:
            assert state[key].dtype == dtype
            assert torch.equal(state[key], value.to(dtype))
    assert deploy_checkpoint(model)['meta'].keys() == {META_KEY}


def test_checkpoint_refusals():
    model = _model()
    with pytest.raises(ValueError, match='switch_to_deploy'):
        deploy_checkpoint(model)
    switch_to_deploy(model)
    with pytest.raises(ValueError, match='float_dtype'):
        deploy_checkpoint(model, 'bf16')
