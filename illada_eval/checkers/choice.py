"""The option letter a free-form reply chose, for multiple-choice questions answered by generation.

Two readers, for two protocols:

- ``first_option`` reproduces OpenCompass's ``first_option_postprocess`` (the scoring of
  LLaDA-8B-Instruct's published MMLU, HellaSwag and ARC-C numbers) rule for rule, quirks included,
  so that our numbers are comparable with those.
- ``answer_letter`` is the reader of the iLLaDA protocol: it takes the letter the reply commits to
  ("B", "(B)", "B. Paris", "The answer is (B).") and returns None when the reply names none,
  rather than guessing from any capital letter in the text.
"""
from __future__ import annotations

import re

__all__ = ["first_option", "answer_letter"]


def _opencompass_rules(o: str) -> list[str]:
    """OpenCompass's patterns for the options ``o``, in its order (the first that matches and
    holds an option decides). Most are for Chinese replies; they are kept because LLaDA answers in
    Chinese now and then."""
    x = f"[{o}]"
    return [
        rf"答案是?\s*({x})", rf"答案是?\s*：\s*({x})", rf"答案是?\s*:\s*({x})",
        rf"答案选项应?该?是\s*({x})", rf"答案选项应?该?为\s*({x})",
        rf"答案应该?是\s*({x})", rf"答案应该?选\s*({x})",
        rf"答案选项为?\s*：\s*({x})", rf"答案选项为?\s+\(?\*?\*?({x})\*?\*?\)?",
        rf"答案选项是?\s*:\s*({x})", rf"答案为\s*({x})", rf"答案选\s*({x})", rf"选择?\s*({x})",
        # one rule in OpenCompass, not two: a missing comma there joins the two strings
        rf"故选?\s*({x})只有选?项?\s?({x})\s?是?对",
        rf"只有选?项?\s?({x})\s?是?错", rf"只有选?项?\s?({x})\s?不?正确",
        rf"只有选?项?\s?({x})\s?错误", rf"说法不?对选?项?的?是\s?({x})",
        rf"说法不?正确选?项?的?是\s?({x})", rf"说法错误选?项?的?是\s?({x})",
        rf"({x})\s?是正确的", rf"({x})\s?是正确答案", rf"选项\s?({x})\s?正确",
        rf"所以答\s?({x})", rf"所以\s?({x}[.。$]?$)", rf"所有\s?({x}[.。$]?$)",
        rf"[\s，：:,]({x})[。，,\.]?$", rf"[\s，,：:][故即]({x})[。\.]?$",
        rf"[\s，,：:]因此({x})[。\.]?$", rf"[是为。]\s?({x})[。\.]?$",
        rf"因此\s?({x})[。\.]?$", rf"显然\s?({x})[。\.]?$",
        r"答案是\s?(\S+)(?:。|$)", r"答案应该是\s?(\S+)(?:。|$)", r"答案为\s?(\S+)(?:。|$)",
        rf"(?i)ANSWER\s*:\s*({x})",
        rf"[Tt]he answer is:?\s+\(?({x})\)?", rf"[Tt]he answer is:?\s+\(?\*?\*?({x})\*?\*?\)?",
        rf"[Tt]he answer is option:?\s+\(?({x})\)?",
        rf"[Tt]he correct answer is:?\s+\(?({x})\)?",
        rf"[Tt]he correct answer is option:?\s+\(?({x})\)?",
        rf"[Tt]he correct answer is:?.*?boxed{{({x})}}",
        rf"[Tt]he correct option is:?.*?boxed{{({x})}}",
        rf"[Tt]he correct answer option is:?.*?boxed{{({x})}}",
        rf"[Tt]he answer to the question is:?\s+\(?({x})\)?",
        rf"^选项\s?({x})", rf"^({x})\s?选?项",
        rf"(\s|^){x}[\s。，,：:\.$]",
        r"1.\s?(.*?)$", rf"1.\s?({x})[.。$]?$",
        # the "cushion": any option letter at all
        rf"({x}):", rf"({x})",
    ]


def first_option(text: str, options: str = "ABCD") -> str:
    """The option OpenCompass's ``first_option_postprocess`` reads from ``text`` ("" if none).

    Rules are tried in order on the stripped text. A match gives its first group, or the whole
    match when that group is empty; the answer is the first of ``options`` (in the order of
    ``options``, not of the text) that this string contains. A match holding no option letter
    (e.g. the group is the space before a letter) falls through to the next rule."""
    text = text.strip()
    for rule in _opencompass_rules(options):
        match = re.search(rule, text, re.DOTALL)
        if match is None:
            continue
        found = match.group(1) or match.group(0)
        for option in options:
            if option in found:
                return option
    return ""


def answer_letter(text: str, options: str = "ABCD") -> str | None:
    """The option letter ``text`` commits to, or None.

    In order: a stated answer ("answer is (B)", "Answer: B"), then a stated correct option ("the
    correct option is B"; "Option A is wrong, the answer is C" is C); a letter opening the reply
    ("B", "(B)", "B. Paris", "B) 42"); a letter in parentheses anywhere; a letter standing alone
    as a word, except the article "A" before a lowercase word ("A good choice is ..." names no
    option)."""
    x = f"[{options}]"
    word = rf"((?!A\s+[a-z]){x})(?![A-Za-z'])"  # a letter that is a word of its own, not "A" the article
    rules = (
        rf"(?i:answer)\s*(?:is|:|=)?\s*(?:(?i:option)\s*)?[(\[*]*({x})(?![A-Za-z])",
        rf"(?i:correct (?:option|choice))\s*(?:is|:|=)?\s*[(\[*]*({x})(?![A-Za-z])",
        rf"^[(\[*]*{word}",
        rf"\(({x})\)",
        rf"(?<![A-Za-z]){word}",
    )
    text = text.strip()
    for rule in rules:
        match = re.search(rule, text)
        if match:
            return match.group(1)
    return None
