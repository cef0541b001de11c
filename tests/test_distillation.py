"""Distillation from a frozen FP teacher: the loss, the teacher, bad input."""
import copy
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmdidb.compat import safe_torch_load
from mmdidb.engine import DistillationHook
from mmdidb.engine.hooks.distillation_hook import teacher_model_cfg
from mmdidb.models import DistilledImageClassifier

from helpers import REPO_ROOT, make_fashion_mnist
from tiny import MAKERS
from tiny.classification import prepare_classification

DISTILL = 'configs/didbvit/vit-mini-distill_fashion-mnist.py'
TEACHER = 'configs/didbvit/vit-mini-fp_fashion-mnist.py'


def build_teacher(seed=1):
    torch.manual_seed(seed)
    return MODELS.build(teacher_model_cfg(TEACHER))


def build_student():
    cfg = Config.fromfile(os.path.join(REPO_ROOT, DISTILL))
    model = copy.deepcopy(cfg.model)
    model['data_preprocessor'] = cfg.data_preprocessor
    return MODELS.build(model)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory):
    """A full-precision mini ViT checkpoint (random weights)."""
    path = tmp_path_factory.mktemp('teacher') / 'teacher.pth'
    torch.save({'state_dict': build_teacher().state_dict()}, str(path))
    return str(path)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_fashion_mnist(str(tmp_path_factory.mktemp('fm')), 16, 8)


def distill_hook(cfg):
    return next(h for h in cfg.custom_hooks
                if h['type'] == 'DistillationHook')


def distill_cfg(tmp_path, data_root, teacher_ckpt, batch_size=8):
    """The quick-start distillation config on 16 tiny images, 1 epoch."""
    cfg = Config.fromfile(os.path.join(REPO_ROOT, DISTILL))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_prefix = data_root
        cfg[key].batch_size = batch_size
    cfg.train_cfg.max_epochs = 1
    cfg.work_dir = str(tmp_path / 'work')
    cfg.default_hooks.logger.interval = 1
    cfg.merge_from_dict(dict(load_from=teacher_ckpt,
                             teacher_checkpoint=teacher_ckpt))
    return cfg


def batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 1, 28, 28, generator=g)
    labels = torch.randint(0, 10, (n, ), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return inputs, labels, samples


@pytest.mark.parametrize('w,tau', [(0.9, 1.0), (0.3, 2.0)])
def test_loss_is_weighted_ce_plus_soft_ce_to_the_teacher(w, tau):
    student, teacher = build_student(), build_teacher()
    student.set_teacher(teacher, loss_weight=w, tau=tau)
    inputs, labels, samples = batch()
    losses = student.loss(inputs, samples)
    assert set(losses) == {'loss_ce', 'loss_kd'}
    # independently: torch's cross-entropy with probability targets
    logits = student(inputs, mode='tensor')
    with torch.no_grad():
        t_logits = teacher(inputs, mode='tensor')
    ce = F.cross_entropy(logits, labels)
    kd = F.cross_entropy(logits / tau, F.softmax(t_logits / tau, dim=1)) \
        * tau**2
    torch.testing.assert_close(losses['loss_ce'], (1 - w) * ce)
    torch.testing.assert_close(losses['loss_kd'], w * kd)
    total, log_vars = student.parse_losses(losses)
    torch.testing.assert_close(total, (1 - w) * ce + w * kd)
    assert set(log_vars) == {'loss', 'loss_ce', 'loss_kd'}
    # the KD term follows the teacher: another teacher, another value
    student.set_teacher(build_teacher(seed=2), loss_weight=w, tau=tau)
    assert not torch.allclose(student.loss(inputs, samples)['loss_kd'],
                              losses['loss_kd'])


def test_zero_weight_is_plain_ce_without_a_teacher_forward():
    student = build_student()
    teacher = build_teacher()
    calls = []
    teacher.register_forward_hook(lambda *args: calls.append(1))
    student.set_teacher(teacher, loss_weight=0.0)
    inputs, labels, samples = batch()
    losses = student.loss(inputs, samples)
    torch.testing.assert_close(
        losses['loss_ce'],
        F.cross_entropy(student(inputs, mode='tensor'), labels))
    assert float(losses['loss_kd']) == 0.0 and not calls


def test_teacher_is_frozen_and_outside_the_module_tree():
    student, teacher = build_student(), build_teacher()
    teacher.train()
    student.set_teacher(teacher)
    student.train()  # what the train loop does every epoch
    assert student.teacher is teacher and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher_params = {id(p) for p in teacher.parameters()}
    assert not teacher_params & {id(p) for p in student.parameters()}
    assert all(m is not teacher for m in student.modules())
    assert set(student.state_dict()) == set(build_student().state_dict())
    # EMA-style copies share the teacher instead of duplicating it
    assert copy.deepcopy(student).teacher is teacher
    # a teacher put back in train mode by hand is evaluated in eval mode
    teacher.train()
    inputs, _, samples = batch()
    student.loss(inputs, samples)['loss_kd'].backward()
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())


