"""Tokenizers for training: a checkpoint's own, or one built here with the `tokenizers` library.

Built tokenizers put the special tokens at fixed ids, the mask token ``<[MASK]>`` at id 5 as
iLLaDA has it, and are wrapped as a transformers ``PreTrainedTokenizerFast`` so that
``save_pretrained`` writes ``tokenizer.json`` + ``tokenizer_config.json`` and
``AutoTokenizer.from_pretrained(dir)`` loads them back.
"""
from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK, EOT, MASK = "<pad>", "<bos>", "<eos>", "<unk>", "<eot>", "<[MASK]>"
# position = id; the mask token must be id 5 (iLLaDA's `<[MASK]>`)
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, EOT, MASK]
MASK_TOKEN_ID = SPECIAL_TOKENS.index(MASK)
# every printable ASCII character (space and newline included), so any prompt can be encoded
CHAR_ALPHABET = "".join(sorted(set(string.printable) - set("\t\r\x0b\x0c")))
BUILT_TOKENIZERS = ("char", "bpe")


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        mask_token=MASK,
        additional_special_tokens=[EOT],
        clean_up_tokenization_spaces=False,
    )


def build_char_tokenizer(alphabet: str = CHAR_ALPHABET) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` after the special tokens; others become ``<unk>``."""
    characters = list(dict.fromkeys(alphabet))
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + characters)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # characters join back without spaces
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return _wrap(tokenizer)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``texts``, with the special tokens at ids 0..5."""
    if vocab_size <= len(SPECIAL_TOKENS) + 256:
        raise ValueError(
            f"tokenizer_vocab_size={vocab_size} is too small for a byte-level BPE: it needs more "
            f"than {len(SPECIAL_TOKENS) + 256} (256 bytes + {len(SPECIAL_TOKENS)} special tokens)"
        )
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _wrap(tokenizer)


def load_tokenizer(path_or_hub_id: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a checkpoint (a directory or a Hub id), with a clear error."""
    try:
        return AutoTokenizer.from_pretrained(str(path_or_hub_id))
    except (OSError, ValueError) as error:
        raise FileNotFoundError(
            f"no tokenizer could be loaded from '{path_or_hub_id}' ({error}). Point `tokenizer` at a "
            f"directory with tokenizer.json / tokenizer_config.json, or set it to one of "
            f"{BUILT_TOKENIZERS} to build one"
        ) from error


def check_special_tokens(tokenizer: PreTrainedTokenizerBase, mask_id: int, vocab_size: int) -> None:
    """The tokenizer must have an EOS token, fit the model's vocabulary and agree on the mask id."""
    if tokenizer.eos_token_id is None:
        raise ValueError(
            "the tokenizer has no EOS token: masked-diffusion training ends every document and "
            "response with EOS; use a tokenizer that defines eos_token"
        )
    if len(tokenizer) > vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab_size}: "
            "use the checkpoint's own tokenizer"
        )
    if tokenizer.mask_token_id is not None and tokenizer.mask_token_id != mask_id:
        raise ValueError(
            f"the tokenizer's mask token {tokenizer.mask_token!r} has id {tokenizer.mask_token_id} but "
            f"the model's mask_token_id is {mask_id}: set model.mask_token_id to match"
        )
