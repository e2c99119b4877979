"""The DCGAN architecture follows Radford et al. 2015: layer structure, BN placement, activations, init, sizes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from dcgan.config import ConfigError, ModelConfig, TrainConfig
from dcgan.model import FusedBatchNormalization, build_discriminator, build_generator, parameter_counts

# The table of docs/training.md ("Model sizes"): trainable parameters of G and D, computed by hand from the layer shapes
# (G: z·16·C0 + BN, then k²·Cin·Cout + BN per up-sampling, k²·C·3 + 3 bias; D: mirror, + 16·C + 1 logit).
# The pytorch/examples DCGAN (64×64, ngf=ndf=64, 4×4) has 3,576,704 / 2,765,568: ours adds G's 3 output biases
# and D's 1 logit bias.
PRESETS = [
    # size, ngf/ndf, kernel, G params, D params, G's first map
    (32, 64, 4, 1_068_931, 663_297, (4, 4, 256)),
    (64, 64, 4, 3_576_707, 2_765_569, (4, 4, 512)),     # the common ngf=64 variant
    (64, 128, 5, 18_855_043, 17_232_769, (4, 4, 1024)),  # the paper: 4×4×1024, 5×5 kernels
    (128, 64, 4, 12_786_563, 11_164_417, (4, 4, 1024)),
]


def _trainable(model: keras.Model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize("size,width,kernel,g_params,d_params,first_map", PRESETS)
def test_parameter_counts_match_the_preset_table(size, width, kernel, g_params, d_params, first_map):
    config = ModelConfig(size=size, ngf=width, ndf=width, kernel_size=kernel)
    g, d = build_generator(config), build_discriminator(config)
    assert _trainable(g) == g_params, f"G has {_trainable(g)} trainable parameters, table says {g_params}"
    assert _trainable(d) == d_params, f"D has {_trainable(d)} trainable parameters, table says {d_params}"
    assert parameter_counts(config) == {"generator": g_params, "discriminator": d_params}
    assert tuple(g.get_layer("reshape").output.shape[1:]) == first_map
    assert tuple(g.output.shape) == (None, size, size, 3)
    assert tuple(d.output.shape) == (None, 1)


def _layer_kinds(model: keras.Model) -> list[str]:
    names = {keras.layers.Dense: "dense", keras.layers.Reshape: "reshape", keras.layers.Conv2DTranspose: "deconv",
             keras.layers.Conv2D: "conv", keras.layers.ReLU: "relu", keras.layers.LeakyReLU: "lrelu",
             keras.layers.Flatten: "flatten", keras.layers.Activation: "act", keras.layers.BatchNormalization: "bn"}
    out = []
    for layer in model.layers[1:]:
        kind = next((v for k, v in names.items() if isinstance(layer, k)), type(layer).__name__)
        out.append(kind)
    return out


def test_generator_is_project_reshape_then_fractional_strided_convs_with_bn_relu_and_tanh_output():
    g = build_generator(ModelConfig(size=64, ngf=16))
    assert _layer_kinds(g) == ["dense", "reshape", "bn", "relu",
                               "deconv", "bn", "relu", "deconv", "bn", "relu", "deconv", "bn", "relu",
                               "deconv", "act"]
    deconvs = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert all(layer.strides == (2, 2) for layer in deconvs)
    # No BN on G's output layer; it ends in tanh.
    assert g.layers[-1].activation is keras.activations.tanh
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in g.layers[-2:])
    assert not any("pool" in type(layer).__name__.lower() for layer in g.layers)


def test_discriminator_has_no_bn_on_its_input_layer_strided_convs_leaky_relu_and_one_logit():
    d = build_discriminator(ModelConfig(size=64, ndf=16))
    assert _layer_kinds(d) == ["conv", "lrelu", "conv", "bn", "lrelu", "conv", "bn", "lrelu", "conv", "bn", "lrelu",
                               "flatten", "dense"]
    assert all(layer.strides == (2, 2) for layer in d.layers if isinstance(layer, keras.layers.Conv2D))
    assert all(np.isclose(float(layer.negative_slope), 0.2) for layer in d.layers
               if isinstance(layer, keras.layers.LeakyReLU))
    assert d.get_layer("logit").units == 1
    assert not any("pool" in type(layer).__name__.lower() for layer in d.layers)


def test_weights_start_from_normal_0_002_and_bn_gamma_from_normal_1_002():
    g = build_generator(ModelConfig(size=64, ngf=64), seed=3)
    kernel = g.get_layer("deconv1").kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 1e-3
    gamma = g.get_layer("deconv1_bn").gamma.numpy()
    assert abs(gamma.mean() - 1.0) < 0.01 and 0.01 < gamma.std() < 0.03


def test_the_same_seed_builds_the_same_weights_and_another_seed_does_not():
    config = ModelConfig(size=32, ngf=8, ndf=8)
    a, b, c = (build_generator(config, seed=s).get_layer("project").kernel.numpy() for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fused_batch_norm_normalises_like_keras_and_tracks_unbiased_running_variance():
    x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 5)).astype(np.float32)
    fused = FusedBatchNormalization(momentum=0.0, epsilon=1e-5)
    plain = keras.layers.BatchNormalization(momentum=0.0, epsilon=1e-5)
    np.testing.assert_allclose(fused(x, training=True).numpy(), plain(x, training=True).numpy(), atol=1e-4)
    n = 8 * 4 * 4
    np.testing.assert_allclose(fused.moving_variance.numpy(), x.reshape(-1, 5).var(0) * n / (n - 1), rtol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), x.reshape(-1, 5).mean(0), rtol=1e-5)
    # Inference uses the running statistics.
    expected = (x - fused.moving_mean.numpy()) / np.sqrt(fused.moving_variance.numpy() + 1e-5)
    np.testing.assert_allclose(fused(x, training=False).numpy(), expected, atol=1e-4)


def test_grey_and_kernel_5_variants_build():
    g = build_generator(ModelConfig(size=32, ngf=8, channels=1, kernel_size=5))
    d = build_discriminator(ModelConfig(size=32, ndf=8, channels=1, kernel_size=5))
    assert tuple(g.output.shape) == (None, 32, 32, 1)
    assert d(g(np.zeros((2, 100), np.float32))).shape == (2, 1)


@pytest.mark.parametrize("change,message", [
    ({"size": 48}, "size=48 is not supported"),
    ({"z_dim": 0}, "z_dim=0 must be a positive integer"),
    ({"ngf": -1}, "ngf=-1"),
    ({"kernel_size": 3}, "kernel_size=3 is not supported"),
    ({"channels": 2}, "channels=2 is not supported"),
])
def test_invalid_model_config_is_refused_with_the_field_named(change, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**change).validate()


@pytest.mark.parametrize("change,message", [
    ({"steps": 0}, "steps=0"),
    ({"batch_size": -4}, "batch_size=-4"),
    ({"learning_rate": 2.0}, "learning_rate=2.0"),
    ({"ema_decay": 0.1}, "ema_decay=0.1"),
    ({"precision": "float8"}, "precision='float8'"),
    ({"data": ""}, "data is empty"),
])
def test_invalid_train_config_is_refused_with_the_field_named(change, message):
    base = TrainConfig(data="somewhere")
    with pytest.raises(ConfigError, match=message):
        base.replace(**change).validate()


def test_train_config_round_trips_through_json_and_rejects_unknown_fields():
    config = TrainConfig(data="x", steps=7).replace(size=32, ngf=16)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({**config.to_dict(), "stepz": 3})