def test_training_keeps_the_teacher_unchanged_and_out_of_checkpoints(
        tmp_path, data_root, teacher_ckpt):
    runner = Runner.from_cfg(distill_cfg(tmp_path, data_root, teacher_ckpt))
    runner.train()
    student = runner.model
    teacher = student.teacher
    assert isinstance(student, DistilledImageClassifier) and teacher
    saved = safe_torch_load(teacher_ckpt)['state_dict']
    assert teacher.state_dict().keys() == saved.keys()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert not teacher.training
    # the student started from the teacher's weights, and trained
    assert not torch.equal(student.backbone.patch_embed.projection.weight,
                           saved['backbone.patch_embed.projection.weight'])
    optimised = {id(p) for group in runner.optim_wrapper.param_groups
                 for p in group['params']}
    assert not optimised & {id(p) for p in teacher.parameters()}
    checkpoint = safe_torch_load(str(tmp_path / 'work' / 'epoch_1.pth'))
    assert set(checkpoint['state_dict']) == set(student.state_dict())
    assert len(checkpoint['optimizer']['state']) <= \
        len(list(student.parameters()))
    assert checkpoint['meta']['distillation'] == dict(
        teacher=TEACHER, teacher_checkpoint=teacher_ckpt, loss_weight=0.9,
        tau=1.0)
    hub = runner.message_hub
    loss, ce, kd = (hub.get_scalar(f'train/{k}').current()
                    for k in ('loss', 'loss_ce', 'loss_kd'))
    assert kd > 0 and ce > 0
    assert loss == pytest.approx(ce + kd, rel=1e-5)


def test_resume_ends_like_the_uninterrupted_run(tmp_path, data_root,
                                                teacher_ckpt):
    """As tests/test_tools.py's resume test, with the teacher re-attached."""
    def train(name, epochs, resume=False):
        cfg = distill_cfg(tmp_path / name, data_root, teacher_ckpt)
        cfg.train_cfg.max_epochs = epochs  # the lr schedule keeps 3 epochs
        if resume:  # what tools/train.py --resume does
            cfg.resume, cfg.load_from = True, None
        runner = Runner.from_cfg(cfg)
        runner.train()
        return runner

    train('straight', 2)
    train('split', 1)
    resumed = train('split', 2, resume=True)
    assert resumed.model.teacher is not None
    assert resumed.message_hub.get_scalar('train/loss_kd').current() > 0

    def weights(name, epoch):
        path = tmp_path / name / 'work' / f'epoch_{epoch}.pth'
        return safe_torch_load(str(path))['state_dict']

    first, last = weights('split', 1), weights('split', 2)
    straight = weights('straight', 2)
    assert set(last) == set(straight) == set(build_student().state_dict())
    assert any(not torch.equal(first[k], last[k]) for k in first)
    for key in straight:
        assert torch.equal(straight[key], last[key]), key


