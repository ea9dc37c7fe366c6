"""The built-in models' WordPiece tokenizer without ``transformers``.

A BERT tokenizer saved by transformers is a ``tokenizer.json`` for the Rust ``tokenizers`` library
(BERT normaliser and pre-tokenizer, WordPiece model, ``[CLS] A [SEP] (B [SEP])`` template) plus a
``tokenizer_config.json`` (special tokens, ``model_max_length``). ``import tokenizers`` takes about
10 ms where ``import transformers`` takes seconds, so :class:`WordPieceTokenizer` wraps
``tokenizers.Tokenizer`` and offers the part of the transformers tokenizer API nlptool uses, with
the same ids, token types, attention masks and character offsets as
``AutoTokenizer.from_pretrained(dir)``:

* ``tok(text_or_texts, text_pair=None, add_special_tokens=, padding=, truncation=, max_length=,
  return_tensors="pt", return_offsets_mapping=, return_special_tokens_mask=, ...)`` returning a
  :class:`Encoding` (a dict with ``word_ids(i)``, ``tokens(i)``, ``encodings``, ``to(device)``);
* ``tokenize``, ``encode``, ``decode``, ``convert_tokens_to_ids``, ``convert_ids_to_tokens``,
  ``get_vocab``/``vocab``, ``len(tok)``;
* ``cls_token_id`` and the other ``*_token``/``*_token_id``, ``all_special_tokens``/``_ids``,
  ``model_max_length``, ``do_lower_case``, ``is_fast``, ``save_pretrained``.

transformers ignores the truncation and padding stored in ``tokenizer.json`` and sets them per
call from the call's arguments; so does this class.
"""

from __future__ import annotations

import json
import os
import shutil

from .errors import ModelError

