"""reference.minilm: all-MiniLM-L6-v2 in plain torch, checked against an independent implementation.

The independent side is ``transformers``' BertModel built from a config written here and the same
safetensors file, fed by the model's own ``tokenizer.json`` (loaded with ``tokenizers.Tokenizer``,
not the BertWordPieceTokenizer reference.minilm builds from ``vocab.txt``), then mean-pooled and
normalised as sentence-transformers' Pooling and Normalize modules do.
"""

from __future__ import annotations

import pytest
import torch

from reference import weights as W

pytestmark = pytest.mark.skipif(not W.have_model(), reason=f"MiniLM weights not installed: {W.INSTALL}")

minilm = pytest.importorskip("reference.minilm")
pytest.importorskip("tokenizers", reason="the tokenizers package is not installed: pip install tokenizers")

SENTENCES = [
    "The striker scored twice in the second half to win the match.",
    "A memory leak made the server crash after a few hours.",
    "Café owners in Zürich serve naïve crème brûlée.",  # accents are stripped when lower-casing
    "東京 is the capital of Japan.",  # Chinese characters are split one per token
    "",  # [CLS] [SEP] only
    "A",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",  # several word pieces each
    "word " * 300,  # longer than 256 tokens: truncated
]

# all-MiniLM-L6-v2's config.json, written out (BertModel needs nothing else).
CONFIG = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536, hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
              max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
              position_embedding_type="absolute")


@pytest.fixture(scope="module")
def threads():
    """One thread: the forward passes are small, and extra threads only contend on a shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def hf_tokenizer():
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(minilm.model_dir() / "tokenizer.json"))
    tok.enable_truncation(256)  # sentence_bert_config.json max_seq_length
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


@pytest.fixture(scope="module")
def hf_model(threads):
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (test-only reference): pip install transformers")
    from safetensors.torch import load_file
    config = transformers.BertConfig(**CONFIG)
    config._attn_implementation = "eager"
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    state = load_file(str(W.model_file()))
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not [k for k in missing if "position_ids" not in k], missing
    assert not [k for k in unexpected if "position_ids" not in k], unexpected
    return model


def _hf_encode(model, tok, sentences):
    batch = tok.encode_batch(sentences)
    ids = torch.tensor([e.ids for e in batch])
    mask = torch.tensor([e.attention_mask for e in batch])
    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    m = mask.unsqueeze(-1).float()
    pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1)


def test_tokens_match_the_models_own_tokenizer(hf_tokenizer):
    ids, mask = minilm.tokenize(SENTENCES)
    batch = hf_tokenizer.encode_batch(SENTENCES)
    assert ids.tolist() == [e.ids for e in batch]
    assert mask.tolist() == [e.attention_mask for e in batch]
    assert ids.shape[1] == 256 and int(mask[-1].sum()) == 256  # the long sentence is truncated
    assert ids[4, :2].tolist() == [101, 102] and int(mask[4].sum()) == 2  # "" -> [CLS] [SEP]


def test_embeddings_match_transformers(hf_model, hf_tokenizer):
    from labs.lab322.answers import sentences
    # the 256-token sentence in a batch of its own: padding 48 sentences to 256 tokens only costs time
    for texts in (SENTENCES[:-1] + sentences("public"), SENTENCES[-1:] + SENTENCES[:1]):
        ours = minilm.encode(texts)
        theirs = _hf_encode(hf_model, hf_tokenizer, texts)
        assert ours.shape == (len(texts), 384) and ours.dtype == torch.float32
        diff = (ours - theirs).abs().max().item()
        assert diff < 1e-5, f"max |difference| to transformers' BertModel {diff:.2e} >= 1e-5"
        assert torch.allclose(ours.norm(dim=1), torch.ones(len(texts)), atol=1e-6)


def test_padding_and_batch_do_not_change_an_embedding(threads):
    alone = torch.cat([minilm.encode([s]) for s in SENTENCES[:4]])
    together = minilm.encode(SENTENCES[:4] + [SENTENCES[-1]])[:4]  # padded to 256 tokens
    assert (alone - together).abs().max().item() < 1e-5


def test_weights_replace_the_models_own(threads):
    texts = SENTENCES[:3]
    base = minilm.encode(texts)
    w = minilm.load()
    same = minilm.encode(texts, {name: w[name] for name in W.layer_names()})
    assert torch.equal(base, same)
    changed = minilm.encode(texts, {W.OUTLIER_LAYER: torch.zeros_like(w[W.OUTLIER_LAYER])})
    assert (changed - base).abs().max().item() > 1e-3
    assert torch.equal(minilm.encode(texts), base)  # the override did not leak into the cache
    with pytest.raises(KeyError, match="no tensor"):
        minilm.encode(texts, {"encoder.layer.9.output.dense.weight": w[W.OUTLIER_LAYER]})
    with pytest.raises(ValueError, match="shape"):
        minilm.encode(texts, {W.OUTLIER_LAYER: w[W.OUTLIER_LAYER].T})


def test_act_quant_sees_every_linear_input_of_real_tokens(threads):
    texts = SENTENCES[:3]
    _, mask = minilm.tokenize(texts)
    seen = []

    def spy(x):
        seen.append(tuple(x.shape))
        return x

    assert torch.equal(minilm.encode(texts, act_quant=spy), minilm.encode(texts))
    tokens = int(mask.sum())
    per_block = [(tokens, 384)] * 4 + [(tokens, 384), (tokens, 1536)]  # q, k, v, attn out, ffn up, ffn down
    assert seen == per_block * 6
    halved = minilm.encode(texts, act_quant=lambda x: x * 0.5)
    assert (halved - minilm.encode(texts)).abs().max().item() > 1e-3
    with pytest.raises(ValueError, match="act_quant must return"):
        minilm.encode(texts, act_quant=lambda x: x[:1])


def test_tokenize_refuses_a_bare_string():
    with pytest.raises(TypeError, match="list"):
        minilm.tokenize("one sentence")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    texts = SENTENCES[:4]
    cpu = minilm.encode(texts)
    gpu = minilm.encode(texts, device="cuda").cpu()
    assert (cpu - gpu).abs().max().item() < 1e-4  # TF32 is off by default: FP32 matmuls on both
