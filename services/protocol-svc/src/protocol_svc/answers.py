"""The rule that an answer to a demand must be conclusive (RN 623/2024), as pure functions.

:func:`check_answer` returns every problem it finds (an empty list means acceptable):

``unknown_outcome`` (field ``outcome``)
    The outcome is not one of :data:`OUTCOMES`.
``missing_legal_basis`` (field ``legal_basis``)
    The outcome is in :data:`LEGAL_BASIS_REQUIRED` (a denial) and ``legal_basis`` is absent
    or has no letter or digit. It must cite the contractual clause or legal norm.
``generic_answer`` (field ``text``)
    The text is only a stalling phrase: after the text is normalized (NFKD, combining marks
    dropped, case-folded, punctuation turned into spaces), every word belongs to a
    :data:`STALLING_PHRASES` entry, a :data:`FILLER_PHRASES` entry or is a number, and at
    least one stalling phrase is present. "Em análise", "Prezado beneficiário, informamos
    que sua solicitação está em processamento. Favor aguardar." are refused; "Após análise,
    o procedimento foi autorizado para 12/12/2025 no Hospital X." is accepted, because
    "autorizado", "hospital" and "x" are substantive. Phrases match whole words, every way
    of covering the text is tried (so a filler phrase cannot hide the start of a stalling
    one), and in a phrase ``#`` matches any number (as in "no prazo de 5 dias úteis").
``too_short`` (field ``text``)
    The text has fewer than :data:`MIN_MEANINGFUL_WORDS` meaningful words. A word is a run
    of non-space characters holding a letter or digit ("12/12/2025" is one word); it is
    meaningful unless it is a pure function word (:data:`FUNCTION_WORDS`: articles,
    prepositions and their contractions, conjunctions, possessives). Verbs count, so
    "Procedimento foi autorizado." (3 words) passes and "Autorizado." or "Pedido negado."
    do not. An empty text fails this rule only.

Problem messages never quote the submitted text: it may hold personal data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "FILLER_PHRASES",
    "FUNCTION_WORDS",
    "LEGAL_BASIS_REQUIRED",
    "MIN_MEANINGFUL_WORDS",
    "OUTCOMES",
    "REANALYSIS_OUTCOMES",
    "STALLING_PHRASES",
    "AnswerProblem",
    "Outcome",
    "check_answer",
    "is_generic",
    "meaningful_word_count",
    "reanalysis_allowed",
]


class Outcome(StrEnum):
    """The outcome of an answered demand."""

    AUTHORIZED = "authorized"
    PARTIALLY_AUTHORIZED = "partially_authorized"
    DENIED = "denied"
    INFORMED = "informed"
    RESOLVED = "resolved"


OUTCOMES: frozenset[str] = frozenset(o.value for o in Outcome)
"""Every valid outcome value."""

LEGAL_BASIS_REQUIRED: frozenset[str] = frozenset({Outcome.DENIED.value})
"""Outcomes that must cite a contractual clause or legal norm."""

REANALYSIS_OUTCOMES: frozenset[str] = frozenset(
    {Outcome.DENIED.value, Outcome.PARTIALLY_AUTHORIZED.value}
)
"""Outcomes the beneficiary may ask the ouvidoria to re-analyse."""

MIN_MEANINGFUL_WORDS = 3
"""Fewest meaningful words a conclusive answer can have (see the module docstring)."""

NUMBER_WILDCARD = "#"
"""In a phrase, matches any number (a token made only of digits)."""

STALLING_PHRASES: tuple[str, ...] = (
    # analysis / evaluation / audit pending
    "em analise", "sob analise", "para analise", "em reanalise", "para reanalise",
    "em processo de analise", "em fase de analise", "em etapa de analise",
    "analise em andamento", "pendente de analise", "aguardando analise", "aguarda analise",
    "encaminhado para analise", "encaminhada para analise", "enviado para analise",
    "enviada para analise", "sendo analisado", "sendo analisada", "sera analisado",
    "sera analisada", "estamos analisando", "analisando",
    "em avaliacao", "sob avaliacao", "para avaliacao", "aguardando avaliacao",
    "sendo avaliado", "sendo avaliada", "sera avaliado", "sera avaliada",
    "estamos avaliando", "avaliando",
    "em auditoria", "sob auditoria", "para auditoria", "aguardando auditoria",
    "encaminhado a auditoria", "encaminhada a auditoria", "encaminhado para auditoria",
    "encaminhada para auditoria", "aguardando parecer", "aguardando parecer da auditoria",
    # processing / in progress
    "em processamento", "em processo", "sendo processado", "sendo processada",
    "sera processado", "sera processada", "estamos processando", "processando",
    "em andamento", "em tramite", "em tramitacao", "em tratamento", "sendo tratado",
    "sendo tratada", "em aberto", "pendente", "em espera", "na fila", "em fila",
    "em verificacao", "sob verificacao", "estamos verificando", "verificando",
    "em apuracao", "sendo apurado", "sendo apurada",
    # waiting
    "aguarde", "aguardem", "aguardar", "aguardando", "favor aguardar", "queira aguardar",
    "aguarde retorno", "aguardando retorno", "aguardando resposta", "aguardando liberacao",
    "aguardando autorizacao", "aguardando posicionamento", "aguardando definicao",
    # acknowledged only
    "solicitacao recebida", "pedido recebido", "demanda recebida", "solicitacao registrada",
    "pedido registrado", "demanda registrada", "recebemos sua solicitacao",
    "recebemos seu pedido", "recebemos sua demanda", "recebido com sucesso",
    "registrada com sucesso", "registrado com sucesso",
    # promises to answer later
    "retornaremos", "retornaremos em breve", "daremos retorno", "daremos um retorno",
    "entraremos em contato", "retornaremos o contato", "em breve", "brevemente",
    "assim que possivel", "o mais breve possivel", "dentro do prazo",
    "dentro do prazo regulamentar", "dentro do prazo normativo", "no prazo de # dias",
    "no prazo de # dias uteis", "em ate # dias", "em ate # dias uteis", "em ate # horas",
    "no prazo de # horas", "prazo de # dias uteis", "sem previsao", "sem prazo",
    "aguardando retorno do prestador",
)  # fmt: skip
"""Stalling phrases (normalized: no accents, lower case): not an answer on their own."""

FILLER_PHRASES: tuple[str, ...] = (
    # greetings, courtesy, sign-offs
    "prezado", "prezada", "prezados", "prezadas", "caro", "cara", "ola", "oi", "bom dia",
    "boa tarde", "boa noite", "sr", "sra", "senhor", "senhora", "beneficiario",
    "beneficiaria", "cliente", "associado", "associada", "usuario", "usuaria",
    "obrigado", "obrigada", "agradecemos", "agradecemos o contato", "pelo contato",
    "atenciosamente", "cordialmente", "att", "grato", "grata", "equipe", "central",
    "central de atendimento", "atendimento", "sac", "operadora",
    # announcing
    "informamos", "informamos que", "informo", "comunicamos", "esclarecemos",
    "gostariamos de informar", "vimos informar", "por meio desta", "favor", "por favor",
    "gentileza", "pedimos", "solicitamos", "pedimos que", "que", "seguem", "contato",
    "retorno", "resposta", "posicionamento", "parecer", "estamos", "nossa equipe",
    # subjects of the stalling sentence
    "solicitacao", "solicitacoes", "pedido", "pedidos", "demanda", "demandas", "protocolo",
    "processo", "requerimento", "requisicao", "manifestacao", "reclamacao", "caso",
    "guia", "procedimento", "procedimentos", "exame", "exames", "consulta", "cirurgia",
    "internacao", "reembolso", "tratamento", "numero", "n", "no", "nr",
    # verbs and adverbs of state
    "esta", "estao", "encontra", "encontram", "se", "permanece", "permanecem",
    "continua", "continuam", "segue", "ficou", "foi", "foram", "sera", "serao", "sendo",
    "ja", "ainda", "momento", "no momento", "neste momento", "atualmente",
    "agora", "hoje", "ate", "entao", "assim", "portanto", "devidamente", "prazo", "maximo",
    "previsao", "dia", "dias", "util", "uteis", "hora", "horas", "proximos", "previsto",
    "regulamentar",
    # who is looking at it
    "auditoria", "tecnica", "tecnico", "medica", "medico", "administrativa",
    "administrativo", "interna", "interno", "setor", "area", "responsavel", "competente",
    "especializada", "especializado", "criteriosa", "cuidadosa", "devida", "nossa",
    "nosso", "junto", "sua", "seu", "suas", "seus", "voce",
    # function words
    "o", "a", "os", "as", "um", "uma", "uns", "umas", "de", "da", "do", "das", "dos", "em",
    "na", "nas", "nos", "para", "pra", "por", "pela", "pelo", "pelas", "pelos", "ao",
    "aos", "com", "e", "ou", "mas", "sob",
)  # fmt: skip
"""Filler words and phrases (normalized): courtesy, subjects, auxiliaries, function words."""

FUNCTION_WORDS: frozenset[str] = frozenset(
    [
        "o",
        "a",
        "os",
        "as",
        "um",
        "uma",
        "uns",
        "umas",
        "de",
        "da",
        "do",
        "das",
        "dos",
        "em",
        "na",
        "no",
        "nas",
        "nos",
        "num",
        "numa",
        "para",
        "pra",
        "pro",
        "por",
        "pela",
        "pelo",
        "pelas",
        "pelos",
        "ao",
        "aos",
        "com",
        "sem",
        "e",
        "ou",
        "mas",
        "nem",
        "que",
        "se",
        "sua",
        "seu",
        "suas",
        "seus",
        "nossa",
        "nosso",
        "nossas",
        "nossos",
    ]
)
"""Normalized words that never count as meaningful for ``too_short``."""

_NON_WORD = re.compile(r"[^a-z0-9]+")
_HAS_ALNUM = re.compile(r"[^\W_]")
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


@dataclass(frozen=True, slots=True)
class AnswerProblem:
    """One reason an answer is not acceptable."""

    rule_id: str
    field: str
    message: str


def _fold(text: str) -> str:
    """Case-fold text and strip its accents (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _tokens(text: str) -> list[str]:
    """Split folded text into words of ASCII letters and digits."""
    return [t for t in _NON_WORD.split(_fold(text)) if t]


def _phrase_index(phrases: tuple[str, ...]) -> dict[str, list[tuple[str, ...]]]:
    """Index phrases, split into words, by their first word."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in sorted({tuple(p.split()) for p in phrases}):
        index.setdefault(phrase[0], []).append(phrase)
    return index


_STALLING = _phrase_index(STALLING_PHRASES)
_FILLER = _phrase_index(FILLER_PHRASES)


def _matches(tokens: list[str], start: int, index: dict[str, list[tuple[str, ...]]]) -> list[int]:
    """Return the lengths of every phrase of index that occurs at tokens[start:]."""
    first = NUMBER_WILDCARD if tokens[start].isdigit() else tokens[start]
    lengths: list[int] = []
    for key in {first, NUMBER_WILDCARD}:
        for phrase in index.get(key, ()):
            end = start + len(phrase)
            if end <= len(tokens) and all(
                word == token or (word == NUMBER_WILDCARD and token.isdigit())
                for word, token in zip(phrase, tokens[start:end], strict=True)
            ):
                lengths.append(len(phrase))
    return lengths


def is_generic(text: str) -> bool:
    """Tell whether text holds a stalling phrase and nothing substantive besides filler."""
    tokens = _tokens(text)
    # reachable[i] is None if tokens[:i] cannot be covered by stalling phrases, filler
    # phrases and numbers; otherwise whether some cover of tokens[:i] uses a stalling phrase.
    reachable: list[bool | None] = [None] * (len(tokens) + 1)
    reachable[0] = False
    for i, token in enumerate(tokens):
        found = reachable[i]
        if found is None:
            continue
        steps = [(n, True) for n in _matches(tokens, i, _STALLING)]
        steps += [(n, found) for n in _matches(tokens, i, _FILLER)]
        if token.isdigit():
            steps.append((1, found))
        for length, stalling in steps:
            reachable[i + length] = bool(reachable[i + length]) or stalling
    return reachable[-1] is True


def meaningful_word_count(text: str) -> int:
    """Count the words of text that hold a letter or digit and are not function words."""
    count = 0
    for word in text.split():
        if not _HAS_ALNUM.search(word):
            continue
        if _EDGE_PUNCTUATION.sub("", _fold(word)) in FUNCTION_WORDS:
            continue
        count += 1
    return count


def check_answer(outcome: str, text: str, legal_basis: str | None) -> list[AnswerProblem]:
    """Return every reason the answer is not conclusive; an empty list means acceptable."""
    problems: list[AnswerProblem] = []
    if outcome not in OUTCOMES:
        allowed = ", ".join(o.value for o in Outcome)
        problems.append(
            AnswerProblem("unknown_outcome", "outcome", f"outcome must be one of: {allowed}")
        )
    elif outcome in LEGAL_BASIS_REQUIRED and not (legal_basis and _HAS_ALNUM.search(legal_basis)):
        problems.append(
            AnswerProblem(
                "missing_legal_basis",
                "legal_basis",
                "a denial must cite its contractual clause or legal norm",
            )
        )
    if is_generic(text):
        problems.append(
            AnswerProblem(
                "generic_answer",
                "text",
                "the text is only a generic or stalling phrase (such as 'em análise'); "
                "an answer must be conclusive",
            )
        )
    if meaningful_word_count(text) < MIN_MEANINGFUL_WORDS:
        problems.append(
            AnswerProblem(
                "too_short",
                "text",
                f"the text must have at least {MIN_MEANINGFUL_WORDS} meaningful words",
            )
        )
    return problems


def reanalysis_allowed(outcome: str) -> bool:
    """Tell whether an answer with this outcome may be re-analysed (denied or partial)."""
    return outcome in REANALYSIS_OUTCOMES