def test_testing_a_distilled_checkpoint_needs_no_teacher(tmp_path, data_root,
                                                         teacher_ckpt):
    """tools/test.py on a distilled config: no teacher checkpoint needed."""
    runner = Runner.from_cfg(distill_cfg(tmp_path, data_root, teacher_ckpt))
    runner.train()
    trained = runner.model.state_dict()
    cfg = distill_cfg(tmp_path / 'test', data_root, teacher_ckpt)
    cfg.load_from = str(tmp_path / 'work' / 'epoch_1.pth')
    cfg.teacher_checkpoint = str(tmp_path / 'nowhere.pth')
    tester = Runner.from_cfg(cfg)
    metrics = tester.test()
    assert 'accuracy/top1' in metrics and tester.model.teacher is None
    for key, value in tester.model.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_gradient_accumulation_matches_the_full_batch(tmp_path, data_root,
                                                      teacher_ckpt):
    """Batch 8 in one step == two micro-batches of 4 accumulated.

    The updates are compared, not the weights: an SGD step is small next to
    the weights, so a tolerance on the weights could not see a wrong step.
    """
    updates = []
    for batch_size, counts in ((8, 1), (4, 2)):
        cfg = distill_cfg(tmp_path / str(counts), data_root, teacher_ckpt,
                          batch_size=batch_size)
        cfg.train_dataloader.dataset.indices = 8  # one optimizer step
        # SGD and a constant lr: the step is linear in the gradient, so the
        # two runs agree up to float summation order
        cfg.optim_wrapper = dict(
            optimizer=dict(type='SGD', lr=0.5), accumulative_counts=counts)
        cfg.param_scheduler = []
        cfg.auto_scale_lr = dict(base_batch_size=8, enable=False)
        runner = Runner.from_cfg(cfg)
        # the weights the step starts from: after init and load_from, as
        # runner.train() prepares them
        runner._init_model_weights()
        runner.load_or_resume()
        start = copy.deepcopy(runner.model.state_dict())
        runner.train()
        assert runner.iter == 8 // batch_size
        updates.append({k: v - start[k]
                        for k, v in runner.model.state_dict().items()
                        if v.is_floating_point()})
    full, accumulated = updates
    # parameters the loss cannot reach move by float rounding only (e.g.
    # the token offsets of layers whose output a LayerNorm reads next)
    moved = [k for k in full if full[k].norm() > 1e-6]
    # every binary linear of the student took a real step
    assert sum(k.endswith(('attn.q.weight', 'ffn.fc2.weight'))
               for k in moved) == 2 * 4
    for k in moved:
        error = (full[k] - accumulated[k]).norm()
        assert error <= 1e-3 * full[k].norm(), k


def test_under_autocast_the_kd_term_is_float32():
    """The AMP path: the teacher runs in the student's autocast context."""
    student, teacher = build_student(), build_teacher()
    student.set_teacher(teacher)
    inputs, _, samples = batch()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = student.loss(inputs, samples)
        with torch.no_grad():
            t_logits = teacher(inputs, mode='tensor')
    assert t_logits.dtype == torch.bfloat16  # the teacher ran in bf16
    assert losses['loss_kd'].dtype == torch.float32
    assert torch.isfinite(losses['loss_kd'])
    sum(losses.values()).backward()
    assert student.head.fc.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='mixed precision (AmpOptimWrapper) needs a CUDA '
                    'GPU')
