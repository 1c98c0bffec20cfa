"""The CUDA paths: 4/8-bit bases (transformers and the native ChatGLM2) for ptune and answers, sparse training with
AMP, pruning and fine-tuning a CUDA-trained detector.

They need a CUDA GPU and skip without one; bench/gpu_check.sh runs them on a lent GPU machine. The same code is
driven on the CPU by tests/test_quantized_bases.py (bitsandbytes' CPU kernels) and tests/test_train.py.
"""

import json
from pathlib import Path

import pytest
import torch

from tests.chatglm2_tiny import make_folder
from tests.conftest import shared_data
from tests.test_language_model import BIRDS, alpaca
from tests.test_train import tiny_data  # noqa: F401 (the fixture: a 4-species dataset of real JPEGs)
from tests.tiny_models import make_tiny_gemma3

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh)")

# bits → (storage dtype of a quantized weight, largest |logit change| on the ChatGLM2 reference, as on the CPU)
QUANTIZED = {8: (torch.int8, 0.02), 4: (torch.uint8, 0.25)}


def bnb():
    return pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the [dev] extra")


def quantized_layers(model) -> list:
    nn = bnb().nn
    return [m for m in model.modules() if isinstance(m, nn.Linear8bitLt | nn.Linear4bit)]


@pytest.fixture(scope="module")
def glm_folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("chatglm2-6b"))


@pytest.fixture(scope="module")
def gemma_folder(tmp_path_factory) -> Path:
    """A tiny random Gemma 3: the real 270M weights cannot travel to a GPU machine that reaches no package index."""
    return make_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.mark.parametrize("bits", [8, 4])
def test_chatglm2_encoder_quantized_on_the_gpu_keeps_the_original_logits(bits):
    bnb()
    from birdsdao.language_model.chatglm2.loading import build_model
    from birdsdao.language_model.chatglm2.quantize import quantize_encoder

    folder = shared_data("chatglm2-reference") / "A"
    vectors = json.loads((folder / "vectors.json").read_text(encoding="utf-8"))
    model = quantize_encoder(build_model(folder, torch.float16).eval(), bits, "cuda")
    layers = quantized_layers(model)
    assert len(layers) == 8 and all(layer.weight.device.type == "cuda" for layer in layers)
    assert all(layer.weight.dtype == QUANTIZED[bits][0] for layer in layers)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(vectors["input_ids"]).cuda(),
                       attention_mask=torch.tensor(vectors["attention_mask"]).cuda()).logits.float().cpu()
    assert float((logits - torch.tensor(vectors["logits"])).abs().max()) < QUANTIZED[bits][1]


@pytest.mark.parametrize("bits", [8, 4])
def test_a_transformers_base_loads_in_4_and_8_bits_on_the_gpu_and_answers(tiny_model_dir, tmp_path, bits):
    from birdsdao.language_model.generate import GenerationSettings, stream_text
    from birdsdao.language_model.models import load_model

    loaded = load_model(tiny_model_dir, tmp_path / "models", device="cuda", quantization_bit=bits)
    layers = quantized_layers(loaded.model)
    assert len(layers) == 14 and all(layer.weight.device.type == "cuda" for layer in layers)
    full = load_model(tiny_model_dir, tmp_path / "models")
    assert loaded.fingerprint == full.fingerprint  # the same checkpoint, whatever the precision
    ids = loaded.tokenizer("The house finch sings in the morning", return_tensors="pt").input_ids
    with torch.no_grad():
        quantized, reference = loaded.model(ids.cuda()).logits.float().cpu(), full.model(ids).logits
    correlation = float(torch.corrcoef(torch.stack([quantized.flatten(), reference.flatten()]))[0, 1])
    assert correlation > (0.99 if bits == 8 else 0.6), correlation
    assert "".join(stream_text(loaded, "问：丹顶鹤吃什么？\n答：", GenerationSettings(max_new_tokens=6)))


@pytest.mark.parametrize(("base", "bits"), [("llama", 4), ("glm", 4), ("glm", 8), ("gemma", 4), ("gemma", 8)])
def test_ptune_on_a_quantized_gpu_base_learns_and_its_prefix_answers(base, bits, tiny_model_dir, glm_folder,
                                                                     gemma_folder, tmp_path):
    from birdsdao.language_model.generate import GenerationSettings, stream_text
    from birdsdao.language_model.ptune import PtuneConfig, run_ptune
    from birdsdao.language_model.runtime import load_answering_model

    folder = {"llama": tiny_model_dir, "glm": glm_folder, "gemma": gemma_folder}[base]
    config = PtuneConfig(data=alpaca(tmp_path, BIRDS * 3), output=tmp_path / "prefix", base_model=str(folder),
                         pre_seq_len=4, prefix_projection=True, lr=5e-2, batch_size=2, gradient_accumulation_steps=2,
                         max_steps=20, save_steps=10, logging_steps=4, val_split=0.0, max_target_length=6,
                         quantization_bit=bits, device="cuda")
    logged = []
    result = run_ptune(config, tmp_path / "models", progress=lambda step, total, loss: logged.append(loss))
    losses = [loss for loss in logged if loss is not None]
    # the prefix learns through the frozen quantized layers; the tiny Gemma (embeddings scaled by √width) moves
    # less in 20 steps: 0.87 of its first loss through 4-bit layers on the CPU
    assert losses[-1] < (0.9 if base == "gemma" else 0.8) * losses[0], losses
    answering = load_answering_model(str(folder), tmp_path / "models", prefix=Path(result.prefix), device="cuda",
                                     quantization_bit=bits)
    assert quantized_layers(answering.model)
    assert "".join(stream_text(answering, "问：丹顶鹤吃什么？\n答：", GenerationSettings(max_new_tokens=6)))


def test_sparse_training_with_amp_on_the_gpu_shrinks_gammas_then_prunes_and_finetunes(tiny_data, tmp_path):  # noqa: F811
    from birdsdao.pruning.finetune import FinetuneConfig, finetune_pruned
    from birdsdao.pruning.prune import PruneConfig, prune_detector
    from birdsdao.training.train import TrainConfig, train_detector

    fast = {"warmup_epochs": 0, "lr0": 0.5, "nbs": 4, "plots": False, "val": False, "mosaic": 0.0, "amp": True}
    runs = {}
    for sparse in (True, False):
        config = TrainConfig(data=tiny_data, epochs=3, imgsz=64, batch=2, workers=0, project=tmp_path,
                             name="sparse" if sparse else "plain", seed=0, sparse=sparse, l1=1.0, optimizer="SGD",
                             device="0", overrides=fast)
        runs[sparse] = train_detector(config)
    sparse, plain = runs[True].sparsity["last"], runs[False].sparsity["last"]
    assert sparse["mean_abs_gamma"] < 0.5 * plain["mean_abs_gamma"]  # as on the CPU (tests/test_train.py)
    report = prune_detector(PruneConfig(weights=Path(runs[True].prune), keep=0.5, imgsz=64))
    assert report.params_after < report.params_before
    tuned = finetune_pruned(FinetuneConfig(data=tiny_data, weights=Path(report.weights), epochs=1, imgsz=64, batch=2,
                                           workers=0, project=tmp_path / "finetune", device="0", overrides=fast))
    assert tuned.params == report.params_after  # trained on the GPU without being rebuilt from its yaml