#: transformers' ``model_max_length`` when the config gives none (``VERY_LARGE_INTEGER``).
VERY_LARGE_INTEGER = int(1e30)
#: special-token attributes in transformers' order (``all_special_tokens`` follows it).
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class Encoding(dict):
    """What a call of :class:`WordPieceTokenizer` returns (transformers' ``BatchEncoding``):
    ``input_ids``, ``token_type_ids``, ``attention_mask`` and, when asked, ``special_tokens_mask``,
    ``offset_mapping`` (per token ``(start, end)`` character offsets; ``(0, 0)`` for special
    tokens and padding) and ``length``. Lists for one text, lists of lists for a batch, or
    ``(batch, length)`` tensors with ``return_tensors="pt"``."""

    def __init__(self, data: dict, encodings: list):
        super().__init__(data)
        self.encodings = encodings

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """Per token, the index of the pre-tokenized word it comes from (None for special tokens
        and padding)."""
        return self.encodings[batch_index].word_ids

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of one row (special tokens and padding included)."""
        return self.encodings[batch_index].tokens

    def to(self, device) -> Encoding:
        """Move every tensor to ``device`` (in place; returns self)."""
        for key, value in self.items():
            if hasattr(value, "to"):
                self[key] = value.to(device)
        return self


class WordPieceTokenizer:
    """A BERT WordPiece tokenizer read from a model directory (``tokenizer.json`` +
    ``tokenizer_config.json``), a stand-in for transformers' fast ``BertTokenizer``.

    Raises (constructor):
        ModelError: ``tokenizer.json`` missing or unreadable, or a special token of the config not
            in the vocabulary.
    """

    is_fast = True
    padding_side = "right"
    truncation_side = "right"
    pad_token_type_id = 0

    def __init__(self, path: str | os.PathLike):
        import tokenizers

        self.name_or_path = os.fspath(path)
        try:
            self._tok = tokenizers.Tokenizer.from_file(os.path.join(self.name_or_path, "tokenizer.json"))
        except Exception as exc:  # tokenizers raises its own Exception subclass for bad files
            raise ModelError(f"{self.name_or_path}: cannot read tokenizer.json: {exc}") from None
        self._tok.no_truncation()
        self._tok.no_padding()
        config = _read_json(os.path.join(self.name_or_path, "tokenizer_config.json"))
        config.update({k: v for k, v in _read_json(os.path.join(self.name_or_path, "special_tokens_map.json")).items()
                       if k not in config})
        self.init_kwargs = config
        mml = config.get("model_max_length")
        self.model_max_length = int(mml) if isinstance(mml, (int, float)) and mml > 0 else VERY_LARGE_INTEGER
        self.do_lower_case = bool(config.get("do_lower_case", True))
        self.padding_side = config.get("padding_side", "right")
        self.truncation_side = config.get("truncation_side", "right")
        for attr in SPECIAL_TOKENS:
            token = _token_text(config.get(attr))
            if token is not None and self._tok.token_to_id(token) is None:
                raise ModelError(f"{self.name_or_path}: special token {token!r} ({attr}) is not in the vocabulary")
            setattr(self, attr, token)
        extra = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
        self.additional_special_tokens = [_token_text(t) for t in extra if _token_text(t) is not None]

    # -- special tokens ------------------------------------------------------------------------

    def _id_of(self, token: str | None) -> int | None:
        return None if token is None else self._tok.token_to_id(token)

    bos_token_id = property(lambda self: self._id_of(self.bos_token))
    eos_token_id = property(lambda self: self._id_of(self.eos_token))
    unk_token_id = property(lambda self: self._id_of(self.unk_token))
    sep_token_id = property(lambda self: self._id_of(self.sep_token))
    pad_token_id = property(lambda self: self._id_of(self.pad_token))
    cls_token_id = property(lambda self: self._id_of(self.cls_token))
    mask_token_id = property(lambda self: self._id_of(self.mask_token))

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """``{"unk_token": "[UNK]", ...}`` for the special tokens that are set."""
        return {a: getattr(self, a) for a in SPECIAL_TOKENS if getattr(self, a) is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """Special token strings, in transformers' order, without repeats."""
        out = list(dict.fromkeys([*self.special_tokens_map.values(), *self.additional_special_tokens]))
        return out

    @property
    def all_special_ids(self) -> list[int]:
        return [self._tok.token_to_id(t) for t in self.all_special_tokens]

    # -- vocabulary ----------------------------------------------------------------------------

    def __len__(self) -> int:
        """Vocabulary size, added tokens included."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        """``token -> id`` (added tokens included)."""
        return self._tok.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without added tokens), as transformers' ``vocab_size``."""
        return self._tok.get_vocab_size(with_added_tokens=False)

    def convert_tokens_to_ids(self, tokens):
        """One token -> its id, a list -> a list; an unknown token gives ``unk_token_id``."""
        if isinstance(tokens, str):
            tid = self._tok.token_to_id(tokens)
            return self.unk_token_id if tid is None else tid
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """One id -> its token string (None outside the vocabulary), a list -> a list."""
        if isinstance(ids, int) or (hasattr(ids, "ndim") and ids.ndim == 0):
            return self._tok.id_to_token(int(ids))
        special = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tok.id_to_token(int(i)) for i in ids if int(i) not in special]

    # -- encoding ------------------------------------------------------------------------------

    def __call__(self, text, text_pair=None, *, add_special_tokens: bool = True, padding=False, truncation=None,
                 max_length: int | None = None, pad_to_multiple_of: int | None = None, return_tensors=None,
                 return_token_type_ids: bool | None = None, return_attention_mask: bool | None = None,
                 return_special_tokens_mask: bool = False, return_offsets_mapping: bool = False,
                 return_length: bool = False) -> Encoding:
        """Encode one text (or a pair) or a batch of texts (or of pairs), as transformers does.

        Args:
            text: a string or a list of strings; ``text_pair`` likewise (second segment, type 1).
            padding: False / ``"do_not_pad"``; True / ``"longest"`` (to the longest row of the
                batch); ``"max_length"`` (to ``max_length``, else ``model_max_length``).
            truncation: True / ``"longest_first"``, ``"only_first"``, ``"only_second"``, or
                False / ``"do_not_truncate"``; None means False unless ``max_length`` is given
                without padding (then ``longest_first``, as transformers does). The limit is
                ``max_length``, else ``model_max_length``; special tokens count.
            return_tensors: None (lists) or ``"pt"`` (torch tensors; rows must then have equal length).

        Returns:
            :class:`Encoding`.

        Raises:
            ValueError: an unknown padding/truncation strategy, ``return_tensors`` other than
                ``"pt"``, or ragged rows with ``return_tensors="pt"``.
        """
        batched = isinstance(text, (list, tuple))
        texts = list(text) if batched else [text]
        pairs = None if text_pair is None else (list(text_pair) if batched else [text_pair])
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} text pairs")
        pad = {True: "longest", False: "do_not_pad", None: "do_not_pad"}.get(padding, padding)
        if pad not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding {padding!r}: expected True, False, 'longest', 'max_length' or 'do_not_pad'")
        if truncation is None:
            truncation = max_length is not None and pad == "do_not_pad"
        trunc = {True: "longest_first", False: "do_not_truncate"}.get(truncation, truncation)
        if trunc not in ("longest_first", "only_first", "only_second", "do_not_truncate"):
            raise ValueError(f"truncation {truncation!r}: expected True, False, 'longest_first', "
                             "'only_first', 'only_second' or 'do_not_truncate'")
        limit = max_length if max_length is not None else self.model_max_length
        if trunc != "do_not_truncate":
            self._tok.enable_truncation(limit, stride=0, strategy=trunc, direction=self.truncation_side)
        else:
            self._tok.no_truncation()
        if pad != "do_not_pad":
            self._tok.enable_padding(direction=self.padding_side, pad_id=self.pad_token_id or 0,
                                     pad_type_id=self.pad_token_type_id, pad_token=self.pad_token or "[PAD]",
                                     length=limit if pad == "max_length" else None,
                                     pad_to_multiple_of=pad_to_multiple_of)
        else:
            self._tok.no_padding()
        try:
            inputs = texts if pairs is None else list(zip(texts, pairs))
            encodings = self._tok.encode_batch(inputs, add_special_tokens=add_special_tokens) if inputs else []
        finally:
            self._tok.no_truncation()
            self._tok.no_padding()
        data: dict = {"input_ids": [e.ids for e in encodings]}
        if return_token_type_ids is None or return_token_type_ids:
            data["token_type_ids"] = [e.type_ids for e in encodings]
        if return_attention_mask is None or return_attention_mask:
            data["attention_mask"] = [e.attention_mask for e in encodings]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            data["offset_mapping"] = [e.offsets for e in encodings]
        if return_length:
            data["length"] = [len(e.ids) for e in encodings]
        if return_tensors is not None:
            if return_tensors != "pt":
                raise ValueError(f"return_tensors {return_tensors!r}: only 'pt' (torch) is supported")
            import torch

            if len({len(e.ids) for e in encodings}) > 1:
                raise ValueError("rows of different lengths cannot make a tensor; pass padding=True")
            data = {k: torch.tensor(v, dtype=torch.long) for k, v in data.items()}
        elif not batched:
            data = {k: v[0] for k, v in data.items()}
        return Encoding(data, encodings)

    def tokenize(self, text: str, add_special_tokens: bool = False) -> list[str]:
        """Token strings of ``text`` (without ``[CLS]``/``[SEP]`` unless asked)."""
        return self._tok.encode(text, add_special_tokens=add_special_tokens).tokens

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True,
               truncation=None, max_length: int | None = None) -> list[int]:
        """Token ids of one text (or pair), ``[CLS] ... [SEP]`` included unless ``add_special_tokens=False``."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, truncation=truncation,
                    max_length=max_length)["input_ids"]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of token ids: ``##`` pieces joined, tokens separated by spaces, the WordPiece
        decoder's clean-up (no space before punctuation)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, directory: str | os.PathLike) -> tuple[str, ...]:
        """Copy the tokenizer files into ``directory`` (created if needed); returns the paths written."""
        os.makedirs(directory, exist_ok=True)
        out = []
        for name in _FILES:
            src = os.path.join(self.name_or_path, name)
            if os.path.isfile(src):
                dst = os.path.join(os.fspath(directory), name)
                if os.path.abspath(src) != os.path.abspath(dst):
                    shutil.copyfile(src, dst)
                out.append(dst)
        return tuple(out)

    def __repr__(self) -> str:
        return f"WordPieceTokenizer({self.name_or_path!r}, vocab={len(self)}, model_max_length={self.model_max_length})"


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read: {exc}") from None
    return data if isinstance(data, dict) else {}


def _token_text(value) -> str | None:
    """A special token as written in a tokenizer config: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def can_load_wordpiece(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a ``tokenizer.json`` with a WordPiece model and a
    ``tokenizer_config.json`` naming ``BertTokenizer`` (what :class:`WordPieceTokenizer` reproduces
    exactly). Never raises."""
    try:
        with open(os.path.join(path, "tokenizer.json"), encoding="utf-8") as fh:
            spec = json.load(fh)
        with open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError, TypeError):
        return False
    return (isinstance(spec, dict) and isinstance(config, dict)
            and (spec.get("model") or {}).get("type") == "WordPiece"
            and config.get("tokenizer_class") in ("BertTokenizer", "BertTokenizerFast"))


def load_wordpiece(path: str | os.PathLike) -> WordPieceTokenizer:
    """The tokenizer of a model directory (see :class:`WordPieceTokenizer`).

    Raises:
        ModelError: missing or unreadable tokenizer files.
    """
    return WordPieceTokenizer(path)
