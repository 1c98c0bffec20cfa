"""4- and 8-bit bases through bitsandbytes, run on the CPU.

The commands refuse `--quantization-bit` without a CUDA GPU (tested beside each command). bitsandbytes
itself runs on a CPU too, so these tests drive the layers and from_pretrained arguments that the GPU path
uses, with the GPU check lifted as on a machine that has one. bitsandbytes' CUDA kernels are not run here.
"""

import json
from pathlib import Path

import pytest
import torch

from tests.chatglm2_tiny import make_folder
from tests.conftest import shared_data
from tests.test_language_model import BIRDS, alpaca

bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the [dev] extra")

# bits → (storage dtype of a quantized weight, largest |logit change| on the reference, whose logits reach 0.57)
QUANTIZED = {8: (torch.int8, 0.02), 4: (torch.uint8, 0.25)}


@pytest.fixture
def gpu_check_passes(monkeypatch):
    import birdsdao.language_model.models as models

    monkeypatch.setattr(models, "check_quantization", lambda bits, device: None)


def quantized_layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt | bnb.nn.Linear4bit)]


@pytest.mark.parametrize("bits", [8, 4])
def test_chatglm2_encoder_in_4_and_8_bits_keeps_the_original_logits(bits):
    from birdsdao.language_model.chatglm2.loading import build_model
    from birdsdao.language_model.chatglm2.quantize import quantize_encoder

    folder = shared_data("chatglm2-reference") / "A"
    vectors = json.loads((folder / "vectors.json").read_text(encoding="utf-8"))
    model = quantize_encoder(build_model(folder, torch.float16).eval(), bits, "cpu")
    layers = quantized_layers(model)
    assert len(layers) == 4 * 2  # query_key_value, dense, dense_h_to_4h, dense_4h_to_h in each of 2 layers
    assert not [m for m in model.transformer.encoder.modules() if type(m) is torch.nn.Linear]
    storage, tolerance = QUANTIZED[bits]
    assert all(layer.weight.dtype == storage for layer in layers)
    assert model.transformer.output_layer.weight.dtype == torch.float16  # as the original kept it
    assert model.transformer.embedding.word_embeddings.weight.dtype == torch.float16
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(vectors["input_ids"]),
                       attention_mask=torch.tensor(vectors["attention_mask"])).logits.float()
    assert float((logits - torch.tensor(vectors["logits"])).abs().max()) < tolerance


@pytest.mark.parametrize("bits", [8, 4])
def test_a_transformers_base_loads_from_the_bitsandbytes_arguments(tiny_model_dir, bits):
    from birdsdao.language_model.models import _load_auto, bitsandbytes_arguments

    model, tokenizer = _load_auto(tiny_model_dir, torch.float16, bitsandbytes_arguments(bits, "cpu"))
    layers = quantized_layers(model)
    assert len(layers) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers; the output layer stays
    assert all(layer.weight.dtype == QUANTIZED[bits][0] for layer in layers)
    full, _ = _load_auto(tiny_model_dir, torch.float32, {})
    ids = tokenizer("The house finch sings in the morning", return_tensors="pt").input_ids
    with torch.no_grad():
        quantized, reference = model(ids).logits.float(), full(ids).logits
    # the same model, less precise: measured 0.998 (8 bits) and 0.80 (4 bits); other weights would give about 0
    correlation = float(torch.corrcoef(torch.stack([quantized.flatten(), reference.flatten()]))[0, 1])
    assert correlation > (0.99 if bits == 8 else 0.6), correlation


def test_gpu_arguments_name_the_gpu():
    from birdsdao.language_model.models import bitsandbytes_arguments

    assert bitsandbytes_arguments(4, "cuda:1")["device_map"] == {"": 1}
    assert bitsandbytes_arguments(8, "0")["device_map"] == {"": 0}
    assert bitsandbytes_arguments(8, "cuda")["device_map"] == {"": 0}
    assert bitsandbytes_arguments(4, "cuda")["quantization_config"].load_in_4bit


@pytest.fixture(scope="module")
def glm_folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("chatglm2-6b"))


@pytest.mark.parametrize(("base", "bits"), [("llama", 4), ("glm", 8)])
def test_ptune_trains_only_the_prefix_on_a_quantized_base(base, bits, tiny_model_dir, glm_folder, tmp_path,
                                                          gpu_check_passes):
    from safetensors import safe_open

    from birdsdao.language_model.models import load_model
    from birdsdao.language_model.ptune import PtuneConfig, load_prefix, run_ptune

    folder = tiny_model_dir if base == "llama" else glm_folder
    config = PtuneConfig(data=alpaca(tmp_path, BIRDS * 3), output=tmp_path / "prefix", base_model=str(folder),
                         pre_seq_len=4, prefix_projection=True, lr=5e-2, batch_size=2, gradient_accumulation_steps=2,
                         max_steps=16, save_steps=8, logging_steps=4, val_split=0.25, max_target_length=6,
                         quantization_bit=bits, device="cpu")
    logged = []
    result = run_ptune(config, tmp_path / "models", progress=lambda step, total, loss: logged.append(loss))
    losses = [loss for loss in logged if loss is not None]
    assert losses[-1] < 0.8 * losses[0]  # the prefix learns through the frozen quantized layers
    assert json.loads((Path(result.prefix) / "train_results.json").read_text())["train_samples"] == 9
    assert "eval_loss" in result.eval
    saved = next(Path(result.prefix).glob("*.safetensors"))  # peft's adapter, or ChatGLM2's prefix encoder
    with safe_open(str(saved), "pt") as tensors:
        assert all("prefix_encoder" in name or "prompt" in name for name in tensors.keys())
    loaded = load_model(str(folder), tmp_path / "models", quantization_bit=bits)
    assert quantized_layers(loaded.model) and loaded.model.dtype == torch.float16  # the rest in half, as the original
    tuned = load_prefix(loaded, Path(result.prefix))
    ids = loaded.tokenizer("丹顶鹤吃什么？", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.isfinite(tuned(input_ids=ids).logits).all()
