"""Converts a (tiny) Qwen2.5-VL checkpoint folder to GGUF plus mmproj with llama.cpp's own converter.

Run as a script: `python tests/gguf_convert.py LLAMA_CPP_SOURCE CHECKPOINT OUT_DIR [OUTTYPE]`, where
LLAMA_CPP_SOURCE is llama.cpp's source tree (convert_hf_to_gguf.py, conversion/, gguf-py/), as shipped in
llama-cpp-python's source distribution under vendor/llama.cpp. Writes OUT_DIR/model.gguf and
OUT_DIR/mmproj.gguf.

The converter names a BPE tokenizer's pre-tokenizer (GGUF's tokenizer.ggml.pre) by hashing the token ids
it gives a test string, and refuses a hash it does not know: every trained vocabulary has its own, so the
tiny tokenizer is refused even though its pre-tokenizer is a standard one. Its pre-tokenizer is
tokenizers' ByteLevel with GPT-2's split regex (tests/tiny_model.py), which llama.cpp implements as "gpt-2":
this script declares that name instead of looking the hash up. Everything else is the converter's own code.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(source: Path, checkpoint: Path, out: Path, outtype: str = "f32") -> None:
    sys.path[:0] = [str(source / "gguf-py"), str(source)]
    import gguf
    import torch
    from conversion.qwenvl import Qwen2VLModel, Qwen2VLVisionModel

    class TinyQwen2VL(Qwen2VLModel):
        model_arch = Qwen2VLModel.model_arch

        def set_vocab(self) -> None:
            # The converter tries a SentencePiece model first (importing sentencepiece even where the
            # checkpoint has none); the tiny tokenizer is BPE, the converter's fallback.
            self._set_vocab_gpt2()

        def get_vocab_base_pre(self, tokenizer: object) -> str:
            return "gpt-2"

    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}[outtype]
    out.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        TinyQwen2VL(checkpoint, ftype, out / "model.gguf").write()
        Qwen2VLVisionModel(checkpoint, ftype, out / "mmproj.gguf").write()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:5])