def test_amp_training_on_gpu(tmp_path, data_root, teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    runner = Runner.from_cfg(cfg)
    runner.train()
    teacher = runner.model.teacher
    assert next(teacher.parameters()).is_cuda
    assert runner.message_hub.get_scalar('train/loss_kd').current() > 0


# --- bad input: clear errors before any training step ----------------------


@pytest.mark.parametrize('weight', [1.5, -0.1, True, '0.9', None])
def test_loss_weight_outside_0_1_is_refused_when_the_runner_is_built(
        tmp_path, data_root, teacher_ckpt, weight):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    distill_hook(cfg).loss_weight = weight
    with pytest.raises(ValueError, match=r'loss_weight .* in \[0, 1\]'):
        Runner.from_cfg(cfg)


def test_non_positive_tau_is_refused():
    with pytest.raises(ValueError, match='tau'):
        DistillationHook(teacher=TEACHER, teacher_checkpoint='x.pth', tau=0)


def _fails_before_training(cfg, error, match):
    runner = Runner.from_cfg(cfg)
    with pytest.raises(error, match=match):
        runner.train()
    assert runner.iter == 0
    assert 'train/loss' not in runner.message_hub.log_scalars


def test_missing_teacher_checkpoint_fails_before_training(
        tmp_path, data_root, teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    cfg.teacher_checkpoint = str(tmp_path / 'nowhere.pth')
    _fails_before_training(
        cfg, FileNotFoundError,
        r"teacher_checkpoint='.*nowhere.pth' does not exist")


def test_teacher_checkpoint_is_overridden_by_name(tmp_path, data_root,
                                                teacher_ckpt):
    """``--cfg-options teacher_checkpoint=PATH`` reaches the hook."""
    cfg = distill_cfg(tmp_path, data_root, str(tmp_path / 'config.pth'))
    assert 'teacher_checkpoint' not in distill_hook(cfg)
    cfg.merge_from_dict(dict(teacher_checkpoint=teacher_ckpt))
    runner = Runner.from_cfg(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DistillationHook))
    hook.before_train(runner)
    assert hook.teacher_checkpoint == teacher_ckpt
    assert runner.model.teacher is not None


def test_the_hooks_own_teacher_checkpoint_wins(tmp_path, data_root,
                                               teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, str(tmp_path / 'nowhere.pth'))
    distill_hook(cfg).teacher_checkpoint = teacher_ckpt
    runner = Runner.from_cfg(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DistillationHook))
    hook.before_train(runner)
    assert hook.teacher_checkpoint == teacher_ckpt


def test_no_teacher_checkpoint_anywhere_fails_before_training(
        tmp_path, data_root, teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    cfg.teacher_checkpoint = None
    _fails_before_training(
        cfg, ValueError, r'--cfg-options teacher_checkpoint=PATH')


def test_teacher_with_other_classes_fails_before_training(
        tmp_path, data_root, teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    teacher = teacher_model_cfg(TEACHER)
    teacher['head']['num_classes'] = 7
    distill_hook(cfg).teacher = teacher
    _fails_before_training(
        cfg, ValueError,
        'predicts 7 classes, the student 10: head.num_classes must match')


def test_teacher_with_other_normalisation_fails_before_training(
        tmp_path, data_root, teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    teacher = teacher_model_cfg(TEACHER)
    teacher['data_preprocessor']['mean'] = [0.0]
    distill_hook(cfg).teacher = teacher
    _fails_before_training(cfg, ValueError, 'normalises its inputs')


def test_missing_teacher_config_fails_before_training(
        tmp_path, data_root, teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    distill_hook(cfg).teacher = 'configs/nowhere.py'
    _fails_before_training(cfg, FileNotFoundError,
                           r"teacher='configs/nowhere.py' is not a config")


def test_plain_image_classifier_student_is_refused(tmp_path, data_root,
                                                   teacher_ckpt):
    cfg = distill_cfg(tmp_path, data_root, teacher_ckpt)
    cfg.model.type = 'ImageClassifier'
    _fails_before_training(cfg, TypeError, "'DistilledImageClassifier'")


def test_student_without_a_teacher_says_how_to_attach_one():
    inputs, _, samples = batch()
    with pytest.raises(RuntimeError, match='DistillationHook'):
        build_student().loss(inputs, samples)


def test_stage2_config_without_the_stage1_checkpoint_fails_before_training(
        tmp_path, monkeypatch):
    path = 'configs/didbvit/deit-t-stage2_tiny-imagenet.py'
    cfg = Config.fromfile(os.path.join(REPO_ROOT, path))
    stage1 = cfg.load_from
    assert 'stage1' in stage1 and not os.path.isabs(stage1)
    prepare_classification(cfg, tmp_path)  # tiny teacher and sizes
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(MAKERS['TinyImageNet'](tmp_path))
        cfg[key].update(batch_size=8, num_workers=0)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = stage1
    monkeypatch.chdir(tmp_path)  # no work_dirs/ with a stage-1 run here
    _fails_before_training(
        cfg, FileNotFoundError,
        f"load_from='{stage1}' does not exist.*stage-1 result")
