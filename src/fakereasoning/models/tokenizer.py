"""The tiny backbone's tokenizer: byte-level BPE trained with `tokenizers` on prompts and reasoning texts.

Byte-level means every string encodes (no unknown token), so a model never fails on unseen text. The
schema's fixed texts (prompts, tags, leads, attribute names, conclusions) are always in the training
corpus, repeated, so the verdict words and the tags become single or few tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from fakereasoning import schema

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, schema.IMAGE_TOKEN)
DEFAULT_VOCAB_SIZE = 2000


def schema_texts() -> list[str]:
    """Texts every FakeReasoning tokenizer must encode compactly (taken from `schema`, one place)."""
    texts = [schema.PROMPT_FULL, schema.PROMPT_FAST, schema.SUMMARY_TEXT]
    for label in schema.LABELS:
        attrs = {
            name: f"{name.lower()} is visible in the image" for name in schema.ATTRIBUTES_OF_LABEL[label]
        }
        texts.append(schema.format_cot(label, attrs, "a photo of a scene"))
        texts.append(schema.fast_answer(label))
        texts.append(schema.format_reasoning({}, label))
    texts.extend(schema.ATTRIBUTES)
    texts.append("USER: ASSISTANT:")
    return texts


def _corpus(texts: Iterable[str], repeat_schema: int) -> Iterator[str]:
    for _ in range(repeat_schema):
        yield from schema_texts()
    for text in texts:
        if isinstance(text, str) and text:
            yield text


def train_tokenizer(texts: Iterable[str] = (), vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = 2):
    """Train a byte-level BPE on `texts` plus the schema texts; return a `PreTrainedTokenizerFast`.

    The result has pad/bos/eos and the `<image>` placeholder as special tokens and is saved with the model
    (`save_pretrained`), so loading never needs the training texts again.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(texts, repeat_schema=4), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=[schema.IMAGE_TOKEN],
    )
    fast.padding_side = "right"
    return fast
