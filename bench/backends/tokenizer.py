"""The artifact's fast tokenizer (tokenizer.json) through the `tokenizers` library alone.

The measuring child uses this instead of transformers.AutoTokenizer because importing transformers
imports torch (~420 MB of RSS): an ONNX Runtime variant's peak memory would be mostly torch's,
which a deployment of that variant does not load. The encodings are the same (tested against
AutoTokenizer, for single sentences and for pairs); this covers only the call pattern bench uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


class FastTokenizer:
    def __init__(self, model_dir: Path):
        model_dir = Path(model_dir)
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        special = json.loads((model_dir / "special_tokens_map.json").read_text())
        pad = special["pad_token"]
        self._pad_token = pad["content"] if isinstance(pad, dict) else pad
        self._pad_id = self._tok.token_to_id(self._pad_token)

    def __call__(self, texts: list[str], text_pair: list[str] | None = None, truncation: bool = True,
                 max_length: int = 512, padding: bool | str = False, return_tensors: str = "np"
                 ) -> dict[str, np.ndarray]:
        """padding: False, True (to the longest text) or "max_length" (every row exactly max_length).
        text_pair: the second sentence of each example (pair tasks), as AutoTokenizer's `text_pair`: one
        sequence `[CLS] a [SEP] b [SEP]` with token_type_ids 1 on the second segment, truncated longest
        first."""
        tok = self._tok
        if truncation:
            tok.enable_truncation(max_length, strategy="longest_first")
        else:
            tok.no_truncation()
        if padding:
            length = max_length if padding == "max_length" else None
            tok.enable_padding(pad_id=self._pad_id, pad_token=self._pad_token, length=length)
        else:
            tok.no_padding()
        if text_pair is None:
            encodings = tok.encode_batch(list(texts))
        else:
            if len(text_pair) != len(texts):
                raise ValueError(f"{len(texts)} texts but {len(text_pair)} text_pair entries")
            encodings = tok.encode_batch(list(zip(texts, text_pair, strict=True)))
        if not padding and len({len(e.ids) for e in encodings}) > 1:
            raise ValueError("unpadded texts of different lengths cannot form one array; pass padding=True")
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
