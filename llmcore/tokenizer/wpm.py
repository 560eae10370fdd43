"""WordPiece (BERT) as llama.cpp runs it (llm_tokenizer_wpm_session)."""

from __future__ import annotations

from llmcore.tokenizer import unicode as uc
from llmcore.tokenizer.vocab import ESCAPED_SPACE, Vocab


def _is_chinese_char(cpt: int) -> bool:
    # llama.cpp's ranges (0x2B920 rather than 0x2B820, following HF's Rust code)
    return (0x4E00 <= cpt <= 0x9FFF or 0x3400 <= cpt <= 0x4DBF or 0x20000 <= cpt <= 0x2A6DF
            or 0x2A700 <= cpt <= 0x2B73F or 0x2B740 <= cpt <= 0x2B81F or 0x2B920 <= cpt <= 0x2CEAF
            or 0xF900 <= cpt <= 0xFAFF or 0x2F800 <= cpt <= 0x2FA1F)


class WpmEncoder:
    """Greedy longest-match WordPiece over words split at whitespace and punctuation."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.max_token_len = max(len(t.encode("utf-8", "surrogatepass")) for t in vocab.texts)

    def words(self, text: str) -> list[str]:
        """llm_tokenizer_wpm_session::preprocess: normalise (NFD first code point, lowercase) and split."""
        cpts = uc.codepoints(text)
        if self.vocab.strip_accents:
            cpts = uc.nfd_first(cpts)
        cats = uc.category_table()[cpts].tolist() if len(cpts) else []
        words: list[str] = [""]
        for cpt, cat in zip(cpts.tolist(), cats):
            if cpt in uc.WHITESPACE_CODEPOINTS:
                if words[-1]:
                    words.append("")
                continue
            if cpt == 0 or cpt == 0xFFFD or cat & uc.CONTROL:
                continue
            if self.vocab.strip_accents and cat & uc.ACCENT_MARK:
                continue
            char = chr(uc.to_lower(cpt) if self.vocab.lowercase else cpt)
            if cat & uc.PUNCTUATION or (cpt < 0x7F and cat & uc.SYMBOL) or _is_chinese_char(cpt):
                if words[-1]:
                    words.append("")
                words[-1] = char
                words.append("")
            else:
                words[-1] += char
        if not words[-1]:
            words.pop()
        return words

    def encode(self, text: str) -> list[int]:
        token_to_id = self.vocab.token_to_id
        out: list[int] = []
        for word in self.words(text):
            if not word:
                continue
            # lengths are in bytes in llama.cpp; slicing a str by code points covers the same candidates
            # except that byte slices which cut a character can never be tokens anyway
            chars = ESCAPED_SPACE + word
            n = len(chars)
            start = len(out)
            i = 0
            while i < n:
                for j in range(min(n, i + self.max_token_len + 1), i, -1):
                    token_id = token_to_id.get(chars[i:j])
                    if token_id is not None:
                        out.append(token_id)
                        i = j
                        break
                else:
                    del out[start:]
                    break
            if len(out) == start:
                out.append(self.vocab.unk_id if self.vocab.unk_id is not None else -1)
        return out


